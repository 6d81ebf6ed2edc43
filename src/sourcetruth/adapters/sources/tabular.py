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
    delimiter = ";"
    allow_cp1252 = true
    max_reject_fraction = 0.02

When a file has no header, columns are named by their position, from ``"1"``.

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
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
from attrs import field, frozen

from sourcetruth._util import to_tuple as _tuple
from sourcetruth.adapters._structure import (
    CHARACTER,
    REQUIRED,
    Problem,
    StructureError,
    structure,
)
from sourcetruth.adapters._util import cell
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.adapters.sources.text import (
    DEFAULT_MAX_FIELD,
    Row,
    Table,
    by_position,
    read_table,
    reject_if_needed,
)
from sourcetruth.exceptions import AdapterError, RejectedFileError, SourceDataError, UsageError
from sourcetruth.model import (
    ContactData,
    Email,
    EmailType,
    Phone,
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

    ``delimiter`` is one of comma, tab, semicolon or pipe; ``allow_cp1252``
    lets a file that is not UTF-8 be read as Windows-1252; ``max_field`` bounds a cell's length;
    ``max_reject_fraction`` is the share of rows that may be rejected before
    the whole file is (0 by default: one bad row rejects the file).
    """

    delimiter: str = field(default=",", metadata={CHARACTER: True})
    quotechar: str = field(default='"', metadata={CHARACTER: True})
    has_header: bool = True
    allow_cp1252: bool = False
    max_field: int = field(default=DEFAULT_MAX_FIELD, validator=_at_least_one)
    max_reject_fraction: float = field(default=0.0, validator=_fraction)

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
    everywhere in the model.
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

    def __init__(self, mapping: CsvMapping, header: tuple[str, ...], file: str) -> None:
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
                    problems.append(SourceDataError(msg, file=file, line=1, field=name))
                elif len(indexes) > 1:
                    places = ", ".join(str(i + 1) for i in indexes)
                    msg = f"columns {places} have the same header and are not mapped; ignored"
                    notices.append(
                        Notice(
                            "duplicate-header",
                            msg,
                            file=file,
                            line=1,
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
                    problems.append(SourceDataError(msg, file=file, line=1, field=column))
        self.problems = problems
        self.notices = notices

    def cell(self, row: Row, column: str) -> str:
        return cell(row.cells, self.positions[column])


def _role(value: str, mapping: CsvMapping, where: dict[str, Any], notices: list[Notice]) -> Role:
    if not value.strip():
        return mapping.default_role
    found = mapping.role_values.get(value.strip().casefold())
    if found is None:
        msg = "a role value the mapping does not name; read as other"
        notices.append(Notice("unknown-role", msg, **where))
        return Role.OTHER
    return found


def _row_data(
    row: Row,
    columns: _Columns,
    mapping: CsvMapping,
    notices: list[Notice],
) -> tuple[str, ContactData] | list[SourceDataError]:
    file = columns.file
    key = columns.cell(row, mapping.key).strip()
    if not key:
        return [SourceDataError("a row with no key", file=file, line=row.line, field=mapping.key)]
    problems: list[SourceDataError] = []

    def text(column: str | None) -> str:
        return "" if column is None else columns.cell(row, column).strip()

    phones: list[Phone] = []
    for spec in mapping.phones:
        value = text(spec.column)
        if _SPREADSHEET_NUMBER.match(value):
            msg = (
                "a phone number a spreadsheet turned into a number (its leading 0 "
                "or last digits are gone); export the column as text"
            )
            problems.append(SourceDataError(msg, file=file, line=row.line, field=spec.column))
        elif value:
            phones.append(Phone(value, spec.type))
    emails = [Email(text(spec.column), spec.type) for spec in mapping.emails if text(spec.column)]
    relationships: list[Relationship] = []
    if mapping.guardian_of is not None:
        pupils = text(mapping.guardian_of).split(mapping.list_separator)
        for pupil in dict.fromkeys(p.strip() for p in pupils if p.strip()):
            relationships.append(Relationship(pupil))
    if problems:
        return problems
    where: dict[str, Any] = {"file": file, "line": row.line, "field": mapping.role}
    role = _role(text(mapping.role), mapping, where, notices) if mapping.role else None
    data = ContactData(
        given_name=text(mapping.given_name),
        family_name=text(mapping.family_name),
        role=role if role is not None else mapping.default_role,
        phones=tuple(dict.fromkeys(phones)),
        emails=tuple(dict.fromkeys(emails)),
        relationships=tuple(relationships),
        year_group=text(mapping.year_group),
        registration_group=text(mapping.registration_group),
    )
    return key, data


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
    """
    fmt = mapping.format
    table = read_table(
        data,
        file=file,
        delimiter=fmt.delimiter,
        quotechar=fmt.quotechar,
        has_header=fmt.has_header,
        allow_cp1252=fmt.allow_cp1252,
        max_field=fmt.max_field,
        column_name=_mapped_name(mapping),
    )
    columns = _Columns(mapping, table.header, file)
    if columns.problems:
        problems = [*columns.problems, *table.problems]
        msg = f"{file}: the header does not fit the mapping; nothing from this file was applied"
        raise RejectedFileError(msg, problems, file=file)
    notices = list(columns.notices)
    problems = list(table.problems)
    found, rows = _read_rows(table, columns, mapping, notices, problems)
    records = _one_row_each(found, problems, file=file, column=mapping.key)
    problems.sort(key=lambda p: (p.line or 0, p.field or ""))
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
    snapshot = Snapshot(source, extracted_at, records, kind=kind)
    return Reading(snapshot, notices, rejected)


def _mapped_name(mapping: CsvMapping) -> Callable[[str], str | None]:
    """A column's name in problems: its name in *mapping*, or None for a column it does not map."""
    mapped = mapping.columns()

    def name(header: str) -> str | None:
        return header.strip() if header.strip() in mapped else None

    return name


def _read_rows(
    table: Table,
    columns: _Columns,
    mapping: CsvMapping,
    notices: list[Notice],
    problems: list[SourceDataError],
) -> tuple[dict[str, list[tuple[int, ContactData]]], int]:
    """Each key's rows (line, data), and how many rows count towards the reject limit."""
    found: dict[str, list[tuple[int, ContactData]]] = {}
    rows = len(table.rows) + table.rejected
    for row in table.rows:
        if not any(cell.strip() for cell in row.cells):
            rows -= 1  # a row of empty cells is a blank line a spreadsheet wrote
            continue
        outcome = _row_data(row, columns, mapping, notices)
        if isinstance(outcome, list):
            problems.extend(outcome)
        else:
            found.setdefault(outcome[0], []).append((row.line, outcome[1]))
    return found, rows


def _one_row_each(
    found: Mapping[str, list[tuple[int, ContactData]]],
    problems: list[SourceDataError],
    *,
    file: str,
    column: str,
) -> list[Record]:
    """The records of keys on one row, by key; a key on several rows is a problem on each."""
    records: list[Record] = []
    for key, seen in sorted(found.items()):
        if len(seen) > 1:
            lines = ", ".join(str(line) for line, _ in seen)
            for line, _ in seen:
                msg = f"this key is on several rows (lines {lines}); none of them is used"
                problems.append(SourceDataError(msg, file=file, line=line, field=column))
        else:
            records.append(Record(key, seen[0][1]))
    return records


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
