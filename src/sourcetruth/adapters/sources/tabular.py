"""Generic CSV/TXT imports: a file, an explicit column mapping, no guessing.

The source document warns about manual imports: a spreadsheet saved in the
wrong encoding, a column of phone numbers turned into floats, a half-finished
file. This adapter reads one such file into a snapshot through a
:class:`CsvMapping` that says, in data, which column holds what and how the
file is written. It never sniffs a delimiter, never infers a type and never
falls back to an encoding it was not told about.

A mapping can be built in code or read from a TOML file::

    key = "Id"
    given_name = "First name"
    family_name = "Last name"
    role = "Type"
    phones = [{ column = "Mobile", type = "mobile" }, { column = "Home", type = "home" }]
    emails = [{ column = "Email" }]

    [format]
    delimiter = ";"          # or "tab", "comma", "semicolon", "pipe"
    allow_cp1252 = true
    max_reject_fraction = 0.02
    header_row = 3           # title rows above the header are skipped
    find_header = false      # or skip to the first row holding every mapped column

When a file has no header, columns are named by their position, from ``"1"``.
An empty file and a file of a header and no rows are each refused with an
error of their own, naming the file. A row split in two by a line break
typed into a cell without quotes is rejected whole, at the line of the
break. A cell of a column the mapping does not read is never a reason to
refuse a row.

A mapping read from data (:meth:`CsvMapping.from_dict`, :meth:`CsvMapping.from_toml`)
is read by the package's one converter and checked by the classes' own checks:
nothing is coerced (``"yes"`` is not ``true``, ``"5"`` is not a number), a key
the mapping does not know is an error, and a :class:`CsvMappingError` names
each mistake by its key path (``phones[1].type``), never by the value found there.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tomllib
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import getitem, itemgetter
from pathlib import Path
from typing import Any, Final

import attrs
from attrs import field, frozen

from sourcetruth import _build as build
from sourcetruth._digest import (
    digest_of_parts,
    email_part,
    name_part,
    phone_part,
    relationship_part,
    text_part,
)
from sourcetruth._util import to_tuple as _tuple
from sourcetruth.adapters._structure import (
    CHARACTER,
    REQUIRED,
    Problem,
    StructureError,
    structure,
)
from sourcetruth.adapters._util import one_phone_per_number
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.adapters.sources.text import (
    DEFAULT_MAX_FIELD,
    TableStream,
    by_position,
    open_table,
    reject_if_needed,
)
from sourcetruth.digested import DigestedRecords
from sourcetruth.exceptions import AdapterError, RejectedFileError, SourceDataError, UsageError
from sourcetruth.model import (
    Email,
    EmailType,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
    SnapshotKind,
    SourceKind,
)

__all__ = [
    "DEFAULT_ROLE_VALUES",
    "CsvFormat",
    "CsvImportAdapter",
    "CsvMapping",
    "CsvMappingError",
    "EmailColumn",
    "PhoneColumn",
    "read_csv",
    "write_csv",
]

#: How the words people put in a "type" column map to roles, case-blind.
DEFAULT_ROLE_VALUES: Final[Mapping[str, Role]] = {
    "pupil": Role.PUPIL,
    "student": Role.PUPIL,
    "parent": Role.GUARDIAN,
    "guardian": Role.GUARDIAN,
    "carer": Role.GUARDIAN,
    "contact": Role.GUARDIAN,
    "staff": Role.STAFF,
    "teacher": Role.STAFF,
    "governor": Role.GOVERNOR,
    "other": Role.OTHER,
}

# What a spreadsheet leaves when it reads a phone number as a number: a float
# in scientific notation (4.47700900123E+11, or 4,477E+11 with a decimal comma)
# or with a decimal tail (7700900123.0).
# The digits it dropped (a leading zero, the last places) cannot be recovered.
_SPREADSHEET_NUMBER = re.compile(r"^\s*\d+([.,]\d+)?[eE][+-]?\d+\s*$|^\s*\d+[.,]0+\s*$")


#: What a mapping file is told when it leaves out a column's name.
_COLUMN_NAME: Final = {REQUIRED: "the name of the column"}


@frozen
class PhoneColumn:
    """A column of phone numbers and the type its numbers have."""

    column: str = field(metadata=_COLUMN_NAME)
    type: PhoneType = PhoneType.MOBILE


@frozen
class EmailColumn:
    """A column of email addresses and the type its addresses have."""

    column: str = field(metadata=_COLUMN_NAME)
    type: EmailType = EmailType.HOME


_DELIMITERS: Final = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
_DELIMITER_NAMED: Final = {name: character for character, name in _DELIMITERS.items()}


def _delimiter(value: str) -> str:
    """A delimiter given as itself or by its name (``"tab"``, which a mapping file can write)."""
    return _DELIMITER_NAMED.get(value.strip().lower(), value) if isinstance(value, str) else value


def _at_least_one(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        msg = f"{attr.name} must be a whole number, 1 or more"
        raise UsageError(msg)


def _fraction(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        msg = f"{attr.name} must be from 0 to 1"
        raise UsageError(msg)


@frozen
class CsvFormat:
    """How the file is written: nothing about it is sniffed.

    ``delimiter`` is one of comma, tab, semicolon or pipe, given as the
    character or by that name (``"tab"``); ``allow_cp1252``
    lets a file that is not UTF-8 be read as Windows-1252; ``max_field`` bounds a cell's length;
    ``max_reject_fraction`` is the share of rows that may be rejected before
    the whole file is (0 by default: one bad row rejects the file).
    ``header_row`` is the line the header is on (title rows above it, as a
    council export or an Excel paste has, are skipped); with ``find_header``
    the rows above the first row that holds every mapped column are skipped
    too (up to :data:`~sourcetruth.adapters.sources.text.HEADER_SEARCH`).
    Skipped rows are reported by line number only, in a ``rows-skipped`` notice.
    """

    delimiter: str = field(default=",", converter=_delimiter, metadata={CHARACTER: True})
    quotechar: str = field(default='"', metadata={CHARACTER: True})
    has_header: bool = True
    allow_cp1252: bool = False
    max_field: int = field(default=DEFAULT_MAX_FIELD, validator=_at_least_one)
    max_reject_fraction: float = field(default=0.0, validator=_fraction)
    header_row: int = field(default=1, validator=_at_least_one)
    find_header: bool = False

    def __attrs_post_init__(self) -> None:
        # The dialect is checked as a whole, so a mapping file's mistake in it
        # names the [format] table.
        if self.delimiter not in _DELIMITERS:
            msg = f"the delimiter is one of {', '.join(_DELIMITERS.values())}"
            raise UsageError(msg)
        if len(self.quotechar) != 1 or self.quotechar in "\r\n" or self.quotechar in _DELIMITERS:
            msg = "the quote character is one character, neither a line break nor a delimiter"
            raise UsageError(msg)


def _role_values(value: Mapping[str, Role | str]) -> dict[str, Role]:
    return {str(k).strip().casefold(): Role(r) for k, r in value.items()}


def _columns(value: Any) -> tuple[Any, ...]:
    return _tuple(value)


@frozen
class CsvMapping:
    """Which column holds what, and how the file is written.

    Only ``key`` is required: the column holding each row's stable key (an
    MIS id, an admission number). Errors and notices name rows by line, never
    by key, since a school may key a file by something personal. Each other field is
    read from its column when one is named; the fields named are the ones
    the import covers. ``role`` names a column whose values
    ``role_values`` maps (case-blind) to roles; ``default_role`` is the role
    of every row when there is no role column. ``guardian_of`` names a
    column listing the keys of a guardian's pupils, separated by
    ``list_separator``: keys of this same file, as relationships are
    everywhere in the model, read in key order whatever their order in the
    cell.
    """

    key: str = field(
        metadata={REQUIRED: "the column that holds each row's stable key (an id, not a name)"}
    )
    given_name: str | None = None
    family_name: str | None = None
    role: str | None = None
    role_values: Mapping[str, Role] = field(
        factory=lambda: dict(DEFAULT_ROLE_VALUES), converter=_role_values
    )
    default_role: Role = Role.OTHER
    phones: tuple[PhoneColumn, ...] = field(default=(), converter=_columns)
    emails: tuple[EmailColumn, ...] = field(default=(), converter=_columns)
    year_group: str | None = None
    registration_group: str | None = None
    guardian_of: str | None = None
    list_separator: str = ";"
    format: CsvFormat = CsvFormat()

    @property
    def covers(self) -> frozenset[str]:
        """The contact fields this mapping fills."""
        named = {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "year_group": self.year_group,
            "registration_group": self.registration_group,
            "relationships": self.guardian_of,
        }
        found = {name for name, column in named.items() if column is not None}
        found.add("role")
        if self.phones:
            found.add("phones")
        if self.emails:
            found.add("emails")
        return frozenset(found)

    def columns(self) -> dict[str, str]:
        """Each mapped column and the field it fills, in mapping order."""
        found = {self.key: "key"}
        for name in ("given_name", "family_name", "role", "year_group", "registration_group"):
            column = getattr(self, name)
            if column is not None:
                found.setdefault(column, name)
        for phone in self.phones:
            found.setdefault(phone.column, "phones")
        for email in self.emails:
            found.setdefault(email.column, "emails")
        if self.guardian_of is not None:
            found.setdefault(self.guardian_of, "relationships")
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, file: str = "<mapping>") -> CsvMapping:
        """Build a mapping from plain data (parsed TOML or JSON).

        Nothing is coerced and an unknown key is an error: a
        :class:`CsvMappingError` that names *file* and, for each mistake, its
        key path (like ``phones[1].type``), never the value found there.
        """
        try:
            return structure(data, cls)
        except StructureError as error:
            raise CsvMappingError(file, error.problems) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> CsvMapping:
        """Read a mapping file written in TOML (see the module's documentation)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            msg = f"cannot read the mapping file {os.fspath(path)}: {error.strerror}"
            raise AdapterError(msg) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            msg = f"{os.fspath(path)}: not valid TOML: {error}"
            raise UsageError(msg) from None
        return cls.from_dict(data, file=os.fspath(path))


class CsvMappingError(UsageError):
    """A CSV mapping that cannot be used.

    ``file`` names where it was read from; ``problems`` holds each mistake,
    first the first found: its ``path``, the key in the file's words
    (``format.delimiter``, ``phones[1].type``), and its ``message``, which
    never holds the value found there.
    """

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        detail = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems)
        super().__init__(f"{file}: not a valid CSV mapping: {detail}")


