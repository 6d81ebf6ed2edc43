"""Microsoft School Data Sync (SDS) v2.1 CSV: the second MIS export dialect.

The format, as followed here
----------------------------

Sources followed: Microsoft Learn, "SDS V2.1 CSV File Format"
(``learn.microsoft.com/schooldatasync/sds-v2.1-csv-file-format``) and
"Default List of Values" (``learn.microsoft.com/schooldatasync/default-list-of-values``),
with the v2.1 sample set in the SDS GitHub repository
(``OfficeDev/O365-EDU-Tools``, ``CSV Samples/SDS v2.1/``) for the exact
header spelling and the direction of ``relationships.csv``.

- A folder of files named exactly ``orgs.csv``, ``users.csv`` and
  ``roles.csv`` (required), and ``relationships.csv`` (optional in SDS).
  ``classes.csv``, ``enrollments.csv`` and the other optional files carry no
  contact data and are not read.
- UTF-8, RFC 4180, a header row; SDS says headers are case-sensitive and
  cells hold no line breaks.
- ``users.csv``: ``sourcedId``, ``username`` (required); ``givenName``,
  ``familyName`` (required when creating users); ``password``,
  ``activeDirectoryMatchId``, ``email``, ``phone``, ``sms`` (optional). The
  doc asks for ``phone`` and ``sms`` in E.164 and says SDS strips spaces and
  punctuation itself.
- ``roles.csv``: ``userSourcedId``, ``orgSourcedId``, ``role`` (required);
  ``sessionSourcedId``, ``grade``, ``isPrimary``, ``roleStartDate``,
  ``roleEndDate`` (optional). ``role`` is one of the default values:
  ``student`` (role group Student); ``principal``, ``chair``, ``professor``,
  ``researcher``, ``adjunct``, ``affiliate``, ``occupationalTherapist``,
  ``physicalTherapist``, ``speechTherapist``, ``visionTherapist``,
  ``paraprofessional``, ``specialServices``, ``advisor``, ``proctor``,
  ``nurse``, ``officeStaff``, ``lecturer``, ``itAdmin``, ``administrator``,
  ``teacher``, ``faculty``, ``staff``, ``teacherAssistant``, ``assistant``,
  ``instructor``, ``substitute``, ``coach``, ``alumni`` (role group Staff);
  ``other``.
- ``relationships.csv``: ``userSourcedId`` (the **student**),
  ``relationshipUserSourcedId`` (the contact), ``relationshipRole`` (one of
  ``parent``, ``guardian``, ``relative``, ``aide``, ``doctor``, ``other``).
  Contacts are ordinary ``users.csv`` rows with no ``roles.csv`` row; SDS
  requires their given name, family name and email.
- ``orgs.csv``: ``sourcedId``, ``name``, ``type`` (required),
  ``parentSourcedId`` (optional).
- Every upload is the whole data set: SDS marks a record missing from an
  upload inactive. There is no delta form, so :attr:`SdsAdapter.supports_delta`
  is false.

Choices where the doc is silent or where this library needs more
----------------------------------------------------------------

- **Header case** is matched case-insensitively, with a ``header-case``
  notice, because spreadsheet round trips change it; unknown columns get an
  ``unknown-column`` notice. File names are matched the same way
  (``file-name-case``).
- **Columns that carry a covered field are required** even where SDS calls
  them optional (``givenName``, ``familyName``, ``email``, ``phone``, ``sms``,
  ``grade``), and so is ``relationships.csv``: this adapter tells the merge
  it owns those fields, so a missing column would read as "every value
  removed". A file without them is refused rather than read that way.
- **A missing file** (any of the four, ``relationships.csv`` included, for
  the reason above), or several files that could be one of them by case, is
  a :class:`~sourcetruth.SourceDataError` naming the file, reported with
  every other problem of the folder in one
  :class:`~sourcetruth.RejectedFileError`: the export is incomplete, which
  trying again will not mend. A missing folder, or a file that cannot be
  listed or read, is an :class:`~sourcetruth.AdapterError`.
- **Line breaks in cells**, which SDS forbids, are read as written (RFC 4180
  quoting allows them) with a ``line-break`` notice naming file, line (where
  the row starts) and column. Cells of unknown (ignored) columns are not read.
- **Roles**: ``student`` is a pupil, the Staff role group is staff, except
  ``alumni``, which is read as :attr:`~sourcetruth.Role.OTHER` (former
  pupils are not staff to a school's messages). ``guardian``, ``parent`` and
  ``relative`` are not SDS role values, but other exports put them in
  ``roles.csv``; they are read as guardians. ``other`` is
  :attr:`~sourcetruth.Role.OTHER`; anything else is too, with an
  ``unknown-role`` notice. Values are matched case-insensitively. A user
  with roles of different kinds takes the one of its ``isPrimary`` row, else
  pupil before staff before guardian before other, with a ``role-conflict``
  notice.
- A user with no ``roles.csv`` row is a **contact**: a guardian when at least
  one usable relationship names it, otherwise :attr:`~sourcetruth.Role.OTHER`
  with a ``no-role`` notice.
- **Relationships**: ``parent``, ``guardian`` and ``relative`` make a
  :class:`~sourcetruth.Relationship` on the contact, naming the pupil by its
  key in this source (the model's rule; the merge matches it that way).
  ``aide``, ``doctor``, ``other`` and unknown values make no link, with a
  notice. A link whose ends are not both usable users, whose student end is
  not a pupil, or whose contact end is a pupil is skipped with a notice;
  nothing is guessed or turned round. SDS carries no priority or parental
  responsibility, so every link has the model's defaults. A contact's links
  are in pupil key order, whatever the order of the file's rows: the same
  links in another order are no change.
- **Phones and emails** are kept as written (the merge normalises): ``sms``
  is a mobile, ``phone`` a home number (the doc gives no type; ``phone``
  beside ``sms`` is the landline), in that order; a blank or whitespace-only
  cell is no value. The email is a work address for staff, home otherwise.
- **Year group** is the ``grade`` of the pupil's ``student`` row (its
  ``isPrimary`` row when it has several), as written. Staff grades are not a
  year group. SDS has no registration group, so it is not covered.
- **Ids** (``sourcedId`` and the id columns) are trimmed of surrounding
  whitespace, with an ``id-whitespace`` notice.
- **Errors and notices quote nothing a file holds**: a row is named by file
  and line, never by an id (a ``sourcedId`` is an email or a phone number
  once columns shift); a column by the name it was read as, or by position
  (a header line run into the first row is someone's data).
- **The org filter** keeps users with a role in that org or in an org below
  it (by ``parentSourcedId``), and contacts linked to a kept pupil.
- **Rejected rows**: a row that cannot be trusted is rejected; if a file
  loses more than ``max_reject_fraction`` of its rows nothing is read. Under
  it the snapshot is a delta of the records no rejected row could have
  changed: a rejected ``roles.csv`` row holds back users whose role would be
  inferred and every contact; a rejected ``relationships.csv`` row holds
  back everyone but pupils; a user whose row was rejected is absent, and so
  is a contact linked to it. Each is a ``held-back`` notice.

:func:`write_files` writes the same format back, for the conformance kit's
round trip and for tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from attrs import define, field, frozen

from sourcetruth import _build as build
from sourcetruth.adapters._util import cell, one_phone_per_number
from sourcetruth.adapters.sources import _sds_writer
from sourcetruth.adapters.sources._mis import MisExportAdapter
from sourcetruth.adapters.sources._sds_format import (
    COLUMNS,
    ORGS,
    RELATIONSHIPS,
    REQUIRED,
    ROLES,
    USERS,
)
from sourcetruth.adapters.sources._sds_writer import write_files
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.adapters.sources.text import (
    by_position,
    open_table,
    reject_if_needed,
)
from sourcetruth.exceptions import (
    AdapterError,
    RejectedFileError,
    SourceDataError,
)
from sourcetruth.model import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Role,
    Snapshot,
    SnapshotKind,
)

__all__ = ["COVERS", "DEFAULT_ORG", "SdsAdapter", "write_files"]

#: The organisation (school) id a written SDS export names unless told another.
DEFAULT_ORG: Final = _sds_writer.DEFAULT_ORG

#: The contact fields an SDS v2.1 export carries. SDS has no registration group.
COVERS: Final = frozenset(
    {"given_name", "family_name", "role", "phones", "emails", "relationships", "year_group"}
)

# Why a missing file refuses the read (module docstring).
_MISSING_WHY: Final[Mapping[str, str]] = {
    ORGS: "SDS requires it, so the export is incomplete",
    USERS: "SDS requires it, so the export is incomplete",
    ROLES: "SDS requires it, so the export is incomplete",
    RELATIONSHIPS: (
        "SDS calls it optional, but without it every guardian's links would read as "
        "removed, so the export is taken as incomplete"
    ),
}
# Id columns: a row without one cannot be placed, so it is rejected.
_IDS: Final[Mapping[str, tuple[str, ...]]] = {
    ORGS: ("sourcedId",),
    USERS: ("sourcedId",),
    ROLES: ("userSourcedId", "orgSourcedId", "role"),
    RELATIONSHIPS: ("userSourcedId", "relationshipUserSourcedId", "relationshipRole"),
}

_STAFF_ROLES: Final = (
    "principal",
    "chair",
    "professor",
    "researcher",
    "adjunct",
    "affiliate",
    "occupationalTherapist",
    "physicalTherapist",
    "speechTherapist",
    "visionTherapist",
    "paraprofessional",
    "specialServices",
    "advisor",
    "proctor",
    "nurse",
    "officeStaff",
    "lecturer",
    "itAdmin",
    "administrator",
    "teacher",
    "faculty",
    "staff",
    "teacherAssistant",
    "assistant",
    "instructor",
    "substitute",
    "coach",
)
# Keyed by the case-folded value; see the module docstring for alumni and the
# guardian words.
_ROLE_MAP: Final[Mapping[str, Role]] = {
    "student": Role.PUPIL,
    **{name.casefold(): Role.STAFF for name in _STAFF_ROLES},
    "alumni": Role.OTHER,
    "other": Role.OTHER,
    "guardian": Role.GUARDIAN,
    "parent": Role.GUARDIAN,
    "relative": Role.GUARDIAN,
}
_GUARDIAN_LINKS: Final = frozenset({"parent", "guardian", "relative"})
_OTHER_LINKS: Final = frozenset({"aide", "doctor", "other", "child"})
# Which role wins when a user's rows disagree and no isPrimary row decides.
_PRECEDENCE: Final = (Role.PUPIL, Role.STAFF, Role.GUARDIAN, Role.OTHER)

# -- reading ---------------------------------------------------------------------


@frozen
class _User:
    line: int
    key: str
    given_name: str
    family_name: str
    email: str
    phone: str
    sms: str


@frozen
class _RoleRow:
    line: int
    user: str
    org: str
    role: str
    grade: str
    primary: bool | None


@frozen
class _Link:
    line: int
    pupil: str
    contact: str
    role: str


#: Each user's role from roles.csv, and the row it came from.
_Roles = Mapping[str, tuple[Role, _RoleRow | None]]


def _role(roles: _Roles, key: str) -> Role | None:
    """The role from roles.csv; None for a contact (no role row)."""
    found = roles.get(key)
    return None if found is None else found[0]


@define
class _Relations:
    """The relationships.csv links read, and what a rejected row could have hidden."""

    #: The pupils of each contact, in file order.
    linked: defaultdict[str, list[str]] = field(factory=lambda: defaultdict(list))
    #: The line of each link, by (contact, pupil): notices name lines, never ids.
    #: Kept only under an org filter, the one reader of it.
    lines: dict[tuple[str, str], int] = field(factory=dict)
    #: Every user named as a contact, usable or not.
    named: set[str] = field(factory=set)
    #: Contacts linked to a user with no usable row.
    touched_missing: set[str] = field(factory=set)


class _File:
    """One file's columns by canonical name, how many rows it had, and what went wrong in it."""

    def __init__(self, name: str, columns: Mapping[str, int]) -> None:
        self.name = name
        self.columns = columns
        self.total_rows = 0
        self.row_problems: list[SourceDataError] = []

    def cell(self, cells: Sequence[str], column: str) -> str:
        return cell(cells, self.columns.get(column))

    @property
    def rejected(self) -> int:
        return len({p.line for p in self.row_problems})


