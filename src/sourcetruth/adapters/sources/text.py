"""Reading delimited text files without guessing: decoding, rows and line numbers.

Every tabular adapter (OneRoster, School Data Sync, the generic import) reads
through here, so they share one set of rules:

- **Decoding**: a byte-order mark decides (UTF-8, UTF-16, UTF-32); without
  one the bytes must be strict UTF-8, UTF-16 (known by its NUL bytes), or
  cp1252 when the caller allows it and it reads as typed text. Anything else
  is an :class:`~sourcetruth.EncodingError` with the byte offset and the
  encoding the file most likely is (:mod:`._encoding`). Latin-1 is never a
  fallback: it decodes every byte string, so it would store mojibake
  instead of failing.
- **Splitting**: the delimiter and quote character are given, never sniffed;
  quoting is strict: text after a closing quote, or a quoted cell still open
  at the end of the file, is an error, not a guess (a quote inside an
  unquoted cell is text, as RFC 4180 readers take it).
- **Cells stay text**: no type inference of any kind, so ``NA``, ``None`` and
  ``Null`` are names and a leading ``0`` or ``+`` is kept.
- **Problems are collected**, each naming file, line and column (never the
  value): a row with a problem is rejected and reading goes on, so a file's
  problems are reported together.
- **A header cell is never quoted**: a header line run into the first row,
  or replaced by one, is someone's data. A column is named by the field the
  reader maps it to (its ``column_name``), else by position (``column 3``).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Final

from attrs import field, frozen

from sourcetruth._util import to_tuple as _tuple
from sourcetruth.adapters.sources._encoding import looks_like_utf8, settle
from sourcetruth.exceptions import EncodingError, RejectedFileError, SourceDataError

__all__ = [
    "DEFAULT_MAX_FIELD",
    "HEADER_SEARCH",
    "Row",
    "Table",
    "TableStream",
    "by_position",
    "decode",
    "looks_like_utf8",
    "open_table",
    "read_table",
    "reject_if_needed",
    "text_pieces",
]

#: The longest cell accepted, in characters: far above any name, number or
#: address, far below what would let one bad file exhaust memory.
DEFAULT_MAX_FIELD = 4096


def decode(data: bytes, *, file: str, allow_cp1252: bool = False) -> str:
    """*data* as text, by the rules of :func:`~sourcetruth.adapters.sources._encoding.settle`."""
    encoding, start = settle(data, file=file, allow_cp1252=allow_cp1252)
    return str(memoryview(data)[start:], encoding)


@frozen
class Row:
    """One record of a file: the line it starts on and its cells, as text."""

    line: int
    cells: tuple[str, ...] = field(converter=_tuple, repr=False)


@frozen
class Table:
    """A file split into a header and rows, with the rows it had to reject.

    ``header`` is the first record (empty when the file has no header);
    ``problems`` holds one :class:`~sourcetruth.SourceDataError` per rejected
    row, in file order.
    """

    file: str
    header: tuple[str, ...] = field(converter=_tuple)
    rows: tuple[Row, ...] = field(converter=_tuple, repr=False)
    problems: tuple[SourceDataError, ...] = field(converter=_tuple)

    @property
    def rejected(self) -> int:
        return len({p.line for p in self.problems})


# Text is split into pieces of about this many characters (bytes, before
# decoding), each ending at a line end: never the whole file's text at once.
_PIECE = 1 << 20


def _piece_ends(data: bytes | str, start: int) -> Iterator[tuple[int, int]]:
    """Where *data*'s pieces begin and end, from *start*: each ends after a newline, or at the end.

    A newline byte is never part of a longer UTF-8 or cp1252 character, so
    the pieces of those encodings decode one by one exactly as the whole does.
    """
    newline = "\n" if isinstance(data, str) else b"\n"
    size = len(data)
    while start < size:
        end = data.find(newline, start + _PIECE)  # type: ignore[arg-type]
        end = size if end < 0 else end + 1
        yield start, end
        start = end


def text_pieces(data: bytes | str, *, file: str, allow_cp1252: bool = False) -> Iterator[str]:
    """*data* as text, in pieces that each end at a line end: :func:`decode`, a piece at a time.

    The encoding is settled (and a file that has none is refused, with the
    error :func:`decode` gives) before the first piece, so that a reader
    never builds rows from a file it then refuses to decode.
    """
    if isinstance(data, str):
        text = data.removeprefix("\ufeff")  # text read elsewhere may keep its BOM
        return (text[begin:end] for begin, end in _piece_ends(text, 0))
    encoding, start = settle(data, file=file, allow_cp1252=allow_cp1252)
    return _decoded_pieces(data, encoding, start)


def _decoded_pieces(data: bytes, encoding: str, start: int) -> Iterator[str]:
    """*data*'s text from *start* in *encoding*, already settled, in pieces ending at line ends."""
    if encoding not in ("utf-8", "cp1252"):
        # Read whole: a newline byte may be half of a wider character.
        text = str(memoryview(data)[start:], encoding)
        return (text[begin:end] for begin, end in _piece_ends(text, 0))
    view = memoryview(data)
    return (str(view[begin:end], encoding) for begin, end in _piece_ends(data, start))