class _Columns:
    """Resolves mapped column names to cell positions once per file."""

    def __init__(
        self, mapping: CsvMapping, header: tuple[str, ...], file: str, line: int = 1
    ) -> None:
        self.file = file
        self.positions: dict[str, int] = {}
        problems: list[SourceDataError] = []
        notices: list[Notice] = []
        mapped = mapping.columns()
        if mapping.format.has_header:
            names = [h.strip() for h in header]
            at: dict[str, list[int]] = {}
            for index, name in enumerate(names):
                if name:
                    at.setdefault(name, []).append(index)
            # A header cell is named only when the mapping names it: otherwise it
            # may be someone's data (a header line run into the first row).
            for name, indexes in at.items():
                if len(indexes) > 1 and name in mapped:
                    msg = f"the header names this mapped column {len(indexes)} times"
                    problems.append(SourceDataError(msg, file=file, line=line, field=name))
                elif len(indexes) > 1:
                    places = ", ".join(str(i + 1) for i in indexes)
                    msg = f"columns {places} have the same header and are not mapped; ignored"
                    notices.append(
                        Notice(
                            "duplicate-header",
                            msg,
                            file=file,
                            line=line,
                            field=by_position(indexes[0]),
                        )
                    )
            for index, name in enumerate(names):
                self.positions.setdefault(name, index)
        else:
            for column in mapped:
                if not column.isdigit() or int(column) < 1:
                    msg = "a file without a header names columns by position, from 1"
                    msg_0 = f"{msg} (column {column!r} of the mapping)"
                    raise UsageError(msg_0)
                self.positions[column] = int(column) - 1
        if mapping.format.has_header:
            for column, field_name in mapped.items():
                if column not in self.positions:
                    msg = f"the mapped column for {field_name} is missing from the header"
                    problems.append(SourceDataError(msg, file=file, line=line, field=column))
        self.problems = problems
        self.notices = notices