class _Reader:
    """One read of a folder: collects notices and problems, then builds the snapshot.

    Each file's rows are read as they are split, and only what the snapshot
    needs of them is kept: no file's rows are held whole. The files are read
    in the order orgs, users, roles, relationships, so that each row can be
    read against what the files before it said. What is found about the rows
    is noticed in the order it was before they were read this way: each
    file's loading, then each file's rows, then the roles and the links.
    """

    def __init__(self, adapter: SdsAdapter, extracted_at: datetime) -> None:
        self.adapter = adapter
        self.extracted_at = extracted_at
        self.notices: list[Notice] = []
        self.problems: list[SourceDataError] = []
        self.files: dict[str, _File] = {}
        # Notices about each file's rows, and then about the roles and links they
        # make, added to the notices once every file is read.
        self.row_notices: dict[str, list[Notice]] = {name: [] for name in _IDS}
        self.linking_notices: list[Notice] = []
        # What the rows are read as.
        self.parents: dict[str, str] = {}
        self.users: dict[str, _User] = {}
        self.duplicated: set[str] = set()
        self.rows_by_user: dict[str, list[_RoleRow]] = defaultdict(list)
        self.roles: dict[str, tuple[Role, _RoleRow | None]] = {}
        self.relations = _Relations()
        self._user_rows: dict[str, list[_User]] = {}

    # -- files and headers

    def _locate(self, folder: Path, name: str) -> Path | None:
        """The file that is *name* in *folder*; None (and a problem) when there is none."""
        exact = folder / name
        if exact.is_file():
            return exact
        try:
            matches = sorted(
                p for p in folder.iterdir() if p.name.casefold() == name.casefold() and p.is_file()
            )
        except OSError as error:
            msg = f"cannot list the SDS folder {folder}: {error.strerror or error}"
            raise AdapterError(msg, retryable=True) from None
        if not matches:
            # The export is incomplete: a data problem, reported with the
            # others, not a failing disk (module docstring).
            why = _MISSING_WHY.get(name, "the export is incomplete")
            self.problems.append(SourceDataError(f"the file is missing: {why}", file=name))
            return None
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            msg = f"several files could be it ({names}); SDS names its files exactly"
            self.problems.append(SourceDataError(msg, file=name))
            return None
        found = matches[0]
        self.notices.append(
            Notice(
                "file-name-case",
                f"read {found.name} as {name}: SDS names its files exactly",
                file=found.name,
            )
        )
        return found

    def _load(self, folder: Path, name: str) -> None:
        path = self._locate(folder, name)
        if path is None:
            return
        try:
            data = path.read_bytes()
        except OSError as error:
            msg = f"cannot read {path}: {error.strerror or error}"
            raise AdapterError(msg, retryable=True) from None
        notices, problems = len(self.notices), len(self.problems)
        try:
            self._read_file(name, data)
        except (RejectedFileError, SourceDataError) as error:
            # A file that cannot be split (or decoded) is that one problem:
            # nothing else found in it counts.
            del self.notices[notices:], self.problems[problems:]
            self.row_notices[name].clear()
            self.files.pop(name, None)
            if isinstance(error, RejectedFileError):
                self.problems.extend(error.problems)
            else:  # an EncodingError: the bytes are not text
                self.problems.append(error)

    def _read_file(self, name: str, data: bytes) -> None:
        stream = open_table(
            data,
            file=name,
            allow_cp1252=self.adapter.allow_cp1252,
            column_name=_known(name),
        )
        if self.adapter.allow_cp1252 and _is_cp1252(data):
            self.notices.append(
                Notice("cp1252", "the file is not UTF-8; it was read as cp1252", file=name)
            )
        del data  # the stream holds it while it is split, and not after
        columns = self._columns(name, stream.header)
        if columns is None:
            for _ in stream:
                pass
            return
        file = _File(name, columns)
        # Looked up here, not kept on self: bound methods held there would make
        # the reader a cycle, alive (with all it read) until a collection.
        read_row = {
            ORGS: self._org_row,
            USERS: self._user_row,
            ROLES: self._role_row,
            RELATIONSHIPS: self._link_row,
        }[name]
        line_breaks = self._line_breaks
        names = {index: column for column, index in columns.items()}
        for line, cells in stream:
            line_breaks(name, line, cells, names)
            read_row(file, line, cells)
        file.total_rows = stream.rows + stream.rejected
        file.row_problems[:0] = stream.problems
        self.files[name] = file
        if name == USERS:
            self._users_end(file)
        elif name == ROLES:
            self._roles_end(file)

    def _line_breaks(
        self, name: str, line: int, cells: Sequence[str], names: Mapping[int, str]
    ) -> None:
        """A ``line-break`` notice for each cell that holds one (SDS forbids them)."""
        for index, text in enumerate(cells):
            if index not in names or ("\n" not in text and "\r" not in text):
                continue  # an unknown column is ignored, so its cells are not read
            self.notices.append(
                Notice(
                    "line-break",
                    "a cell holds a line break, which SDS does not allow; kept as written",
                    file=name,
                    line=line,
                    field=names[index],
                )
            )

    def _columns(self, name: str, header: Sequence[str]) -> dict[str, int] | None:
        if not header:
            self.problems.append(SourceDataError("the file is empty: it has no header", file=name))
            return None
        known = _known(name)
        columns: dict[str, int] = {}
        failed = False
        for index, raw in enumerate(header):
            header_cell = raw.strip()
            if not header_cell:
                continue
            canonical = known(header_cell)
            if canonical is None:
                # The header is not named: in a file without a header row it
                # would be someone's data.
                self.notices.append(
                    Notice(
                        "unknown-column",
                        "a column that SDS v2.1 does not define was ignored",
                        file=name,
                        line=1,
                        field=by_position(index),
                    )
                )
                continue
            if canonical in columns:
                msg = "the column appears twice (header names are compared ignoring case)"
                self.problems.append(SourceDataError(msg, file=name, line=1, field=canonical))
                failed = True
                continue
            if header_cell != canonical:
                self.notices.append(
                    Notice(
                        "header-case",
                        # Named as read: a header cell is never quoted (it may be data).
                        f"the header of {by_position(index)} is {canonical} in another case",
                        file=name,
                        line=1,
                        field=canonical,
                    )
                )
            columns[canonical] = index
        for column in REQUIRED[name]:
            if column not in columns:
                self.problems.append(
                    SourceDataError("a required column is missing", file=name, field=column)
                )
                failed = True
        return None if failed else columns

    # -- rows

    def _id(self, file: _File, line: int, cells: Sequence[str], column: str) -> str:
        raw = file.cell(cells, column)
        value = raw.strip()
        if value != raw and value:
            self.row_notices[file.name].append(
                Notice(
                    "id-whitespace",
                    "spaces around an id were removed",
                    file=file.name,
                    line=line,
                    field=column,
                )
            )
        return value

    def _ids(self, file: _File, line: int, cells: Sequence[str]) -> list[str] | None:
        """The row's id cells in ``_IDS`` order; None (and a row problem) when one is empty."""
        values: list[str] = []
        for column in _IDS[file.name]:
            value = self._id(file, line, cells, column)
            if not value:
                file.row_problems.append(
                    SourceDataError(
                        f"the row has no {column}", file=file.name, line=line, field=column
                    )
                )
                return None
            values.append(value)
        return values

    def _org_row(self, file: _File, line: int, cells: list[str]) -> None:
        """An org's parent ('' for none); an org's second row is noticed and skipped."""
        ids = self._ids(file, line, cells)
        if ids is None:
            return
        key = ids[0]
        if key in self.parents:
            self.row_notices[ORGS].append(
                Notice(
                    "duplicate-org",
                    "the org appears twice; its first row was used",
                    file=ORGS,
                    line=line,
                    field="sourcedId",
                )
            )
            return
        self.parents[key] = self._id(file, line, cells, "parentSourcedId")

    def _user_row(self, file: _File, line: int, cells: list[str]) -> None:
        ids = self._ids(file, line, cells)
        if ids is None:
            return
        key = ids[0]
        user = _User(
            line,
            key,
            file.cell(cells, "givenName"),
            file.cell(cells, "familyName"),
            file.cell(cells, "email"),
            file.cell(cells, "phone"),
            file.cell(cells, "sms"),
        )
        users, repeated = self.users, self._user_rows
        if key in repeated:
            repeated[key].append(user)
        elif key in users:
            repeated[key] = [users.pop(key), user]
        else:
            users[key] = user

    def _users_end(self, file: _File) -> None:
        """Reject every row of a key on several: which row is the person is not ours to choose."""
        # In the order of each key's first row, as the keys were first seen.
        for key, found in sorted(self._user_rows.items(), key=lambda item: item[1][0].line):
            self.duplicated.add(key)
            for user in found:
                file.row_problems.append(
                    SourceDataError(
                        f"the sourcedId is on {len(found)} rows; none of them was used",
                        file=USERS,
                        line=user.line,
                        field="sourcedId",
                    )
                )
        self._user_rows = {}

    def _role_row(self, file: _File, line: int, cells: list[str]) -> None:
        ids = self._ids(file, line, cells)
        if ids is None:
            return
        primary_text = file.cell(cells, "isPrimary").strip()
        primary: bool | None = None
        if primary_text.casefold() in ("true", "false"):
            primary = primary_text.casefold() == "true"
        elif primary_text:
            self.row_notices[ROLES].append(
                Notice(
                    "bad-boolean",
                    "isPrimary is neither TRUE nor FALSE; it was ignored",
                    file=ROLES,
                    line=line,
                    field="isPrimary",
                )
            )
        user_key, org, role = ids
        user = self.users.get(user_key)
        if user is None:
            why = "was rejected" if user_key in self.duplicated else "is not usable"
            self.linking_notices.append(
                Notice(
                    "unknown-user",
                    f"a role for a user whose users.csv row {why}; skipped",
                    file=ROLES,
                    line=line,
                    field="userSourcedId",
                )
            )
            return
        if self.parents and org not in self.parents:
            self.linking_notices.append(
                Notice(
                    "unknown-org",
                    "a role in an org that orgs.csv does not list",
                    file=ROLES,
                    line=line,
                    field="orgSourcedId",
                )
            )
        self.rows_by_user[user.key].append(
            _RoleRow(line, user.key, org, role, file.cell(cells, "grade"), primary)
        )

    def _roles_end(self, file: _File) -> None:
        """Each user's role, from its rows; the rows themselves are kept for an org filter only."""
        self.roles = {key: self._role_of(rows) for key, rows in self.rows_by_user.items()}
        if self.adapter.org is None:
            self.rows_by_user = {}

    def _link_row(self, file: _File, line: int, cells: list[str]) -> None:
        ids = self._ids(file, line, cells)
        if ids is None:
            return
        pupil, contact, role = ids
        # The users' own keys, one string for both: a link's ids are the same text.
        users = self.users
        if pupil in users:
            pupil = users[pupil].key
        if contact in users:
            contact = users[contact].key
        self._relate(_Link(line, pupil, contact, role))

    def _check_rejects(self) -> None:
        for file in self.files.values():
            if not file.row_problems:
                continue
            try:
                reject_if_needed(
                    file.row_problems,
                    rows=file.total_rows,
                    file=file.name,
                    max_fraction=self.adapter.max_reject_fraction,
                )
            except RejectedFileError as error:
                self.problems.extend(error.problems)

    # -- meaning

    def _role_of(self, rows: Sequence[_RoleRow]) -> tuple[Role, _RoleRow | None]:
        """The role that a user's *rows* give it, and the row it came from."""
        kinds: list[tuple[Role, _RoleRow]] = []
        for row in rows:
            mapped = _ROLE_MAP.get(row.role.casefold())
            if mapped is None:
                self.linking_notices.append(
                    Notice(
                        "unknown-role",
                        "a role that SDS v2.1 does not define; read as 'other'",
                        file=ROLES,
                        line=row.line,
                        field="role",
                    )
                )
                mapped = Role.OTHER
            kinds.append((mapped, row))
        distinct = {role for role, _ in kinds}
        primaries = {role for role, row in kinds if row.primary}
        if len(distinct) == 1:
            role = kinds[0][0]
        elif len(primaries) == 1:
            role = next(iter(primaries))
        else:
            role = next(r for r in _PRECEDENCE if r in distinct)
        chosen = [row for r, row in kinds if r is role]
        preferred = [row for row in chosen if row.primary] or chosen
        if len(distinct) > 1:
            # Named by the line of the row whose role was used, never by the user's id.
            self.linking_notices.append(
                Notice(
                    "role-conflict",
                    f"the user has roles of different kinds; read as {role.value}",
                    file=ROLES,
                    line=preferred[0].line,
                    field="role",
                )
            )
        if role is Role.PUPIL and len({row.grade for row in chosen}) > 1:
            self.linking_notices.append(
                Notice(
                    "grade-conflict",
                    "the pupil has several grades; that of its primary (else first) row was used",
                    file=ROLES,
                    line=preferred[0].line,
                    field="grade",
                )
            )
        return role, preferred[0]

    def _link_notice(self, code: str, message: str, link: _Link, field: str) -> None:
        self.linking_notices.append(
            Notice(code, message, file=RELATIONSHIPS, line=link.line, field=field)
        )

    def read(self) -> Reading:
        folder = self._load_files()
        for name in _IDS:
            self.notices.extend(self.row_notices[name])
        self._check_rejects()
        scope = self._scope(self.parents)
        self._raise_if_problems(folder)
        self.notices.extend(self.linking_notices)
        users, roles, relations = self.users, self.roles, self.relations
        kept = self._kept(users, roles, self.rows_by_user, relations, scope)
        held = self._held(kept, roles, relations, users)
        keys = sorted(kept - held)
        del kept
        # What a user was read as is let go as its record is built.
        linked = relations.linked
        records = tuple(
            build.record(key, self._data(users.pop(key), roles.get(key), linked.pop(key, None)))
            for key in keys
        )
        return self._reading(records, held)

    def _load_files(self) -> Path:
        """Load the four files of the adapter's folder; the folder."""
        folder = self.adapter.path
        if not folder.is_dir():
            msg = f"no SDS folder at {folder}"
            raise AdapterError(msg)
        for name in (ORGS, USERS, ROLES, RELATIONSHIPS):
            self._load(folder, name)
        return folder

    def _scope(self, orgs: Mapping[str, str]) -> set[str] | None:
        """The orgs the filter keeps (its org and those below it); None without a filter."""
        org = self.adapter.org
        if org is None:
            return None
        if ORGS in self.files and org not in orgs:
            self.problems.append(
                SourceDataError("the org to read is not in the file", file=ORGS, field="sourcedId")
            )
        return _below(org, orgs)

    def _raise_if_problems(self, folder: Path) -> None:
        if self.problems:
            files = {p.file for p in self.problems}
            only = files.pop() if len(files) == 1 else None
            msg = (
                f"the SDS files in {folder} were rejected ({len(self.problems)} problems); "
                "nothing was read"
            )
            raise RejectedFileError(msg, self.problems, file=only)

    def _relate(self, link: _Link) -> None:
        """A guardian link, on the contact, in file order; any other link is skipped."""
        relations = self.relations
        relations.named.add(link.contact)
        if link.pupil == link.contact:
            self._link_notice(
                "relationship-self",
                "a user related to itself; skipped",
                link,
                "relationshipUserSourcedId",
            )
        elif self._missing_ends(link, self.users):
            relations.touched_missing.add(link.contact)
        elif self._usable(link, self.roles, relations.linked):
            relations.linked[link.contact].append(link.pupil)
            if self.adapter.org is not None:
                relations.lines[link.contact, link.pupil] = link.line

    def _missing_ends(self, link: _Link, users: Mapping[str, _User]) -> bool:
        """Whether an end of *link* has no usable users.csv row (a notice for each)."""
        missing = [
            column
            for column, key in (
                ("userSourcedId", link.pupil),
                ("relationshipUserSourcedId", link.contact),
            )
            if key not in users
        ]
        for column in missing:
            self._link_notice(
                "relationship-missing-user",
                "a relationship to a user with no usable users.csv row; skipped",
                link,
                column,
            )
        return bool(missing)

    def _usable(self, link: _Link, roles: _Roles, linked: Mapping[str, list[str]]) -> bool:
        """Whether *link* makes a relationship: a guardian's, from a pupil, not yet made."""
        kind = link.role.casefold()
        if kind not in _GUARDIAN_LINKS:
            known = kind in _OTHER_LINKS
            self._link_notice(
                "relationship-not-guardian" if known else "unknown-relationship-role",
                "a relationship that is not a guardian's; no link made"
                if known
                else "a relationshipRole that SDS v2.1 does not define; no link made",
                link,
                "relationshipRole",
            )
            return False
        pupil_role, contact_role = _role(roles, link.pupil), _role(roles, link.contact)
        if pupil_role is not Role.PUPIL and contact_role is Role.PUPIL:
            self._link_notice(
                "relationship-direction",
                "the relationship points the wrong way: the student is in "
                "relationshipUserSourcedId; skipped, not turned round",
                link,
                "relationshipUserSourcedId",
            )
            return False
        if pupil_role is not Role.PUPIL:
            self._link_notice(
                "relationship-not-pupil",
                "userSourcedId of a relationship must be a student; skipped",
                link,
                "userSourcedId",
            )
            return False
        if contact_role is Role.PUPIL:
            self._link_notice(
                "relationship-two-pupils",
                "a relationship between two students; skipped",
                link,
                "relationshipUserSourcedId",
            )
            return False
        if link.pupil in linked.get(link.contact, ()):
            self._link_notice(
                "duplicate-relationship",
                "the same relationship appears again; the first was used",
                link,
                "userSourcedId",
            )
            return False
        return True

    def _kept(
        self,
        users: Mapping[str, _User],
        roles: _Roles,
        rows_by_user: Mapping[str, Sequence[_RoleRow]],
        relations: _Relations,
        scope: set[str] | None,
    ) -> set[str]:
        """The users this read keeps; drops from the links the pupils it does not keep."""
        linked = relations.linked

        def in_scope(key: str) -> bool:
            return scope is None or any(r.org in scope for r in rows_by_user.get(key, ()))

        kept = {key for key in users if in_scope(key) and _role(roles, key) is not None}
        for contact, pupils in list(linked.items()):
            inside = [p for p in pupils if p in kept]
            for pupil in pupils:
                if pupil not in kept:
                    self.notices.append(
                        Notice(
                            "relationship-outside-org",
                            "a link to a pupil outside the org that was read; dropped",
                            file=RELATIONSHIPS,
                            line=relations.lines[contact, pupil],
                            field="userSourcedId",
                        )
                    )
            linked[contact] = inside
            if inside:
                kept.add(contact)
        if scope is None:
            kept.update(users)
        return kept

    def _held(
        self, kept: set[str], roles: _Roles, relations: _Relations, users: Mapping[str, _User]
    ) -> set[str]:
        """The kept users that a rejected row may have said something about (module docstring)."""
        held: set[str] = set()
        if self.files[ROLES].rejected:
            held |= {k for k in kept if _role(roles, k) is None or k in relations.named}
        if self.files[RELATIONSHIPS].rejected:
            held |= {k for k in kept if _role(roles, k) is not Role.PUPIL}
        if self.files[USERS].rejected:
            held |= relations.touched_missing & kept
        for key in sorted(held, key=lambda k: users[k].line):
            self.notices.append(
                Notice(
                    "held-back",
                    "left out of this delta: a rejected row may have said something about it",
                    file=USERS,
                    line=users[key].line,
                )
            )
        return held

    def _reading(self, records: Sequence[Record], held: set[str]) -> Reading:
        """The reading: a full snapshot, or a delta when rows were rejected or users held back."""
        rejected = sum(f.rejected for f in self.files.values())
        for file in self.files.values():
            for problem in file.row_problems:
                self.notices.append(
                    Notice(
                        "rejected-row",
                        problem.reason,
                        file=problem.file,
                        line=problem.line,
                        field=problem.field,
                    )
                )
        partial = bool(rejected or held)
        if partial:
            self.notices.append(
                Notice(
                    "partial-read",
                    f"{rejected} rows rejected and {len(held)} users held back; the snapshot "
                    "is a delta, so nobody departs because of them",
                )
            )
        snapshot = Snapshot(
            self.adapter.source,
            self.extracted_at,
            tuple(records),
            SnapshotKind.DELTA if partial else SnapshotKind.FULL,
        )
        return Reading(snapshot, tuple(self.notices), rejected)

    def _data(
        self, user: _User, found: tuple[Role, _RoleRow | None] | None, pupils: list[str] | None
    ) -> ContactData:
        if found is None:
            role = Role.GUARDIAN if pupils else Role.OTHER
            if not pupils:
                self.notices.append(
                    Notice(
                        "no-role",
                        "a user with no role and no usable relationship; read as 'other'",
                        file=USERS,
                        line=user.line,
                    )
                )
            grade = ""
        else:
            role, row = found
            grade = row.grade if row is not None and role is Role.PUPIL else ""
        phones: list[Phone] = []
        if user.sms.strip():
            phones.append(build.phone(user.sms, PhoneType.MOBILE))
        if user.phone.strip():
            phones.append(build.phone(user.phone, PhoneType.HOME))
        emails: tuple[Email, ...] = ()
        if user.email.strip():
            kind = EmailType.WORK if role is Role.STAFF else EmailType.HOME
            emails = (build.email(user.email, kind),)
        return build.contact_data(
            user.given_name,
            user.family_name,
            role,
            one_phone_per_number(phones),
            emails,
            # By the pupil's key, not its record id: Relationship's own rule,
            # and how the merge and the test strategies match guardians to pupils.
            # Sorted: relationships.csv in another order is no change.
            tuple(build.relationship(p) for p in sorted(pupils or ())),
            grade,
            "",
        )