def _again(data: bytes | str, *, file: str, allow_cp1252: bool) -> Callable[[], Iterator[str]]:
    """A way to read *data*'s pieces once more, its encoding settled at most once for all."""
    settled: list[tuple[str, int]] = []

    def again() -> Iterator[str]:
        if isinstance(data, str):
            return text_pieces(data, file=file)
        if not settled:
            settled.append(settle(data, file=file, allow_cp1252=allow_cp1252))
        return _decoded_pieces(data, *settled[0])

    return again


# Cells that repeat down a column (a status, a role, an org, a year) are kept
# once, not once per row: a short cell is looked up among the first distinct
# short cells seen. Bounded, so a file of unique ids cannot grow the table.
_SHARED_LENGTH = 16
_SHARED_CELLS = 4096


def _shared(cells: list[str], seen: dict[str, str]) -> list[str]:
    """*cells*, each short one replaced by an equal string seen before (one object for both)."""
    if len(seen) < _SHARED_CELLS:
        return [seen.setdefault(c, c) if len(c) <= _SHARED_LENGTH else c for c in cells]
    return [seen.get(c, c) for c in cells]


def _lines(pieces: Iterator[str]) -> Iterator[str]:
    # A StringIO splits lines as a file opened with newline="" does (at \r\n,
    # \r or \n, ends kept), in C; one piece at a time, never the whole text.
    return itertools.chain.from_iterable(io.StringIO(piece, newline="") for piece in pieces)


#: Lines with a cell over the csv module's own limit that are split by hand, at most:
#: each is found by reading the text again from its start.
_LONG_LINES = 20