#: What a phone cell that a spreadsheet turned into a number reads as.
_SPREADSHEET: Final = object()
_SPREADSHEET_MESSAGE: Final = (
    "a phone number a spreadsheet turned into a number (its leading 0 "
    "or last digits are gone); export the column as text"
)
#: What a role cell that the mapping does not name reads as.
_UNKNOWN_ROLE: Final = object()

# A column's distinct cells are checked once each and the outcome kept, up to
# this many per column: the values that repeat (roles, year groups, a
# household's landline) are found early, and a column of unique values cannot
# grow the cache without bound.
_CACHED_CELLS: Final = 1 << 16


class _CellCache(dict[str, Any]):
    """One column's cells and what each reads as, computed once per distinct cell."""

    def __init__(self, read: Callable[[str], Any]) -> None:
        super().__init__()
        self.read = read

    def __missing__(self, raw: str) -> Any:
        found = self.read(raw)
        if len(self) < _CACHED_CELLS:
            self[raw] = found
        return found


def _phones_of(spec: PhoneColumn) -> _CellCache:
    """A phone column's cache: a cell's phones as a tuple, or _SPREADSHEET."""

    def read(raw: str) -> Any:
        value = raw.strip()
        if _SPREADSHEET_NUMBER.match(value):
            return _SPREADSHEET
        return (build.phone(value, spec.type),) if value else ()

    return _CellCache(read)