def _known(name: str) -> Callable[[str], str | None]:
    """The column of file *name* that a header cell names, matched case-blind; None if none."""
    known = {column.casefold(): column for column in COLUMNS[name]}

    def column(header: str) -> str | None:
        return known.get(header.strip().casefold())

    return column


def _is_cp1252(data: bytes) -> bool:
    """Whether :func:`~sourcetruth.adapters.sources.text.decode` fell back to cp1252 for *data*."""
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _below(org: str, parents: Mapping[str, str]) -> set[str]:
    """*org* and every org whose chain of parents reaches it (cycles are cut)."""
    found = {org}
    for start in parents:
        chain: list[str] = []
        current = start
        while current and current not in chain:
            if current in found:
                found.update(chain)
                break
            chain.append(current)
            current = parents.get(current, "")
    return found


class SdsAdapter(MisExportAdapter):
    """Reads a folder of SDS v2.1 CSV files as a full snapshot of an MIS source.

    *path* is the folder. *org* keeps only users with a role in that org (or
    one below it) and the contacts linked to its pupils. *allow_cp1252*
    accepts files from older Windows programs that are not UTF-8.
    *max_reject_fraction* is how much of any one file may be rejected row by
    row before the whole read is refused; under it the read is a delta of the
    good rows. See the module docstring for how each column is read.
    """

    @property
    def covers(self) -> frozenset[str]:
        return COVERS

    @property
    def supports_delta(self) -> bool:
        # SDS v2.1 uploads are always the whole data set: a record left out is
        # marked inactive. Only a partial read (rejected rows) gives a delta.
        return False

    def read(self, *, extracted_at: datetime) -> Reading:
        """Read the folder: a FULL snapshot, or a DELTA when rows were rejected.

        Raises :class:`~sourcetruth.AdapterError` when the folder is missing
        or a file cannot be read, and :class:`~sourcetruth.RejectedFileError`
        with every problem found (a missing file or column, undecodable
        bytes, too many rejected rows) when the files cannot be used.
        """
        return _Reader(self, extracted_at).read()
