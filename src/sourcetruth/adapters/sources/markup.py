"""Reading XML exports element by element: lines, no DTDs, declared encodings, counted rejections.

For an adapter of a format that is not a table (see ``docs/adapters.md``,
"Formats that are not tables"). Two parts:

- :func:`read_elements` parses one file with expat and yields each *record
  element* (a ``<pupil>``, a ``<contact>``) whole, with its children, once
  its end tag is read; nothing else of the file is kept. Every
  :class:`Element` knows its file, line and column.
- :class:`Rejections` counts the elements read and those rejected, across
  files and element names, against one reject limit, and builds the
  :class:`~sourcetruth.adapters.Reading`: under the limit a delta whose
  notices list every rejected element, over it one
  :class:`~sourcetruth.RejectedFileError` holding every problem.

What a file may hold:

- **No DTD.** A ``<!DOCTYPE`` of any kind is refused where it starts, before
  its declarations are read: no entity is declared, none expanded (the
  "billion laughs"), no external file or URL fetched. An entity reference
  other than XML's own five (``&amp;`` ...) is then an undefined entity.
- **Its declared encoding.** A byte-order mark decides (UTF-8, UTF-16,
  UTF-32), then UTF-16 known by its NUL bytes, then the encoding the XML
  declaration names (any Python knows, ASCII-compatible), else UTF-8 as XML
  requires. Bytes not valid in that encoding are an
  :class:`~sourcetruth.EncodingError` with the byte offset, checked before
  the first element is read; so is a file declaring a one-byte encoding
  whose bytes are UTF-8 text.
- **Bounded values.** An attribute or text longer than ``max_field``
  characters, or a record element holding more than ``max_children``
  elements, refuses the file: one hostile file cannot exhaust memory.

Every problem names file and line (and the element, as the field), never a
value, an element's text or a name read from the file's declaration.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final
from xml.parsers import expat

from attrs import field, frozen

from sourcetruth._util import to_tuple as _tuple
from sourcetruth.adapters.sources import text
from sourcetruth.adapters.sources._encoding import (
    BOMS,
    first_error,
    likely,
    looks_like_utf8,
    wide,
)
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.exceptions import (
    AdapterError,
    EncodingError,
    RejectedFileError,
    SourceDataError,
    UsageError,
)
from sourcetruth.model import Record, Snapshot, SnapshotKind

__all__ = [
    "DEFAULT_MAX_CHILDREN",
    "DEFAULT_MAX_FIELD",
    "Element",
    "Rejections",
    "read_elements",
    "xml_encoding",
]

#: The longest text an element or attribute may hold, in characters: the same limit as
#: a cell of the tabular readers (:data:`sourcetruth.adapters.sources.text.DEFAULT_MAX_FIELD`).
DEFAULT_MAX_FIELD: Final = text.DEFAULT_MAX_FIELD

#: The most elements one record element may hold (its phones, emails, names...).
DEFAULT_MAX_CHILDREN = 1000

# Text is fed to the parser this many bytes at a time.
_CHUNK = 1 << 16

# The XML declaration's encoding, read from an ASCII-compatible opening.
_DECLARED = re.compile(
    rb"<\?xml\s+version\s*=\s*(['\"])[^'\"]*\1\s+encoding\s*=\s*(['\"])([A-Za-z][\w.:-]*)\2"
)


@frozen
class Element:
    """One element of a file: its name, where it starts, its attributes, text and children.

    ``line`` and ``column`` (both from 1) are those of its start tag's ``<``.
    ``text`` is the text directly inside it, as written. Values never show
    in the ``repr``.
    """

    name: str
    file: str
    line: int
    column: int
    attributes: Mapping[str, str] = field(factory=dict, repr=False)
    text: str = field(default="", repr=False)
    children: tuple[Element, ...] = field(default=(), converter=_tuple, repr=False)

    def get(self, name: str, default: str = "") -> str:
        """The attribute *name*, or *default* when the element has none."""
        return self.attributes.get(name, default)

    def all(self, name: str) -> tuple[Element, ...]:
        """The children named *name*, in file order."""
        return tuple(c for c in self.children if c.name == name)

    def first(self, name: str) -> Element | None:
        """The first child named *name*, or None."""
        return next((c for c in self.children if c.name == name), None)


def _refused(file: str, problem: SourceDataError) -> RejectedFileError:
    msg = f"{file}: not read; nothing from this file was applied"
    return RejectedFileError(msg, [problem], file=file)


def xml_encoding(data: bytes, *, file: str) -> tuple[str, int]:
    """The codec *data* is read with and the offset its text starts at, checked whole.

    Raises :class:`~sourcetruth.EncodingError` for bytes not valid in it,
    and :class:`~sourcetruth.SourceDataError` for a declaration that cannot
    be honoured.
    """
    for bom, codec in BOMS:
        if data.startswith(bom):
            _check(data, len(bom), codec, file, f"not valid {codec} after its byte-order mark")
            return codec, len(bom)
    wide_codec = wide(data)
    if wide_codec is not None:
        codec = wide_codec
        if codec.startswith("utf-32"):
            msg = "UTF-32 without a byte-order mark (save the file as UTF-8)"
            raise EncodingError(msg, offset=0, file=file)
        _check(data, 0, codec, file, f"not valid {codec} (read as such by its NUL bytes)")
        return codec, 0
    found = _DECLARED.match(data[:256])
    if found is None:
        offset = first_error(data, 0, "utf-8")
        if offset is not None:
            msg = (
                "not valid UTF-8, which an XML file that declares no encoding is in; most "
                f"likely {likely(data)} (name the encoding in the file's XML declaration, "
                "or save it as UTF-8)"
            )
            raise EncodingError(msg, offset=offset, file=file)
        return "utf-8", 0
    try:
        codec = codecs.lookup(found.group(3).decode("ascii")).name
    except LookupError:
        msg = "the XML declaration names an encoding that is not known here (save as UTF-8)"
        raise SourceDataError(msg, file=file, line=1) from None
    if "<?xml".encode(codec, "replace") != b"<?xml":
        msg = "the XML declaration names a 16- or 32-bit encoding; the file has no byte-order mark"
        raise SourceDataError(msg, file=file, line=1)
    offset = first_error(data, 0, codec)
    if offset is not None:
        guess = "UTF-8" if first_error(data, 0, "utf-8") is None else likely(data)
        msg = f"not valid in the encoding its XML declaration names; most likely {guess}"
        raise EncodingError(msg, offset=offset, file=file)
    one_byte = len("é".encode(codec, "replace")) == 1
    if one_byte and first_error(data, 0, "utf-8") is None and looks_like_utf8(data):
        # Read as declared, every accented name would be stored as mojibake.
        msg = "the XML declaration names a one-byte encoding, but the text is UTF-8"
        first = re.search(rb"[\x80-\xff]", data)
        raise EncodingError(msg, offset=first.start() if first else 0, file=file)
    return codec, 0


def _check(data: bytes, start: int, codec: str, file: str, message: str) -> None:
    offset = first_error(data, start, codec)
    if offset is not None:
        raise EncodingError(message, offset=offset, file=file)


def read_elements(
    source: Path | bytes,
    *,
    records: Collection[str],
    file: str | None = None,
    max_field: int = DEFAULT_MAX_FIELD,
    max_children: int = DEFAULT_MAX_CHILDREN,
) -> Iterator[Element]:
    """Each element of *source* named in *records*, whole, in file order, as it is parsed.

    *source* is a path (its name names the file) or the file's bytes (then
    give *file*); *records* names the record elements (one name, or
    several). A record element inside another is one of its children.
    The encoding is settled before the first element (:func:`xml_encoding`).
    Every problem of the file is raised as a :class:`~sourcetruth.RejectedFileError`
    holding one :class:`~sourcetruth.SourceDataError`: a missing file is one
    too (the export is incomplete); a file that cannot be read is an
    :class:`~sourcetruth.AdapterError`.
    """
    if isinstance(source, Path):
        file = file or source.name
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            msg = "the export has no such file"
            raise _refused(file, SourceDataError(msg, file=file)) from None
        except OSError as error:
            msg = f"cannot read {file}: {error.strerror}"
            raise AdapterError(msg) from None
    elif file is None:
        msg = "give the file's name with its bytes"
        raise UsageError(msg)
    else:
        data = source
    try:
        codec, start = xml_encoding(data, file=file)
    except SourceDataError as error:
        raise _refused(file, error) from None
    names = frozenset({records} if isinstance(records, str) else records)
    parser = _Parser(file, names, max_field, max_children)
    decoder = codecs.getincrementaldecoder(codec)()
    view = memoryview(data)
    for begin in range(start, len(data), _CHUNK):
        yield from parser.feed(decoder.decode(view[begin : begin + _CHUNK]), final=False)
    yield from parser.feed(decoder.decode(b"", final=True), final=True)


class _Parser:
    """expat, with the record elements built as they are parsed and a DTD refused."""

    def __init__(self, file: str, records: frozenset[str], max_field: int, limit: int) -> None:
        self.file, self.records, self.max_field, self.limit = file, records, max_field, limit
        self.expat = expat.ParserCreate()
        self.expat.buffer_text = True
        self.expat.StartElementHandler = self.start
        self.expat.EndElementHandler = self.end
        self.expat.CharacterDataHandler = self.text
        # Refused where it starts, before any declaration in it is read.
        self.expat.StartDoctypeDeclHandler = self.doctype
        self.open: list[tuple[str, int, int, dict[str, str], list[str], list[Element]]] = []
        self.held = 0  # elements inside the record element being built
        self.done: list[Element] = []

    def feed(self, text: str, *, final: bool) -> Iterator[Element]:
        """The record elements *text* completes; every one before a fault, then the fault."""
        fault: SourceDataError | None = None
        try:
            self.expat.Parse(text, final)
        except expat.ExpatError as error:
            # expat's messages name the fault, never the text at it.
            message = f"not well-formed XML: {expat.ErrorString(error.code)}"
            fault = SourceDataError(message, file=self.file, line=error.lineno)
        except SourceDataError as error:
            fault = error
        done, self.done = self.done, []
        yield from done
        if fault is not None:
            raise _refused(self.file, fault)

    def problem(self, message: str, name: str | None = None) -> SourceDataError:
        return SourceDataError(
            message, file=self.file, line=self.expat.CurrentLineNumber, field=name
        )

    def doctype(self, *_: object) -> None:
        msg = "a DOCTYPE: DTDs and entity declarations are refused, never read"
        raise self.problem(msg)

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if not self.open and name not in self.records:
            return
        self.held += 1
        if self.held > self.limit:
            msg = f"a record element holding more than {self.limit} elements"
            raise self.problem(msg, name)
        if any(len(value) > self.max_field for value in attributes.values()):
            msg = f"an attribute longer than {self.max_field} characters"
            raise self.problem(msg, name)
        line, column = self.expat.CurrentLineNumber, self.expat.CurrentColumnNumber + 1
        self.open.append((name, line, column, attributes, [], []))

    def text(self, text: str) -> None:
        if self.open:
            parts = self.open[-1][4]
            parts.append(text)
            if sum(map(len, parts)) > self.max_field:
                msg = f"a text longer than {self.max_field} characters"
                raise self.problem(msg, self.open[-1][0])

    def end(self, _name: str) -> None:
        if not self.open:
            return
        name, line, column, attributes, parts, children = self.open.pop()
        element = Element(name, self.file, line, column, attributes, "".join(parts), children)
        if self.open:
            self.open[-1][5].append(element)
        else:
            self.done.append(element)
            self.held = 0


class Rejections:
    """The elements read and rejected, across files and element names, against one limit.

    Count each element as it is read (:meth:`count`), reject it with
    :meth:`reject` (an element with several problems is one rejection),
    and build the reading with :meth:`reading`, which is where the limit is
    applied: it is applied to each file's elements of one name (a file's
    ``<pupil>`` elements, another's ``<link>`` elements), as the built-in
    readers apply it to each file's rows. ``max_fraction`` 0 (the default)
    refuses the whole reading for one rejected element; above it, the
    reading is a delta, so that no rejected element reads as a departure.
    A group whose every element was rejected is always refused.
    """

    def __init__(self, *, max_fraction: float = 0.0) -> None:
        if not 0.0 <= max_fraction <= 1.0:
            msg = "max_fraction is a fraction of elements, from 0 to 1"
            raise UsageError(msg)
        self.max_fraction = max_fraction
        self._read: Counter[tuple[str, str]] = Counter()
        self._bad: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._problems: list[SourceDataError] = []

    def count(self, elements: Iterable[Element]) -> Iterator[Element]:
        """*elements*, each counted as read as it passes."""
        for element in elements:
            self._read[element.file, element.name] += 1
            yield element

    def reject(
        self, element: Element, field: str | None, reason: str, *, at: Element | None = None
    ) -> None:
        """Reject the record *element*: *reason* (never a value), in *field*.

        The problem names the line of *at*, the child the fault is in, when
        given, else the element's own.
        """
        place = (element.file, element.line, element.column)
        self._bad.setdefault(place, (element.file, element.name))
        line = (at or element).line
        self._problems.append(SourceDataError(reason, file=element.file, line=line, field=field))

    def rejected(self, element: Element) -> bool:
        """Whether *element* was rejected."""
        return (element.file, element.line, element.column) in self._bad

    @property
    def total(self) -> int:
        """How many elements were rejected."""
        return len(self._bad)

    @property
    def problems(self) -> tuple[SourceDataError, ...]:
        """Every problem of every rejected element, by file, line and field."""
        return tuple(
            sorted(self._problems, key=lambda p: (p.file or "", p.line or 0, p.field or ""))
        )

    def one_each(
        self, keyed: Iterable[tuple[str, Element]], field: str = "id"
    ) -> dict[str, Element]:
        """*keyed*'s elements by key; a key on several elements rejects each of them.

        An element of an empty key is rejected too. The keys kept are in key order.
        """
        seen: dict[str, list[Element]] = {}
        for key, element in keyed:
            if not key:
                self.reject(element, field, "no id")
            else:
                seen.setdefault(key, []).append(element)
        kept = {}
        for key in sorted(seen):
            elements = seen[key]
            if len(elements) == 1:
                kept[key] = elements[0]
                continue
            where = ", ".join(f"{e.file} line {e.line}" for e in elements)
            for element in elements:
                self.reject(
                    element, field, f"this id is on several elements ({where}); none is used"
                )
        return kept

    def check(self) -> None:
        """Over the limit, a :class:`~sourcetruth.RejectedFileError` holding every problem."""
        bad = Counter(self._bad.values())
        read = {group: max(count, self._read[group]) for group, count in bad.items()}
        over = [
            f"{count} of {read[group]} {group[1]} elements of {group[0]}"
            for group, count in sorted(bad.items())
            if count >= read[group] or count > self.max_fraction * read[group]
        ]
        if over:
            msg = (
                f"{'; '.join(over)} rejected, more than the {self.max_fraction:.0%} allowed; "
                "nothing was applied"
            )
            raise RejectedFileError(msg, list(self.problems))

    def reading(
        self,
        source: str,
        extracted_at: datetime,
        records: Iterable[Record],
        notices: Sequence[Notice] = (),
    ) -> Reading:
        """The reading of *records* (in key order), with every rejected element a notice.

        Over the limit, :meth:`check`'s error. With no rejection the snapshot is
        full, and one without records is refused (an export of nobody never
        reads as everyone leaving); with rejections it is a delta.
        """
        self.check()
        ordered = sorted(records, key=lambda r: r.key)
        if not self._bad:
            if not ordered:
                msg = "no records: an empty export is never read as everyone leaving"
                raise RejectedFileError(msg, [SourceDataError(msg)])
            return Reading(Snapshot(source, extracted_at, ordered), notices)
        said = [
            Notice("element-rejected", p.reason, p.file, p.line, p.field) for p in self.problems
        ]
        msg = (
            f"{self.total} element{'s' if self.total != 1 else ''} rejected; the rest is "
            "applied as an update, so nobody departs on this reading"
        )
        said.insert(0, Notice("elements-rejected", msg))
        snapshot = Snapshot(source, extracted_at, ordered, kind=SnapshotKind.DELTA)
        return Reading(snapshot, [*notices, *said], self.total)