def _emails_of(spec: EmailColumn) -> _CellCache:
    """An email column's cache: a cell's emails as a tuple."""

    def read(raw: str) -> tuple[Email, ...]:
        value = raw.strip()
        return (build.email(value, spec.type),) if value else ()

    return _CellCache(read)


def _roles_of(mapping: CsvMapping) -> _CellCache:
    """The role column's cache: a cell's role, or _UNKNOWN_ROLE."""

    def read(raw: str) -> Any:
        value = raw.strip()
        if not value:
            return mapping.default_role
        return mapping.role_values.get(value.casefold(), _UNKNOWN_ROLE)

    return _CellCache(read)


def _pupils_of(mapping: CsvMapping) -> _CellCache:
    """The guardian_of column's cache: a cell's relationships, each pupil once, by key.

    By key, not in the cell's order: the links' order means nothing, and a
    cell written in another order on another night is no change.
    """
    separator = mapping.list_separator

    def read(raw: str) -> tuple[Relationship, ...]:
        pupils = {p.strip() for p in raw.split(separator) if p.strip()}
        return tuple(build.relationship(pupil) for pupil in sorted(pupils))

    return _CellCache(read)


# The parts of the canonical text (sourcetruth._digest) of each distinct cell,
# from which a row's digest is made without building its record: each cache
# gives what the matching cache above builds, as text.


def _phone_parts_of(spec: PhoneColumn) -> _CellCache:
    """A phone column's parts: a cell's phone's part, "" for none, or _SPREADSHEET."""

    def read(raw: str) -> Any:
        value = raw.strip()
        if _SPREADSHEET_NUMBER.match(value):
            return _SPREADSHEET
        return phone_part(value, spec.type) if value else ""

    return _CellCache(read)


def _email_parts_of(spec: EmailColumn) -> _CellCache:
    """An email column's parts: a cell's email's part, "" for none."""

    def read(raw: str) -> str:
        value = raw.strip()
        return email_part(value, spec.type) if value else ""

    return _CellCache(read)


def _role_parts_of(mapping: CsvMapping) -> _CellCache:
    """The role column's parts: a cell's role's part, or _UNKNOWN_ROLE."""
    roles = _roles_of(mapping)

    def read(raw: str) -> Any:
        role = roles[raw]
        return role if role is _UNKNOWN_ROLE else text_part(role.value)

    return _CellCache(read)


def _pupils_parts_of(mapping: CsvMapping) -> _CellCache:
    """The guardian_of column's parts: a cell's relationships' parts, joined."""
    pupils = _pupils_of(mapping)

    def read(raw: str) -> str:
        return ", ".join([relationship_part(r) for r in pupils[raw]])

    return _CellCache(read)


def _text_parts() -> _CellCache:
    """A text column's parts: a cell's text, trimmed, as its part."""
    return _CellCache(lambda raw: text_part(raw.strip()))


def _name_parts() -> _CellCache:
    """A name column's parts: a cell's text, trimmed, as a name's part (in NFC)."""
    return _CellCache(lambda raw: name_part(raw.strip()))