def _records(
    pieces: Iterator[str],
    file: str,
    delimiter: str,
    quotechar: str,
    *,
    share: bool,
    again: Callable[[], Iterator[str]] | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """Each record of the text and the line it starts on, blank lines left out.

    With *share*, short cells that repeat are one object (see :func:`_shared`).
    A line holding a cell longer than the csv module's limit (a process-wide
    setting we never change) is split by hand when it has no quote character,
    reading the text *again* to find it, so that the row's own checks decide
    (a cell of a column nobody reads is no reason to refuse the file).
    """
    reader = csv.reader(
        _lines(pieces),
        delimiter=delimiter,
        quotechar=quotechar,
        doublequote=True,
        strict=True,
    )
    last_line = 0
    seen: dict[str, str] = {}
    long_lines = 0
    while True:
        try:
            for cells in reader:
                start, last_line = last_line + 1, reader.line_num
                if cells:
                    yield start, _shared(cells, seen) if share else cells
        except csv.Error as error:
            line = reader.line_num
            too_long = "limit" in str(error)
            text = None
            if too_long and again is not None and long_lines < _LONG_LINES:
                text = next(itertools.islice(_lines(again()), line - 1, None), None)
            if text is None or quotechar in text or line != last_line + 1:
                # Broken quoting, or a long cell inside quotes: the reader cannot
                # resynchronise, so the whole file is unusable; say where it broke.
                reason = "a cell longer than any field could be" if too_long else error
                msg = f"cannot split the file into cells: {reason}"
                msg_0 = f"{file}: unreadable"
                raise RejectedFileError(
                    msg_0, [SourceDataError(msg, file=file, line=line)], file=file
                ) from None
            long_lines += 1
            last_line = line  # the reader goes on from the next line
            yield line, text.rstrip("\r\n").split(delimiter)
            continue
        return


def by_position(index: int) -> str:
    """How a column is named when no field is known for it: ``column 3`` for index 2."""
    return f"column {index + 1}"


class TableStream:
    """A file's header, then its usable rows one at a time: a :class:`Table` never held whole.

    Iterate it once for ``(line, cells)`` of each row that can be used;
    ``problems`` grows as rows are rejected, and ``rows`` and ``rejected``
    count what has been read so far, so read them after the rows.
    """

    def __init__(
        self,
        file: str,
        header: tuple[str, ...],
        records: Iterator[tuple[int, list[str]]],
        shape: _Shape,
    ) -> None:
        self.file = file
        self.header = header
        self.problems: list[SourceDataError] = []
        self.rows = 0
        self.rejected = 0
        #: Whether the file holds no record at all: no header, no row, only blank lines.
        self.empty = False
        #: The lines of the rows skipped above the header, and the header's line.
        self.skipped: tuple[int, ...] = ()
        self.header_line = 1
        self._records = records
        self._shape = shape

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        # Each row is held until the next is seen: a line break typed into a
        # cell without quotes splits one row in two, the first of which may
        # look whole ("7 and" as a year group). Both halves are one rejected row.
        shape = self._shape
        fits, broken = shape.fits, shape.broken
        held: tuple[int, list[str], bool] | None = None
        for line, cells in self._records:
            usable = fits(cells)
            if held is not None:
                if not usable and broken(held[1], cells):
                    self.rejected += 1
                    self.problems.append(shape.break_problem(held[0], line, held[1]))
                    held = None
                    continue
                yield from self._settle(*held)
            held = (line, cells, usable)
        if held is not None:
            yield from self._settle(*held)

    def _settle(self, line: int, cells: list[str], usable: bool) -> Iterator[tuple[int, list[str]]]:
        if usable:
            self.rows += 1
            yield line, cells
        else:
            self.rejected += 1
            self.problems.extend(self._shape.problems(line, cells))


def open_table(
    data: bytes | str,
    *,
    file: str,
    delimiter: str = ",",
    quotechar: str = '"',
    has_header: bool = True,
    allow_cp1252: bool = False,
    max_field: int = DEFAULT_MAX_FIELD,
    column_name: Callable[[str], str | None] | None = None,
    share: bool = True,
    header_row: int = 1,
    is_header: Callable[[list[str]], bool] | None = None,
) -> TableStream:
    """:func:`read_table` as a stream: the header now, each row as it is split.

    File-wide problems found before the first row (the encoding, NULs in the
    first line) raise at once; broken quoting raises
    :class:`~sourcetruth.RejectedFileError` when the rows reach it.
    *share* keeps short cells that repeat down the file as one object; a
    reader that keeps only some columns can share those itself, for less.

    With a header, rows above line *header_row* are skipped, and so are rows
    for which *is_header* is false (title rows above a council export's
    header), up to :data:`HEADER_SEARCH` of them: ``skipped`` lists their
    lines, and ``header_line`` is the header's.
    """
    if len(delimiter) != 1 or len(quotechar) != 1 or delimiter == quotechar:
        msg = "the delimiter and the quote character must be two different single characters"
        raise ValueError(msg)
    pieces = _checked_pieces(data, file=file, allow_cp1252=allow_cp1252)
    records = _records(
        pieces,
        file,
        delimiter,
        quotechar,
        share=share,
        again=_again(data, file=file, allow_cp1252=allow_cp1252),
    )
    first = next(records, None)
    skipped: list[int] = []
    if has_header and first is not None:
        first = _header_of(first, records, skipped, file, header_row, is_header)
    if first is None:
        empty = TableStream(file, (), iter(()), _Shape(file, (), {}, max_field))
        empty.empty = True
        return empty
    header = tuple(first[1])
    if has_header:
        shape = _Shape(file, header, _known_columns(header, column_name), max_field)
        stream = TableStream(file, header, records, shape)
        stream.skipped, stream.header_line = tuple(skipped), first[0]
        return stream
    # Without a header, the first row sets the width every row must have.
    shape = _Shape(file, header, {}, max_field)
    return TableStream(file, (), itertools.chain((first,), records), shape)


#: How many rows above a header a reader looks through for it.
HEADER_SEARCH: Final = 100


def _header_of(
    first: tuple[int, list[str]],
    records: Iterator[tuple[int, list[str]]],
    skipped: list[int],
    file: str,
    header_row: int,
    is_header: Callable[[list[str]], bool] | None,
) -> tuple[int, list[str]] | None:
    """The header's record, the records above it skipped (their lines added to *skipped*)."""
    found: tuple[int, list[str]] | None = first
    while found is not None and (
        found[0] < header_row or (is_header is not None and not is_header(found[1]))
    ):
        skipped.append(found[0])
        if len(skipped) > HEADER_SEARCH and found[0] >= header_row:
            msg = f"no header holding the mapped columns in the first {HEADER_SEARCH} rows"
            msg_0 = f"{file}: no header; nothing from this file was applied"
            raise RejectedFileError(msg_0, [SourceDataError(msg, file=file)], file=file)
        found = next(records, None)
    if found is None and skipped:
        msg = "no header holding the mapped columns" if is_header else "no header at that line"
        msg_0 = f"{file}: no header; nothing from this file was applied"
        raise RejectedFileError(msg_0, [SourceDataError(msg, file=file)], file=file)
    return found


def read_table(
    data: bytes | str,
    *,
    file: str,
    delimiter: str = ",",
    quotechar: str = '"',
    has_header: bool = True,
    allow_cp1252: bool = False,
    max_field: int = DEFAULT_MAX_FIELD,
    column_name: Callable[[str], str | None] | None = None,
) -> Table:
    """Split *data* into rows of text cells, rejecting rows that cannot be trusted.

    A row is rejected when it has a NUL character or a byte-order mark, a
    cell longer than *max_field*, or a different number of cells from the
    header (or, without a header, from the first row); empty cells past the
    last column are tolerated, since spreadsheet programs add them.
    File-wide problems (an :class:`~sourcetruth.EncodingError`, broken
    quoting) raise :class:`~sourcetruth.RejectedFileError` at once.

    A problem names its column by *column_name* of the column's header cell:
    the reader's own name for the column (a field it maps), or None, and
    then by position. The header cell itself is never used: it may be data.
    """
    stream = open_table(
        data,
        file=file,
        delimiter=delimiter,
        quotechar=quotechar,
        has_header=has_header,
        allow_cp1252=allow_cp1252,
        max_field=max_field,
        column_name=column_name,
    )
    rows = [Row(line, cells) for line, cells in stream]
    return Table(file, stream.header, rows, stream.problems)


def _known_columns(
    header: Sequence[str], column_name: Callable[[str], str | None] | None
) -> dict[int, str]:
    """The reader's names of the header's columns, by position (the ones it knows)."""
    if column_name is None:
        return {}
    found = ((index, column_name(cell)) for index, cell in enumerate(header))
    return {index: name for index, name in found if name}


def _checked_pieces(data: bytes | str, *, file: str, allow_cp1252: bool) -> Iterator[str]:
    """*data*'s text pieces, or a :class:`~sourcetruth.RejectedFileError` when it cannot be read."""
    try:
        pieces = text_pieces(data, file=file, allow_cp1252=allow_cp1252)
    except EncodingError as error:
        msg_0 = f"{file}: unreadable"
        raise RejectedFileError(msg_0, [error], file=file) from None
    first = next(pieces, "")
    end = first.find("\n")
    if "\x00" in (first if end < 0 else first[:end]):
        # Text of two or four bytes a character, read one byte at a time.
        msg = "NUL characters in the first line: is the file UTF-16 or UTF-32 without a BOM?"
        problem = SourceDataError(msg, file=file, line=1)
        msg_0 = f"{file}: unreadable"
        raise RejectedFileError(msg_0, [problem], file=file)
    return itertools.chain((first,), pieces)


class _Shape:
    """What every row of one table must be: its width, and cells that can be trusted.

    The width is that of *width_of*, the header or the first row, whose
    empty cells at the end may be missing from a row; *names* names the
    columns the reader knows in problems, by position (the others are named
    by position alone). When the reader knows some columns, only their cells
    are checked: a cell of a column nobody reads is never a reason to refuse
    a row.
    """

    def __init__(
        self, file: str, width_of: tuple[str, ...], names: dict[int, str], max_field: int
    ) -> None:
        self.file = file
        self.names = names
        self.width = len(width_of)
        self.max_field = max_field
        named = len(width_of)
        while named and not width_of[named - 1].strip():
            named -= 1
        self.named = named
        known = sorted(i for i in names if i < named)
        self._checked: Callable[[list[str]], Sequence[str]] | None = None
        if known:
            picked = itemgetter(*known)
            self._checked = picked if len(known) > 1 else lambda cells: (picked(cells),)
        self._known = known

    def fits(self, cells: list[str]) -> bool:
        """Whether *cells* is a usable row: the question asked of every row, so asked quickly."""
        width = len(cells)
        if width < self.named or (width > self.width and any(map(str.strip, cells[self.width :]))):
            return False
        checked = cells if self._checked is None else self._checked(cells)
        if max(map(len, checked)) > self.max_field:
            return False
        joined = "".join(checked)
        return "\x00" not in joined and "\ufeff" not in joined

    def broken(self, before: list[str], after: list[str]) -> bool:
        """Whether *after*, a row too short to use, is the rest of *before*, split at a line break.

        The cell the break was typed into is the last of one and the first of
        the other: together they make a row of the file's width, and both
        hold text there (nobody types a line break into an empty cell; a row
        of another delimiter after a whole row is not its rest).
        """
        joined = len(before) + len(after) - 1
        return (
            len(after) < self.named
            and self.named <= joined <= self.width
            and bool(before[-1].strip())
            and bool(after[0].strip())
        )

    def break_problem(self, line: int, rest: int, before: list[str]) -> SourceDataError:
        """The one problem of a row split by a line break on *line*, going on at *rest*."""
        msg = (
            f"a line break inside a cell without quotes: the row goes on at line {rest}; "
            "the whole row is rejected"
        )
        return self._problem(msg, line, len(before) - 1)

    def problems(self, line: int, cells: list[str]) -> list[SourceDataError]:
        """Why *cells* cannot be used: nothing for a row that can."""
        return [*self._width_problems(line, cells), *self._cell_problems(line, cells)]

    def _problem(self, message: str, line: int, index: int) -> SourceDataError:
        column = self.names.get(index) or by_position(index)
        return SourceDataError(message, file=self.file, line=line, field=column)

    def _width_problems(self, line: int, cells: list[str]) -> list[SourceDataError]:
        found: list[SourceDataError] = []
        width = len(cells)
        msg = f"the row has {width} cells where the file has {self.named} columns"
        if width < self.named:
            found.append(self._problem(msg, line, width))
        extra = [i for i in range(self.width, width) if cells[i].strip()]
        if extra:
            found.append(self._problem(msg, line, extra[0]))
        return found

    def _cell_problems(self, line: int, cells: list[str]) -> list[SourceDataError]:
        found: list[SourceDataError] = []
        places = self._known if self._known else range(len(cells))
        for index in places:
            if index >= len(cells):
                break
            cell = cells[index]
            if "\x00" in cell:
                found.append(self._problem("a NUL character", line, index))
            if "\ufeff" in cell:
                msg = "a byte-order mark inside the file (were two files joined?)"
                found.append(self._problem(msg, line, index))
            if len(cell) > self.max_field:
                msg = f"a cell longer than {self.max_field} characters"
                found.append(self._problem(msg, line, index))
        return found


def reject_if_needed(
    problems: Sequence[SourceDataError], *, rows: int, file: str, max_fraction: float
) -> None:
    """Raise :class:`~sourcetruth.RejectedFileError` when too many rows were rejected.

    *rows* counts every data row, rejected ones included. A file whose rows
    were all rejected is always rejected, whatever the fraction.
    """
    bad = len({p.line for p in problems})
    if not bad:
        return
    if bad >= rows or bad > max_fraction * rows:
        msg = (
            f"{file}: {bad} of {rows} rows rejected, more than the "
            f"{max_fraction:.0%} allowed; nothing from this file was applied"
        )
        raise RejectedFileError(msg, list(problems), file=file)