def _joined(parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The parts' values in order, each once (equal values are one)."""
    found = [part for part in parts if part]
    if len(found) <= 1:
        return found[0] if found else ()
    if len(found) == 2 and len(found[0]) == 1 and len(found[1]) == 1:
        # Two columns of one value each, the usual case: the values' types (the
        # columns') tell them apart before their text is compared.
        first, second = found[0][0], found[1][0]
        if first is second or (first.type is second.type and first == second):
            return found[0]
        return found[0] + found[1]
    return tuple(dict.fromkeys(value for part in found for value in part))


def _phones_part(parts: list[str], cells: list[str], values: list[tuple[int, _CellCache]]) -> str:
    """The phones' part of a row with several phone columns: one phone per number.

    Most such rows hold two numbers: their parts join as they are. A row
    whose columns hold one number twice (by its digits, under two types)
    holds it once, as :func:`~sourcetruth.adapters._util.one_phone_per_number` says.
    """
    present = [part for part in parts if part]
    if len(present) < 2:
        return present[0] if present else ""
    phones = one_phone_per_number(_joined([cache[cells[at]] for at, cache in values]))
    return ", ".join([phone_part(p.number, p.type) for p in phones])


def _joined_parts(parts: list[str]) -> str:
    """The list of values whose parts these are ("" for none), each value once.

    For columns of one type, which may hold one value twice: equal parts are
    equal values. Columns of distinct types just join their parts.
    """
    return ", ".join(dict.fromkeys(part for part in parts if part))


class _Places:
    """Where each mapped field's cell is in a row's cells (None: not mapped)."""

    def __init__(self, mapping: CsvMapping, at: Callable[[str], int]) -> None:
        def place(column: str | None) -> int | None:
            return None if column is None else at(column)

        self.key = at(mapping.key)
        self.given = place(mapping.given_name)
        self.family = place(mapping.family_name)
        self.year = place(mapping.year_group)
        self.registration = place(mapping.registration_group)
        self.role = place(mapping.role)
        self.pupils = place(mapping.guardian_of)
        self.phones = [at(s.column) for s in mapping.phones]
        self.emails = [at(s.column) for s in mapping.emails]

    def all(self) -> list[int]:
        fields = (self.key, self.given, self.family, self.year, self.registration, self.role)
        found = [i for i in (*fields, self.pupils) if i is not None]
        return [*found, *self.phones, *self.emails]


class _Parts:
    """One reading's caches of each mapped column's cells as canonical parts (see _digest)."""

    def __init__(self, mapping: CsvMapping, places: _Places) -> None:
        self.phones = [
            (at, spec.column, _phone_parts_of(spec))
            for at, spec in zip(places.phones, mapping.phones, strict=True)
        ]
        self.emails = [
            (at, _email_parts_of(spec))
            for at, spec in zip(places.emails, mapping.emails, strict=True)
        ]
        # Columns of one type may hold one value twice, which a record holds once.
        self.emails_distinct = len({s.type for s in mapping.emails}) == len(mapping.emails)
        self.empty = text_part("")
        self.role_at = places.role
        self.roles = _role_parts_of(mapping)
        self.default_role = text_part(mapping.default_role.value)
        self.other_role = text_part(Role.OTHER.value)
        self.text_places = (places.given, places.family, places.year, places.registration)
        self.texts = (_name_parts(), _name_parts(), _text_parts(), _text_parts())
        # A row with two numbers may hold one number twice, under two types: it is
        # one phone (adapters._util.one_phone_per_number), so those rows' phones are
        # made as values to be digested.
        self.phone_values = [
            (at, _phones_of(spec))
            for at, _, spec in zip(places.phones, self.phones, mapping.phones, strict=True)
        ]
        self.pupils_at = places.pupils
        self.pupils = _pupils_parts_of(mapping)


class _RowReader:
    """Reads one file's rows into keys and digests, with the mapping resolved to positions once.

    Each row is checked (its key, its phones) and digested from its cells'
    parts; only its mapped cells are kept, as one string, from which
    :meth:`build` makes its record when the merge asks for it.
    """

    def __init__(self, mapping: CsvMapping, columns: _Columns, notices: list[Notice]) -> None:
        self.file = columns.file
        self.mapping = mapping
        self.notices = notices
        self.places = _Places(mapping, columns.positions.__getitem__)
        used = sorted(set(self.places.all()))
        # A short row (a file without a header, whose first row is narrower than
        # a mapped position) reads its missing cells as empty.
        self.width = 1 + used[-1]
        # A row's mapped cells are kept joined by NUL, which no usable row holds.
        self.kept: Callable[[list[str]], Sequence[str]] = (
            itemgetter(*used) if len(used) > 1 else lambda cells: (cells[used[0]],)
        )
        compact = {i: n for n, i in enumerate(used)}
        self.built = _Places(mapping, lambda column: compact[columns.positions[column]])
        self.rows: list[str] = []
        self._builder: _Builder | None = None

    def read(
        self, stream: TableStream, problems: list[SourceDataError]
    ) -> tuple[list[str], list[str], array[int], int]:
        """The rows' keys and digests, each one's line, and how many rows count for the limit."""
        keys: list[str] = []
        digests: list[str] = []
        rows = self.rows
        lines = array("l")  # eight bytes a row, where a list of ints costs 36
        blank = 0
        width, key_at = self.width, self.places.key
        parts = _Parts(self.mapping, self.places)
        phones = parts.phones
        emails, emails_distinct = parts.emails, parts.emails_distinct
        empty, role_at, roles = parts.empty, parts.role_at, parts.roles
        given_at, family_at, year_at, reg_at = parts.text_places
        given, family, year, registration = parts.texts
        pupils_at, pupils = parts.pupils_at, parts.pupils
        phone_places = [at for at, _, _ in phones]
        phone_caches = [cache for _, _, cache in phones]
        email_places = [at for at, _ in emails]
        email_caches = [cache for _, cache in emails]
        kept = self.kept
        join = "\0".join
        listed = ", ".join
        digest = digest_of_parts
        add_key, add_digest, add_row, add_line = (
            keys.append,
            digests.append,
            rows.append,
            lines.append,
        )
        for line, cells in stream:
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            key = cells[key_at].strip()
            if not key:
                if any(map(str.strip, cells)):
                    problems.append(self._problem("a row with no key", line, self.mapping.key))
                else:
                    blank += 1  # a row of empty cells is a blank line a spreadsheet wrote
                continue
            cell = cells.__getitem__
            # Each column's cache gives its cell's part (a C loop: one call a row, not a column).
            phone_parts = list(map(getitem, phone_caches, map(cell, phone_places)))
            if _SPREADSHEET in phone_parts:
                for (_, column, _), found in zip(phones, phone_parts, strict=True):
                    if found is _SPREADSHEET:
                        problems.append(self._problem(_SPREADSHEET_MESSAGE, line, column))
                continue
            role = parts.default_role if role_at is None else roles[cells[role_at]]
            if role is _UNKNOWN_ROLE:
                role = self._unknown_role(line, parts)
            email_parts = map(getitem, email_caches, map(cell, email_places))
            add_key(key)
            add_digest(
                digest(
                    empty if given_at is None else given[cells[given_at]],
                    empty if family_at is None else family[cells[family_at]],
                    role,
                    phone_parts[0]
                    if len(phone_parts) == 1
                    else _phones_part(phone_parts, cells, parts.phone_values),
                    listed(filter(None, email_parts))
                    if emails_distinct
                    else _joined_parts(list(email_parts)),
                    "" if pupils_at is None else pupils[cells[pupils_at]],
                    empty if year_at is None else year[cells[year_at]],
                    empty if reg_at is None else registration[cells[reg_at]],
                )
            )
            add_row(join(kept(cells)))
            add_line(line)
        return keys, digests, lines, stream.rows + stream.rejected - blank

    def _problem(self, message: str, line: int, field: str | None) -> SourceDataError:
        return SourceDataError(message, file=self.file, line=line, field=field)

    def _unknown_role(self, line: int, parts: _Parts) -> str:
        """The notice of a role the mapping does not name, and the part of the role it reads as."""
        msg = "a role value the mapping does not name; read as other"
        self.notices.append(
            Notice("unknown-role", msg, file=self.file, line=line, field=self.mapping.role)
        )
        return parts.other_role

    def build(self, index: int) -> Record:
        """The record of the row read *index*-th: built from its kept cells, checked when read."""
        if self._builder is None:
            self._builder = _Builder(self.mapping, self.built)
        return self._builder.record(self.rows[index].split("\0"))


class _Builder:
    """Builds records from rows already read and checked: each distinct cell's value made once."""

    def __init__(self, mapping: CsvMapping, places: _Places) -> None:
        self.mapping = mapping
        self.places = places
        self.phones = [
            (at, _phones_of(s)) for at, s in zip(places.phones, mapping.phones, strict=True)
        ]
        self.emails = [
            (at, _emails_of(s)) for at, s in zip(places.emails, mapping.emails, strict=True)
        ]
        self.roles = _roles_of(mapping)
        # Names and groups repeat down a column: each distinct one is kept once.
        self.given = _CellCache(str.strip)
        self.family = _CellCache(str.strip)
        self.year = _CellCache(str.strip)
        self.registration = _CellCache(str.strip)
        self.pupils = _pupils_of(mapping)

    def record(self, cells: list[str]) -> Record:
        places = self.places
        role = self.mapping.default_role
        if places.role is not None:
            role = self.roles[cells[places.role]]
            if role is _UNKNOWN_ROLE:
                role = Role.OTHER  # the reading gave its notice
        at = places.given
        given = "" if at is None else self.given[cells[at]]
        at = places.family
        family = "" if at is None else self.family[cells[at]]
        at = places.year
        year = "" if at is None else self.year[cells[at]]
        at = places.registration
        registration = "" if at is None else self.registration[cells[at]]
        at = places.pupils
        relationships = () if at is None else self.pupils[cells[at]]
        phones = one_phone_per_number(_joined([cache[cells[at]] for at, cache in self.phones]))
        emails = _joined([cache[cells[at]] for at, cache in self.emails])
        data = build.contact_data(
            given, family, role, phones, emails, relationships, year, registration
        )
        return build.record(cells[places.key].strip(), data)


def read_csv(
    data: bytes | str,
    mapping: CsvMapping,
    *,
    file: str,
    source: str,
    extracted_at: datetime,
) -> Reading:
    """Read one CSV/TXT file's bytes into a snapshot of *source* through *mapping*.

    Every problem of the file is raised together as one
    :class:`~sourcetruth.RejectedFileError`, unless only rows were rejected
    and no more than ``mapping.format.max_reject_fraction`` of them: then the
    readable rows come back as a delta snapshot (so that a rejected row is
    never read as a departure) and the reading counts what it rejected.

    The snapshot's records are :class:`~sourcetruth.DigestedRecords`: each
    row's key and digest, made from its checked cells, and a record built
    only when asked for (a sync into a store that keeps digests builds only
    the records that changed).
    """
    fmt = mapping.format
    stream = open_table(
        data,
        file=file,
        delimiter=fmt.delimiter,
        quotechar=fmt.quotechar,
        has_header=fmt.has_header,
        allow_cp1252=fmt.allow_cp1252,
        max_field=fmt.max_field,
        column_name=_mapped_name(mapping),
        share=False,  # the row reader keeps only the mapped cells, joined
        header_row=fmt.header_row,
        is_header=_holds_every_column(mapping) if fmt.find_header else None,
    )
    if stream.empty:
        msg = "the file is empty: no header and no rows"
        msg_0 = f"{file}: empty; nothing from this file was applied"
        raise RejectedFileError(
            msg_0,
            [SourceDataError(msg, file=file)],
            file=file,
        )
    columns = _Columns(mapping, stream.header, file, stream.header_line)
    if columns.problems:
        # The rows' own problems are reported with the header's, as before the
        # rows were read one at a time.
        for _ in stream:
            pass
        msg = f"{file}: the header does not fit the mapping; nothing from this file was applied"
        raise RejectedFileError(msg, [*columns.problems, *stream.problems], file=file)
    notices = list(columns.notices)
    if stream.skipped:
        first, last = stream.skipped[0], stream.skipped[-1]
        msg = f"{len(stream.skipped)} rows above the header skipped (lines {first} to {last})"
        notices.append(Notice("rows-skipped", msg, file=file, line=first))
    problems: list[SourceDataError] = []
    reader = _RowReader(mapping, columns, notices)
    keys, digests, lines, rows = reader.read(stream, problems)
    problems[:0] = stream.problems
    order = _one_row_each(keys, lines, problems, file=file, column=mapping.key)
    del lines
    problems.sort(key=lambda p: (p.line or 0, p.field or ""))
    if not rows:
        # An export of nobody is never read as everyone leaving (rule 6): said
        # here, where the file is known, rather than by the merge.
        msg = "a header and no rows: an empty export is never read as everyone leaving"
        msg_0 = f"{file}: no rows; nothing from this file was applied"
        raise RejectedFileError(
            msg_0,
            [SourceDataError(msg, file=file, line=stream.header_line if fmt.has_header else None)],
            file=file,
        )
    reject_if_needed(problems, rows=rows, file=file, max_fraction=fmt.max_reject_fraction)
    rejected = len({p.line for p in problems})
    kind = SnapshotKind.FULL
    if rejected:
        kind = SnapshotKind.DELTA
        msg = (
            f"{rejected} rows rejected; the rest is applied as an update, so nobody "
            "departs on this file"
        )
        notices.append(Notice("rows-rejected", msg, file=file))
        notices.extend(
            Notice("row-rejected", p.reason, file=file, line=p.line, field=p.field)
            for p in problems
        )
    notices.sort(key=lambda n: (n.line or 0, n.field or "", n.code))
    if order is None:
        records = DigestedRecords(keys, digests, reader.build)
    else:
        records = DigestedRecords(
            [keys[i] for i in order], [digests[i] for i in order], lambda i: reader.build(order[i])
        )
    snapshot = Snapshot(source, extracted_at, records, kind=kind)
    return Reading(snapshot, notices, rejected)


def _holds_every_column(mapping: CsvMapping) -> Callable[[list[str]], bool]:
    """Whether a row holds every column *mapping* names: the header, found below title rows."""
    wanted = set(mapping.columns())

    def holds(cells: list[str]) -> bool:
        return wanted <= {cell.strip() for cell in cells}

    return holds


def _mapped_name(mapping: CsvMapping) -> Callable[[str], str | None]:
    """A column's name in problems: its name in *mapping*, or None for a column it does not map."""
    mapped = mapping.columns()

    def name(header: str) -> str | None:
        return header.strip() if header.strip() in mapped else None

    return name


def _one_row_each(
    keys: list[str],
    lines: array[int],
    problems: list[SourceDataError],
    *,
    file: str,
    column: str,
) -> list[int] | None:
    """The rows to use, in key order (None: all, in file order).

    A key on several rows is a problem on each, and none of them is used.
    """
    if all(map(str.__lt__, keys, keys[1:])):
        return None  # in key order already, as most exports are: each key once
    # A stable sort: the rows of one key stay in file order.
    order = sorted(range(len(keys)), key=keys.__getitem__)
    kept: list[int] = []
    start = 0
    while start < len(order):
        key = keys[order[start]]
        end = start + 1
        while end < len(order) and keys[order[end]] == key:
            end += 1
        if end - start == 1:
            kept.append(order[start])
        else:
            seen = [lines[i] for i in order[start:end]]
            listed = ", ".join(str(line) for line in seen)
            for line in seen:
                msg = f"this key is on several rows (lines {listed}); none of them is used"
                problems.append(SourceDataError(msg, file=file, line=line, field=column))
        start = end
    return kept


class CsvImportAdapter:
    """A CSV/TXT file read through a :class:`CsvMapping` as one source's snapshot.

    The source is an import by default; an MIS that only exports a plain CSV
    file can be read with ``kind=SourceKind.MIS``.
    """

    supports_delta: Final = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        mapping: CsvMapping,
        *,
        source: str = "import",
        kind: SourceKind = SourceKind.IMPORT,
    ) -> None:
        if kind is SourceKind.ADDRESS_BOOK:
            msg = "the address book is not read from CSV as a source; import entries instead"
            raise UsageError(msg)
        self.path = Path(path)
        self.mapping = mapping
        self._source = source
        self._kind = kind

    def __repr__(self) -> str:
        return f"CsvImportAdapter({os.fspath(self.path)!r}, source={self._source!r})"

    @property
    def source(self) -> str:
        return self._source

    @property
    def kind(self) -> SourceKind:
        return self._kind

    @property
    def covers(self) -> frozenset[str]:
        return self.mapping.covers

    def read(self, *, extracted_at: datetime) -> Reading:
        """Read the file now; see :func:`read_csv`."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            msg = f"cannot read {os.fspath(self.path)}: {error.strerror}"
            raise AdapterError(msg, retryable=False) from None
        return read_csv(
            data,
            self.mapping,
            file=self.path.name,
            source=self._source,
            extracted_at=extracted_at,
        )


def write_csv(snapshot: Snapshot, mapping: CsvMapping) -> str:
    """*snapshot* as the file *mapping* reads: the inverse of :func:`read_csv`.

    For tests, demos and synthetic data. Each phone column takes the next
    number of its type, each email column the next address of its type;
    values with no column left are not written. Rows are in key order.
    """
    fmt = mapping.format
    columns = list(mapping.columns())
    if not fmt.has_header:
        columns.sort(key=int)
    width = len(columns) if fmt.has_header else max(int(c) for c in columns)
    names = {value: key for key, value in mapping.role_values.items()}
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter=fmt.delimiter, quotechar=fmt.quotechar, lineterminator="\r\n"
    )
    if fmt.has_header:
        writer.writerow(columns)
    for record in sorted(snapshot.records, key=lambda r: r.key):
        data = record.data
        cells: dict[str, str] = {mapping.key: record.key}
        for name in ("given_name", "family_name", "year_group", "registration_group"):
            column = getattr(mapping, name)
            if column is not None:
                cells[column] = getattr(data, name)
        if mapping.role is not None:
            cells[mapping.role] = names.get(data.role, data.role.value)
        for kind in PhoneType:
            numbers = iter(p.number for p in data.phones if p.type is kind)
            for spec in (s for s in mapping.phones if s.type is kind):
                cells[spec.column] = next(numbers, "")
        for email_kind in EmailType:
            addresses = iter(e.address for e in data.emails if e.type is email_kind)
            for email_spec in (s for s in mapping.emails if s.type is email_kind):
                cells[email_spec.column] = next(addresses, "")
        if mapping.guardian_of is not None:
            pupils = [r.pupil for r in data.relationships]
            cells[mapping.guardian_of] = mapping.list_separator.join(pupils)
        if fmt.has_header:
            writer.writerow(cells.get(c, "") for c in columns)
        else:
            writer.writerow(cells.get(str(i), "") for i in range(1, width + 1))
    return out.getvalue()
