"""OneRoster 1.1 and 1.2 CSV bundles: the MIS feed of many student information systems.

A bundle is a directory (or a ``.zip`` of one) of CSV files described by
``manifest.csv``. This module reads ``manifest.csv``, ``users.csv``,
``roles.csv`` (1.2) and, when filtering by org, ``orgs.csv``; every other file
(enrollments, classes, demographics...) carries nothing a contact needs and is
ignored. Every file goes through :func:`sourcetruth.adapters.sources.text.read_table`:
strict decoding, no sniffing, cells kept as text.

Mapping rules
-------------

- **Keys** are ``sourcedId`` (whitespace around it is dropped).
- **Kind**: the manifest's ``file.users`` says ``bulk`` (a FULL snapshot) or
  ``delta`` (a DELTA); anything else, or no value, is a
  :class:`~sourcetruth.SourceDataError` naming ``manifest.csv``. So is an
  ``oneroster.version`` other than 1.0, 1.1 or 1.2.
- **Status**: empty or ``active`` is active. ``tobedeleted`` means the person
  leaves: left out of a FULL snapshot, listed in ``Snapshot.removed`` of a
  DELTA. ``inactive`` (OneRoster 1.0; 1.1 removed it and says to read it as
  ``tobedeleted``) is read the same way, with a ``status-inactive`` notice.
  Any other status rejects the row.
- **Role**: 1.0/1.1 take the ``role`` column of ``users.csv``. 1.2 takes the
  user's rows in ``roles.csv`` (those not ``tobedeleted``): the first
  ``primary`` row, else (in a full bundle) the first row (notice
  ``role-primary``); with no row there it falls back to a ``role`` column of
  ``users.csv`` if the file has one. In a full bundle a user with no role at
  all is a rejected row, and so is an active user whose every role row is
  ``tobedeleted`` ("mark the user tobedeleted too"); a 1.2 delta reads both
  as partial records (see *Deltas*). A user holding a secondary guardian role
  under a primary staff (or other) role keeps its primary role and gets
  relationships, with a ``role-secondary-guardian`` notice. ``student`` is
  ``PUPIL``; ``parent``, ``guardian``, ``relative`` are ``GUARDIAN``;
  ``teacher``, ``aide``, ``administrator``, ``proctor``,
  ``siteAdministrator``, ``systemAdministrator``, ``districtAdministrator``,
  ``principal``, ``counselor`` are ``STAFF`` (all matched ignoring case);
  anything else is ``OTHER`` with a ``role-unknown`` notice.
- **Phones**: ``sms`` is a ``MOBILE`` phone, ``phone`` a ``HOME`` phone, in
  that order; when both hold the same digits only the ``MOBILE`` one is kept.
  The text is kept exactly as given: normalising is the merge's job.
- **Email**: ``email`` is an ``OTHER`` address, whatever the role: the one
  column says nothing of whose address it is (a parent's work address, a
  pupil's school one), so its type is not guessed, and it reads the same when
  a delta does not show the role.
- **Relationships**: ``agentSourcedIds`` (comma-separated). The spec makes a
  student's agents its parents and a parent's agents its children, so a link
  is used when one end is a pupil (its record's role) and the other holds a
  guardian role (in 1.2 possibly a secondary one: a teacher who is also a
  parent). It becomes ``Relationship(pupil=KEY)`` (the pupil's key in the
  same source, as everywhere in the model) on the guardian's record, once
  however many sides list it. With ``guardian_agents_complete`` (the
  default), a link written only on the pupil's row gives ``agent-one-sided``
  (in a full bundle, and in a delta): the spec lists all of a guardian's
  children on its own row, and a delta holding the guardian's row without
  that pupil's would unlink them, so such an export needs
  ``guardian_agents_complete=False`` for its deltas (see *Deltas*). Nothing
  is guessed: a link between other roles is skipped with an ``agent-role``
  notice, to an id absent from a full bundle with ``agent-missing``, to a
  user being deleted with ``agent-removed``. An agent that cannot be checked
  (not in a delta bundle, or its row was rejected) gives
  ``agent-unverified``: the link is kept when the guardian's own row names it
  (dropping it would remove the relationship from the book) and skipped
  otherwise.
- **year_group**: a pupil's ``grades`` (the first of several, as written).
- **org**: with ``org=...`` only users of that org are read (1.0/1.1
  ``orgSourcedIds``; 1.2 ``roles.csv`` ``orgSourcedId`` and users'
  ``primaryOrgSourcedId``), plus the guardians linked to a pupil kept; their
  links to pupils left out are dropped. An org not in ``orgs.csv`` is a
  :class:`~sourcetruth.SourceDataError`. A user whose rows name no org at all
  is left out with an ``org-unknown`` notice. In a delta every user marked
  ``tobedeleted`` is listed in ``Snapshot.removed`` (it leaves the source,
  whatever its org), and so is a user read outside the org: it has left the
  org. Two exceptions
  are left out with a notice instead, neither kept nor removed: a guardian
  outside the org whose links the delta cannot all see (``org-link-unknown``:
  it may still be the guardian of one of the org's pupils), and a 1.2 user of
  which the delta holds only the row or only the role rows, neither in the
  org (``org-unknown``: its other orgs are on the rows the delta lacks).

Deltas
------

A delta holds the rows that changed, so a person's data may be spread over
rows it does not hold. Where a field cannot be known from the delta, the
person's record is partial: ``Record.fields`` names the fields the delta
vouches for, and the merge keeps the others as the book has them. The
record's data is still the delta's best knowledge of every field (the links
it can see, for one): a person the book does not hold as present is taken
from it whole.

- **Links, guardian_agents_complete=True** (the default, and the spec: a
  guardian's ``agentSourcedIds`` lists all its children): a guardian's row
  in a delta is all its links. Its record is whole, its relationships its
  own list joined with the links on pupil rows of the delta, so a guardian
  whose row lists no pupil any more (a last child gone, or a link removed
  on both rows) is unlinked by the delta; when nothing links it the notice
  is ``agent-list-empty``. A pupil row naming a guardian whose row is not in
  the delta cannot change the guardian's record (``agent-unverified``): the
  spec puts the change on the guardian's row too.
- **Links, guardian_agents_complete=False** (an export that writes links
  only on pupil rows, which the delta need not hold): a guardian's row that
  lists pupils is still all its links, as above. One that lists none gives a
  record that vouches for every field but ``relationships``, with an
  ``agent-not-in-delta`` notice; its data holds the links on pupil rows of
  the delta, so a guardian new to the book is linked to them, while one the
  book holds keeps its links until the next full bundle. Known limitation:
  a pupil row cannot unlink a guardian (that the row no longer names a
  guardian is not in the delta), so each pupil row of the delta gives an
  ``agent-removal-unseen`` notice: a guardian it no longer names keeps the
  link until the next full bundle. Nothing is guessed.
- **1.2 roles**: a user row with no current ``primary`` role row in the delta
  (and no ``role`` column value) has a role the delta does not show: an
  unchanged primary role is not in a delta, and a secondary or
  ``tobedeleted`` row alone does not say what is left. The record carries
  names, phones and email, and a year group only when the cell is empty
  (empty reads the same for every role); the role, grades and relationships
  are kept as the book has them (notice ``role-not-in-delta``: a change to a
  year group or to links needs a full bundle, or the user's role rows in
  the delta). A 1.2 delta without ``roles.csv`` is read the same way. A
  ``roles.csv`` primary row for a user the delta's ``users.csv`` does not
  hold changes the role alone (notice ``role-only``): ``fields`` is
  ``role`` plus what the role settles by itself (no relationships for a
  pupil, no year group for anyone else). The visible role rows of a user
  whose row is in the delta are read as all its roles.

Tolerated, with a notice
------------------------

Header names match ignoring case and surrounding spaces, and the misspellings
``prefferedGivenName`` (and its middle/family siblings) and
``dataLastModified`` are accepted (``header-drift``); unknown columns give
``header-unknown`` (``metadata.*`` extension columns are spec-valid and
silent). A ``dateLastModified`` that is not ISO 8601 gives ``date-format``:
it is never parsed, so ``1/05/2023`` is never guessed as May or January.
Also: ``role-type`` (a roleType other than primary/secondary),
``role-conflict`` (primary roles that disagree), ``role-user-missing`` (a
role for a user users.csv lacks, in a full bundle, or in a delta without a
current primary role), ``org-unverified`` (an org filter on a
delta without orgs.csv) and ``empty-snapshot`` (a full bundle with no users:
let through, the merge refuses it). The link notices (``agent-*``) and the
delta notices (``role-not-in-delta``, ``role-only``) are described above.

Errors
------

Every problem found in the bundle's files is raised together as one
:class:`~sourcetruth.RejectedFileError` whose problems each name file, line
and field, never the value. Neither errors nor notices quote what a file
holds: not a row's ``sourcedId`` (rows are named by line; a key is a phone
number once columns shift), not an agent's id (named by its place in
``agentSourcedIds``), not a header cell (a column is named as it was read,
or by position: a header line run into the first row is someone's data). A
missing required column (``sourcedId``, ``givenName``, ``familyName``, and
``role`` when the role comes from ``users.csv``) is such a problem. Rejected
rows (broken rows, a missing or duplicated ``sourcedId``, an unknown status,
no role) count towards
``max_reject_fraction`` per file; under the limit, the readable rows come back
as a DELTA snapshot (a rejected row is never read as a departure), with
``Reading.rejected`` set and ``row-rejected``/``rows-rejected`` notices. A
user with a rejected ``roles.csv`` row is never given a role from its other
rows: its ``users.csv`` row is rejected too (and counted), so it is left out.
A
missing path or an unreadable file is an :class:`~sourcetruth.AdapterError`.

:func:`write_bundle` writes a snapshot as a bundle that this reader gives back
equal for every covered field, for records the format can carry: at most
one mobile and one home phone (mobile first, with different digits), at most
one email, of type ``OTHER``, roles pupil, guardian or staff, relationships
with default attributes to pupils of the same snapshot (by the pupil's key),
a year group only for pupils and without a comma. It writes every link on
the guardian's row, so its deltas are read with the default
``guardian_agents_complete=True``: in a delta, a guardian without
relationships reads back whole with an ``agent-list-empty`` notice, and a
staff member with relationships with a ``role-secondary-guardian`` notice.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Final, Protocol

from attrs import define, field, frozen

from sourcetruth import _build as build
from sourcetruth.adapters._util import cell
from sourcetruth.adapters.sources._mis import MisExportAdapter
from sourcetruth.adapters.sources._oneroster_format import (
    MANIFEST,
    MANIFEST_COLUMNS,
    ORG_COLUMNS,
    ORGS,
    ROLE_COLUMNS,
    ROLES,
    USERS,
    USERS_11,
    USERS_12,
)
from sourcetruth.adapters.sources._oneroster_writer import write_bundle
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.adapters.sources.text import (
    by_position,
    open_table,
    read_table,
    reject_if_needed,
)
from sourcetruth.exceptions import (
    AdapterError,
    EncodingError,
    RejectedFileError,
    SourceDataError,
)
from sourcetruth.model import (
    ContactData,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Role,
    Snapshot,
    SnapshotKind,
    utc,
)

__all__ = ["COVERS", "OneRosterAdapter", "write_bundle"]

#: The contact fields a OneRoster bundle fills.
COVERS: Final = frozenset(
    {"given_name", "family_name", "role", "phones", "emails", "relationships", "year_group"}
)

_WANTED: Final = (MANIFEST, USERS, ROLES, ORGS)

# No real bundle comes near this; it stops a zip bomb before it fills memory.
_MAX_FILE_BYTES: Final = 256 * 1024 * 1024
_CHUNK_BYTES: Final = 1024 * 1024

# Whether a version keeps roles in roles.csv (1.2) or in users.csv (1.0, 1.1).
_VERSIONS: Final = {"1.0": False, "1.1": False, "1.2": True}

_ROLE_NAMES: Final = {
    "student": Role.PUPIL,
    "parent": Role.GUARDIAN,
    "guardian": Role.GUARDIAN,
    "relative": Role.GUARDIAN,
    **{
        name.casefold(): Role.STAFF
        for name in (
            "teacher",
            "aide",
            "administrator",
            "proctor",
            "siteAdministrator",
            "systemAdministrator",
            "districtAdministrator",
            "principal",
            "counselor",
        )
    },
}

# True: the person leaves. "inactive" is 1.0's word; 1.1 says to read it as tobedeleted.
_STATUSES: Final = {"": False, "active": False, "tobedeleted": True, "inactive": True}

# Either version's columns are known in both: 1.2 exports keep 1.1's role
# column, and resourceSourcedIds is in some 1.2 drafts.
_USER_COLUMNS: Final = (
    *USERS_11,
    *(c for c in USERS_12 if c not in USERS_11),
    "resourceSourcedIds",
)
# Misspellings seen in real exports, read as the column they mean.
_MISSPELT: Final = {
    "prefferedgivenname": "preferredGivenName",
    "prefferedmiddlename": "preferredMiddleName",
    "prefferedfamilyname": "preferredFamilyName",
    "datalastmodified": "dateLastModified",
}

_NOT_DIGIT = re.compile(r"\D")

# A column's distinct cells are read once each up to this many: the values
# that repeat (orgs, grades, a household's agents) are found early.
_CACHED_CELLS: Final = 1 << 16

_FILE_ORDER: Final = {name: rank for rank, name in enumerate(_WANTED)}


# -- the files of a bundle -----------------------------------------------------


def _read_capped(stream: IO[bytes], name: str) -> bytes:
    """The stream's bytes, read a chunk at a time up to the cap.

    Never ``read(cap + 1)``: that allocates the whole cap (256 MB) up front
    for every file, however small.
    """
    out = io.BytesIO()
    while chunk := stream.read(_CHUNK_BYTES):
        out.write(chunk)
        if out.tell() > _MAX_FILE_BYTES:
            msg = f"the file is larger than {_MAX_FILE_BYTES} bytes"
            raise SourceDataError(msg, file=name)
    return out.getvalue()


def _add(found: dict[str, tuple[str, bytes]], name: str, data: bytes) -> None:
    folded = name.casefold()
    if folded in found:
        # users.csv and Users.csv side by side: reading either would be a guess.
        msg = "two files in the bundle have this name, differing only in case"
        raise SourceDataError(msg, file=name)
    found[folded] = (name, data)


def _load_directory(path: Path) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.casefold() in _WANTED and entry.is_file():
            with entry.open("rb") as stream:
                _add(found, entry.name, _read_capped(stream, entry.name))
    return found


def _load_zip(path: Path) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    with zipfile.ZipFile(path) as archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith("__MACOSX/")
        ]
        # The bundle is wherever manifest.csv is: at the top, or in one folder.
        roots = {
            PurePosixPath(info.filename).parent
            for info in members
            if PurePosixPath(info.filename).name.casefold() == MANIFEST
        }
        if len(roots) > 1:
            msg = "the zip file holds more than one manifest.csv"
            raise SourceDataError(msg, file=MANIFEST)
        root = roots.pop() if roots else PurePosixPath(".")
        for info in sorted(members, key=lambda i: i.filename):
            member = PurePosixPath(info.filename)
            if member.parent == root and member.name.casefold() in _WANTED:
                with archive.open(info) as stream:
                    _add(found, member.name, _read_capped(stream, member.name))
    return found


def _load(path: Path) -> dict[str, tuple[str, bytes]]:
    """The wanted files of the bundle at *path*, by name case-folded: (name, bytes)."""
    failure: str
    retryable = False
    try:
        if path.is_dir():
            return _load_directory(path)
        if path.is_file():
            return _load_zip(path)
        failure = "there is no such directory or zip file"
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        failure = error.strerror or type(error).__name__
    except zipfile.BadZipFile:
        failure = "not a readable zip file"
    except RuntimeError:  # an encrypted zip member
        failure = "the zip file is encrypted"
    except OSError as error:
        if isinstance(error, AdapterError):
            raise
        failure = error.strerror or type(error).__name__
        retryable = True  # a network share or a disk that may come back
    msg = f"cannot read the OneRoster bundle at {os.fspath(path)!r}: {failure}"
    raise AdapterError(msg, retryable=retryable)


# -- the manifest ----------------------------------------------------------------


@frozen
class _Manifest:
    file: str
    version: str
    kind: SnapshotKind
    roles: bool
    orgs: bool


def _column_map(header: Sequence[str]) -> dict[str, int]:
    return {name.strip().casefold(): index for index, name in reversed(list(enumerate(header)))}


def _file_mode(props: Mapping[str, tuple[str, int]], name: str, file: str) -> str:
    value, line = props.get(f"file.{name}".casefold(), ("", 1))
    mode = value.strip().casefold()
    if mode in ("", "absent", "bulk", "delta"):
        return mode or "absent"
    msg = f"file.{name} must be bulk, delta or absent"
    raise SourceDataError(msg, file=file, line=line, field="value")


def _manifest(files: Mapping[str, tuple[str, bytes]], allow_cp1252: bool) -> _Manifest:
    # Nothing in a bundle can be read without its manifest, so its problems
    # are raised at once as a single SourceDataError.
    if MANIFEST not in files:
        msg = "the bundle has no manifest.csv"
        raise SourceDataError(msg, file=MANIFEST)
    name, data = files[MANIFEST]
    table = read_table(
        data,
        file=name,
        allow_cp1252=allow_cp1252,
        column_name=lambda header: _canonical(header, MANIFEST_COLUMNS)[0],
    )
    if table.problems:
        msg_0 = f"{name}: unreadable rows"
        raise RejectedFileError(msg_0, list(table.problems), file=name)
    columns = _column_map(table.header)
    for column in MANIFEST_COLUMNS:
        if column.casefold() not in columns:
            msg = "a required column is missing"
            raise SourceDataError(msg, file=name, line=1, field=column)
    key_at, value_at = columns["propertyname"], columns["value"]
    props: dict[str, tuple[str, int]] = {}
    for row in table.rows:
        prop = cell(row.cells, key_at).strip().casefold()
        if not prop:
            continue
        if prop in props:
            msg = "a property is listed twice"
            raise SourceDataError(msg, file=name, line=row.line, field="propertyName")
        props[prop] = (cell(row.cells, value_at), row.line)
    version, line = props.get("oneroster.version", ("", 1))
    version = version.strip()
    if version not in _VERSIONS:
        msg = "unknown oneroster.version; this reader knows 1.0, 1.1 and 1.2"
        raise SourceDataError(msg, file=name, line=line, field="oneroster.version")
    users = _file_mode(props, "users", name)
    if users == "absent":
        line = props.get("file.users", ("", 1))[1]
        msg = "file.users must say bulk or delta: without users.csv there is nothing to read"
        raise SourceDataError(msg, file=name, line=line, field="file.users")
    return _Manifest(
        file=name,
        version=version,
        kind=SnapshotKind.FULL if users == "bulk" else SnapshotKind.DELTA,
        roles=_VERSIONS[version] and _file_mode(props, "roles", name) != "absent",
        orgs=_file_mode(props, "orgs", name) != "absent",
    )


# -- rows --------------------------------------------------------------------------


#: A row as a file gives it: its line and its cells.
_Row = tuple[int, list[str]]


class _RowSource(Protocol):
    """A file's header, then its usable rows: what :class:`~.text.TableStream` gives.

    ``problems``, ``rows`` and ``rejected`` are read once the rows are.
    """

    header: tuple[str, ...]
    problems: list[SourceDataError]
    rows: int
    rejected: int

    def __iter__(self) -> Iterator[_Row]: ...


@frozen
class _Sheet:
    """A file's name and where its known columns are."""

    file: str
    columns: Mapping[str, int]
    usable: bool

    def get(self, row: _Row, column: str) -> str:
        at = self.columns.get(column)
        cells = row[1]
        return cells[at] if at is not None and at < len(cells) else ""

    def has(self, column: str) -> bool:
        return column in self.columns


@frozen
class _User:
    line: int
    key: str
    leaves: bool
    given: str = field(repr=False)
    family: str = field(repr=False)
    role: str
    email: str = field(repr=False)
    sms: str = field(repr=False)
    phone: str = field(repr=False)
    agents: tuple[str, ...]
    grades: str
    orgs: tuple[str, ...]
    primary_org: str


@frozen
class _RoleRow:
    line: int
    user: str
    primary: bool
    role: Role
    org: str
    ended: bool


@frozen
class _Person:
    """A user that is read: its row, its role and every role it holds."""

    user: _User
    role: Role
    roles: frozenset[Role]
    role_file: str
    role_line: int

    @property
    def guardian(self) -> bool:
        """Holds a guardian role and is not, first of all, a pupil."""
        return Role.GUARDIAN in self.roles and self.role is not Role.PUPIL


@define
class _Linking:
    """The links found so far: guardian key -> pupil keys, and what is known of each guardian.

    ``own``: guardians whose own row carries a link (to a pupil, or to a user
    leaving). ``unseen``: guardians whose own row names a pupil the delta
    does not hold.
    """

    found: dict[str, set[str]] = field(factory=dict)
    own: set[str] = field(factory=set)
    unseen: set[str] = field(factory=set)


@frozen
class _Links:
    """The links read: guardian key -> pupil keys, and what a delta cannot see of them.

    ``partial``: guardians of a delta whose relationships are kept as the book
    has them (their row lists no pupil, and guardian_agents_complete is False).
    ``unseen``: guardians whose own row names a pupil the delta does not hold.
    """

    found: dict[str, set[str]]
    partial: frozenset[str]
    unseen: frozenset[str]


def _canonical(header: str, known: Sequence[str]) -> tuple[str | None, bool]:
    """The known column a header cell names (case and spaces aside), and whether it is misspelt."""
    folded = header.strip().casefold()
    for name in known:
        if name.casefold() == folded:
            return name, False
    misspelt = _MISSPELT.get(folded)
    if misspelt is not None and misspelt in known:
        return misspelt, True
    return None, False


def _split(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


class _Split(dict[str, tuple[str, ...]]):
    """:func:`_split` of one column's cells, each distinct cell split once (up to a bound)."""

    def __missing__(self, value: str) -> tuple[str, ...]:
        found = _split(value)
        if len(self) < _CACHED_CELLS:
            self[value] = found
        return found


# Every set of roles a user can hold, each one object: a frozenset costs more
# than the rest of what is kept of a user while the links are read.
_ROLE_SETS: Final[dict[frozenset[Role], frozenset[Role]]] = {}


def _role_set(roles: frozenset[Role]) -> frozenset[Role]:
    """*roles* as the one frozenset of those roles (there are 2**len(Role) at most)."""
    return _ROLE_SETS.setdefault(roles, roles)


def _digits(value: str) -> str:
    return _NOT_DIGIT.sub("", value)


def _is_iso(value: str) -> bool:
    # Python 3.11's fromisoformat reads ISO 8601 (extended and basic) and nothing
    # else, so a day-first 1/05/2023 is refused rather than guessed.
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


class _Read:
    """One read of one bundle: collects notices, problems and rejected rows."""

    def __init__(
        self,
        files: dict[str, tuple[str, bytes]],
        manifest: _Manifest,
        *,
        org: str | None,
        allow_cp1252: bool,
        max_reject_fraction: float,
        agents_complete: bool = True,
    ) -> None:
        self.files = files
        self.agents_complete = agents_complete
        self.manifest = manifest
        self.org = org
        self.allow_cp1252 = allow_cp1252
        self.max_reject_fraction = max_reject_fraction
        self.notices: list[Notice] = []
        self.errors: list[SourceDataError] = []
        self.rejects: dict[str, list[SourceDataError]] = {}
        self.row_counts: dict[str, int] = {}
        self.rejected_keys: set[str] = set()
        self.users_file = files.get(USERS, (USERS, b""))[0]
        self.what = "the OneRoster bundle"
        self.roles_file: str | None = None
        self.delta = manifest.kind is SnapshotKind.DELTA
        # user key -> line of a rejected roles.csv row of that user
        self.held: dict[str, int] = {}
        # 1.2 delta users read without a role, and role changes without a user row
        self.roleless: dict[str, _User] = {}
        self.role_changes: dict[str, tuple[_RoleRow, tuple[_RoleRow, ...]]] = {}
        # What the files' rows are read as, each kept as the rows are split.
        self.read_users: list[_User] = []
        self.role_rows: dict[str, list[_RoleRow]] = {}
        self.org_ids: set[str] = set()

    # -- notices and problems

    def notice(
        self,
        code: str,
        message: str,
        file: str | None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        """Note something tolerated: named by file, line and column, never by a key or value."""
        self.notices.append(Notice(code, message, file, line, field))

    def reject(
        self, file: str, line: int, field: str | None, message: str, key: str | None = None
    ) -> None:
        """Reject a row, named by line (its *key*, a value in some files, is only remembered)."""
        self.rejects.setdefault(file, []).append(
            SourceDataError(message, file=file, line=line, field=field)
        )
        if key:
            self.rejected_keys.add(key)

    # -- tables

    def open(self, name: str, known: Sequence[str]) -> tuple[str, _RowSource] | None:
        """The file *name* of the bundle, as it is named there, with its rows to split.

        None (a problem collected) when the bundle lacks it. Another source of
        the same rows (the REST binding) gives its own.
        """
        if name not in self.files:
            msg = f"the manifest lists {name} but the bundle does not hold it"
            self.errors.append(SourceDataError(msg, file=self.manifest.file))
            return None
        # Taken from the bundle: the bytes are let go once split, before the next file.
        actual, data = self.files.pop(name)
        stream = open_table(
            data,
            file=actual,
            allow_cp1252=self.allow_cp1252,
            column_name=lambda header: _canonical(header, known)[0],
        )
        return actual, stream

    def rank(self, file: str | None) -> int:
        """Where notices about *file* come in a reading: the bundle's files in a fixed order."""
        return _FILE_ORDER.get((file or "").casefold(), len(_FILE_ORDER))

    def sheet(
        self,
        name: str,
        known: Sequence[str],
        required: Sequence[str],
        read_rows: Callable[[_Sheet, Iterable[_Row]], None] | None = None,
    ) -> _Sheet | None:
        """The file *name*, its rows given to *read_rows* as they are split (when it is usable).

        No row is kept here: a reader keeps what it needs of each. A file that
        cannot be split is one problem, and nothing read from it is used.
        """
        errors = len(self.errors)
        actual = name
        try:
            opened = self.open(name, known)
            if opened is None:
                return None
            actual, stream = opened
            columns, usable = self.columns(actual, stream.header, known, required)
            sheet = _Sheet(actual, columns, usable)
            rejects = self.rejects[actual] = []
            if usable and read_rows is not None:
                read_rows(sheet, stream)
            else:
                for _ in stream:
                    pass
        except (EncodingError, RejectedFileError) as error:
            # Broken quoting is the file's one problem: what its header said is not.
            del self.errors[errors:]
            self.errors.extend(error.problems if isinstance(error, RejectedFileError) else [error])
            self.rejects.pop(actual, None)
            return None
        rejects[:0] = stream.problems  # the rows' shapes first, as they were found
        self.row_counts[actual] = stream.rows + stream.rejected
        return sheet

    def columns(
        self, file: str, header: Sequence[str], known: Sequence[str], required: Sequence[str]
    ) -> tuple[dict[str, int], bool]:
        """Where each known column is, and whether the file can be read.

        A header cell is never quoted (a header line run into the first row
        is someone's data): a column is named by the one it is read as, or
        by position.
        """
        last_named = max((i for i, h in enumerate(header) if h.strip()), default=-1)
        found: dict[str, int] = {}
        usable = True
        for index, raw in enumerate(header):
            name = raw.strip()
            if not name:
                # Trailing empty header cells are what spreadsheets add; one in the
                # middle hides a column.
                if index < last_named:
                    msg = f"{by_position(index)} has no header name; it is ignored"
                    self.notice("header-unknown", msg, file, 1, by_position(index))
                continue
            canonical, misspelt = _canonical(name, known)
            if canonical is None:
                if not name.casefold().startswith("metadata."):  # the spec's extension columns
                    msg = f"{by_position(index)} has a header this reader does not know; ignored"
                    self.notice("header-unknown", msg, file, 1, by_position(index))
                continue
            if name != canonical:
                why = "a known misspelling" if misspelt else "differently written"
                msg = f"the header of {by_position(index)} is read as {canonical} ({why})"
                self.notice("header-drift", msg, file, 1, canonical)
            if canonical in found:
                msg = "two columns have this name"
                self.errors.append(SourceDataError(msg, file=file, line=1, field=canonical))
                usable = False
                continue
            found[canonical] = index
        for column in required:
            if column not in found:
                msg = "a required column is missing"
                self.errors.append(SourceDataError(msg, file=file, line=1, field=column))
                usable = False
        return found, usable

    def status(self, sheet: _Sheet, row: _Row, key: str) -> bool | None:
        """Whether the row's record leaves; None when the status is unknown (rejected)."""
        value = sheet.get(row, "status").strip().casefold()
        if value not in _STATUSES:
            msg = "status must be empty, active or tobedeleted"
            self.reject(sheet.file, row[0], "status", msg, key)
            return None
        if value == "inactive":
            msg = "status inactive (OneRoster 1.0) is read as tobedeleted"
            self.notice("status-inactive", msg, sheet.file, row[0], "status")
        return _STATUSES[value]

    def check_date(self, sheet: _Sheet, row: _Row) -> None:
        value = sheet.get(row, "dateLastModified").strip()
        if value and not _is_iso(value):
            msg = "dateLastModified is not an ISO 8601 date; it was not read"
            self.notice("date-format", msg, sheet.file, row[0], "dateLastModified")

    def users(self, sheet: _Sheet, rows: Iterable[_Row]) -> None:
        """users.csv's rows as users, into ``self.read_users`` (a key on two rows is neither)."""
        read: list[_User] = []
        # Counted over every row with a key, rejected or not: a second row for a
        # key makes both doubtful even when one of them is broken.
        counts: Counter[str] = Counter()
        agents, orgs = _Split(), _Split()
        for row in rows:
            key = sheet.get(row, "sourcedId").strip()
            if not key:
                self.reject(sheet.file, row[0], "sourcedId", "the row has no sourcedId")
                continue
            counts[key] += 1
            leaves = self.status(sheet, row, key)
            if leaves is None:
                continue
            self.check_date(sheet, row)
            read.append(
                _User(
                    line=row[0],
                    key=key,
                    leaves=leaves,
                    given=sheet.get(row, "givenName"),
                    family=sheet.get(row, "familyName"),
                    role=sheet.get(row, "role").strip(),
                    email=sheet.get(row, "email"),
                    sms=sheet.get(row, "sms"),
                    phone=sheet.get(row, "phone"),
                    agents=agents[sheet.get(row, "agentSourcedIds")],
                    grades=sheet.get(row, "grades"),
                    orgs=orgs[sheet.get(row, "orgSourcedIds")],
                    primary_org=sheet.get(row, "primaryOrgSourcedId").strip(),
                )
            )
        # Two rows for one key: either could be the wrong one, so neither is used.
        for user in read:
            if counts[user.key] > 1:
                msg = "this sourcedId is on more than one row"
                self.reject(sheet.file, user.line, "sourcedId", msg, user.key)
        self.read_users = [u for u in read if counts[u.key] == 1]

    def map_role(self, value: str, file: str, line: int) -> Role:
        role = _ROLE_NAMES.get(value.casefold())
        if role is None:
            msg = "a role this reader does not know is read as other"
            self.notice("role-unknown", msg, file, line, "role")
            return Role.OTHER
        return role

    def roles(self, sheet: _Sheet, rows: Iterable[_Row]) -> None:
        """roles.csv's rows, by user, into ``self.role_rows``."""
        by_user = self.role_rows
        for row in rows:
            user = sheet.get(row, "userSourcedId").strip()
            if not user:
                self.reject(sheet.file, row[0], "userSourcedId", "the row names no user")
                continue
            ended = self.status(sheet, row, user)
            if ended is None:
                self.held.setdefault(user, row[0])
                continue
            text = sheet.get(row, "role").strip()
            if not text:
                self.reject(sheet.file, row[0], "role", "the row has no role", user)
                self.held.setdefault(user, row[0])
                continue
            self.check_date(sheet, row)
            kind = sheet.get(row, "roleType").strip().casefold()
            if kind not in ("", "primary", "secondary"):
                msg = "roleType must be primary or secondary; read as secondary"
                self.notice("role-type", msg, sheet.file, row[0], "roleType")
            role = Role.OTHER if ended else self.map_role(text, sheet.file, row[0])
            by_user.setdefault(user, []).append(
                _RoleRow(
                    line=row[0],
                    user=user,
                    primary=kind == "primary",
                    role=role,
                    org=sheet.get(row, "orgSourcedId").strip(),
                    ended=ended,
                )
            )

    def choose(self, role_rows: Sequence[_RoleRow], roles_file: str) -> _RoleRow | None:
        """The row that gives the user's role; None when none can.

        In a delta only a primary row will do: the user's primary role may be
        unchanged, and so not in the delta, while a secondary one changed.
        """
        rows = [r for r in role_rows if not r.ended]
        primaries = [r for r in rows if r.primary]
        if primaries:
            chosen = primaries[0]
            if len({r.role for r in primaries}) > 1:
                msg = "the user has primary roles that disagree; the first is used"
                self.notice("role-conflict", msg, roles_file, chosen.line, "role")
            return chosen
        if not rows or self.delta:
            return None
        msg = "the user has no primary role; the first of its roles is used"
        self.notice("role-primary", msg, roles_file, rows[0].line, "roleType")
        return rows[0]

    def person(
        self, user: _User, role_rows: Sequence[_RoleRow], roles_file: str | None
    ) -> _Person | None:
        """The user with its role; None when it has none (rejected, or roleless in a delta)."""
        if role_rows and roles_file is not None:
            chosen = self.choose(role_rows, roles_file)
            if chosen is not None:
                rows = [r for r in role_rows if not r.ended]
                roles = _role_set(frozenset(r.role for r in rows))
                if Role.GUARDIAN in roles and chosen.role not in (Role.GUARDIAN, Role.PUPIL):
                    line = next(r.line for r in rows if r.role is Role.GUARDIAN)
                    msg = (
                        f"the user's primary role is {chosen.role.value} and it also holds a "
                        "guardian role: its pupils' links are its relationships while it "
                        f"stays {chosen.role.value}"
                    )
                    self.notice("role-secondary-guardian", msg, roles_file, line, "role")
                return _Person(user, chosen.role, roles, roles_file, chosen.line)
            if not self.delta:
                # Every row is tobedeleted: the user keeps no role but is not leaving.
                msg = "every role of this user is being deleted; mark the user tobedeleted too"
                self.reject(self.users_file, user.line, "status", msg, user.key)
                return None
        if user.role:
            role = self.map_role(user.role, self.users_file, user.line)
            return _Person(user, role, _role_set(frozenset({role})), self.users_file, user.line)
        if self.delta and _VERSIONS[self.manifest.version]:
            self.roleless[user.key] = user
            msg = (
                "this delta holds no current primary role for the user (an unchanged role is "
                "not in a delta): its role, and the fields read through it (grades and "
                "relationships), are kept as the book has them; a change to its year group or "
                "its links needs a full bundle, or the user's role rows in the delta"
            )
            self.notice("role-not-in-delta", msg, self.users_file, user.line, "role")
            return None
        self.reject(self.users_file, user.line, "role", "the user has no role", user.key)
        return None

    def role_only(self, key: str, role_rows: Sequence[_RoleRow], roles_file: str) -> bool:
        """In a delta, a role change for a user users.csv does not hold: True when it is read."""
        chosen = self.choose(role_rows, roles_file) if self.delta else None
        line = role_rows[0].line
        if chosen is None:
            msg = (
                "a role for a user that users.csv does not hold is ignored"
                if not self.delta
                else "a role change without a current primary role, for a user that "
                "users.csv does not hold, is ignored"
            )
            self.notice("role-user-missing", msg, roles_file, line, "userSourcedId")
            return False
        self.role_changes[key] = (chosen, tuple(role_rows))
        msg = (
            "the delta changes only this user's role: the role is applied, the fields the "
            "role alone settles with it, and the rest is kept as the book has it"
        )
        self.notice("role-only", msg, roles_file, chosen.line, "role")
        return True

    # -- links

    def agent_notice(self, user: _User, code: str, message: str) -> None:
        self.notice(code, message, self.users_file, user.line, "agentSourcedIds")

    def links(self, people: Mapping[str, _Person], leaving: Mapping[str, _User]) -> _Links:
        """The relationships, as guardian key -> pupil keys, each checked and given once."""
        linking = _Linking()
        for person in sorted(people.values(), key=lambda p: p.user.line):
            if self.delta and not self.agents_complete and person.role is Role.PUPIL:
                # The row says whom the pupil names now, not whom it stopped naming.
                msg = (
                    "read with guardian_agents_complete=False, a pupil's row cannot unlink a "
                    "guardian: a guardian this row no longer names keeps its link to the "
                    "pupil until the next full bundle (unless the guardian's own row in this "
                    "delta lists its pupils)"
                )
                self.agent_notice(person.user, "agent-removal-unseen", msg)
            for agent in person.user.agents:
                self.link(person, agent, people, leaving, linking)
        partial = self.partial(people, linking) if self.delta else set()
        return _Links(linking.found, frozenset(partial), frozenset(linking.unseen - partial))

    def link(
        self,
        person: _Person,
        agent: str,
        people: Mapping[str, _Person],
        leaving: Mapping[str, _User],
        linking: _Linking,
    ) -> None:
        """Check one agent that *person*'s row names, and link the two when it holds."""
        user = person.user
        other = people.get(agent)
        # Named by its place in the list: an id is a value once columns shift.
        named = f"agent {user.agents.index(agent) + 1} of agentSourcedIds"
        if agent == user.key:
            self.agent_notice(user, "agent-role", "the user names itself as its own agent; skipped")
        elif agent in leaving:
            if person.guardian:
                linking.own.add(user.key)
            self.agent_notice(user, "agent-removed", f"{named} is marked tobedeleted; link skipped")
        elif other is None and (self.delta or agent in self.rejected_keys):
            self.unverified(person, agent, named, linking)
        elif other is None:
            self.agent_notice(user, "agent-missing", f"{named} is not in the bundle; link skipped")
        elif person.role is Role.PUPIL and other.guardian:
            linking.found.setdefault(agent, set()).add(user.key)
            if self.agents_complete and user.key not in other.user.agents:
                self.agent_notice(user, "agent-one-sided", self.one_sided(named))
        elif person.guardian and other.role is Role.PUPIL:
            linking.found.setdefault(user.key, set()).add(agent)
            linking.own.add(user.key)
        else:
            mine = "/".join(sorted(r.value for r in person.roles))
            theirs = "/".join(sorted(r.value for r in other.roles))
            self.agent_notice(
                user,
                "agent-role",
                f"a link between a {mine} and {named}, a {theirs}, is not "
                "between a pupil and a guardian; skipped",
            )

    def unverified(self, person: _Person, agent: str, named: str, linking: _Linking) -> None:
        """An agent whose role cannot be checked: only a guardian's own row keeps the link."""
        user = person.user
        if agent in self.rejected_keys:
            why = "was rejected"
        elif agent in self.roleless:
            why = "has no role in this delta"
        else:
            why = "is not in this delta"
        if not person.guardian:
            self.agent_notice(
                user,
                "agent-unverified",
                f"{named} {why}; only a guardian's own row can carry "
                "the link here, so it is skipped (a full bundle brings it)",
            )
            return
        self.agent_notice(
            user,
            "agent-unverified",
            f"{named} {why}, so its role is unchecked; the guardian's own link is kept",
        )
        linking.found.setdefault(user.key, set()).add(agent)
        linking.own.add(user.key)
        linking.unseen.add(user.key)

    def partial(self, people: Mapping[str, _Person], linking: _Linking) -> set[str]:
        """In a delta, the guardians whose links are kept as the book has them.

        A guardian whose own row lists no pupil: with guardian_agents_complete
        its list is complete (it is linked to what the delta links it to), and
        without, its links are on pupil rows the delta need not hold.
        """
        partial: set[str] = set()
        for key in sorted(people, key=lambda k: people[k].user.line):
            person = people[key]
            if not person.guardian or key in linking.own:
                continue
            if self.agents_complete:
                # Its own list is complete: its links are that list and the pupil rows'.
                if not linking.found.get(key):
                    msg = (
                        "the guardian's row lists no pupil and no pupil row of this delta "
                        "names it: its list is read as complete (guardian_agents_complete="
                        "True), so it is linked to no pupil; an export that writes links "
                        "only on pupil rows needs guardian_agents_complete=False"
                    )
                    self.agent_notice(person.user, "agent-list-empty", msg)
                continue
            partial.add(key)
            msg = (
                "the guardian's row lists no pupil, and with guardian_agents_complete=False "
                "its links are read from pupil rows, which a delta need not hold: its "
                "relationships are kept as the book has them"
            )
            if linking.found.get(key):
                msg += (
                    "; the links on pupil rows of this delta reach only a guardian new to "
                    "the book, and the next full bundle brings them to one it holds"
                )
            self.agent_notice(person.user, "agent-not-in-delta", msg)
        return partial

    def one_sided(self, named: str) -> str:
        """The agent-one-sided message: a pupil names a guardian whose row does not name it."""
        if not self.delta:
            return (
                f"the link to {named} is written only on this pupil's row, not on the "
                "guardian's: OneRoster lists all of a guardian's children on its own row, and "
                "a delta read that way (guardian_agents_complete=True) unlinks them when it "
                "holds the guardian's row without this one; an export that writes links only "
                "on pupil rows needs guardian_agents_complete=False for its deltas"
            )
        return (
            f"the link to {named} is on this pupil's row but not on the guardian's, "
            "whose list is read as complete (guardian_agents_complete=True): it is applied, "
            "but a delta holding the guardian's row without this one would unlink them; an "
            "export that writes links only on pupil rows needs guardian_agents_complete=False"
        )

    # -- the org filter

    def member(self, user: _User | None, role_rows: Sequence[_RoleRow]) -> bool | None:
        """Whether the user belongs to the org; None when its rows say nothing of orgs."""
        orgs = {r.org for r in role_rows}
        if user is not None:
            orgs |= {*user.orgs, user.primary_org}
        orgs.discard("")
        return None if not orgs else self.org in orgs

    def orgs(self, sheet: _Sheet, rows: Iterable[_Row]) -> None:
        """orgs.csv's ids, into ``self.org_ids``."""
        self.org_ids.update(sheet.get(row, "sourcedId").strip() for row in rows)

    def check_org(self, sheet: _Sheet | None) -> None:
        if self.org is None:
            return
        if sheet is None:
            if self.manifest.orgs:
                return  # orgs.csv itself is broken: that problem is already collected
            if self.manifest.kind is SnapshotKind.DELTA:
                msg = "the delta holds no orgs.csv, so the org filter's org is unchecked"
                self.notice("org-unverified", msg, self.manifest.file, None, "file.orgs")
                return
            msg = "the org filter needs orgs.csv, which the manifest lists as absent"
            raise SourceDataError(msg, file=self.manifest.file, field="file.orgs")
        if self.org not in self.org_ids:
            msg = "no org has the sourcedId the org filter names"
            raise SourceDataError(msg, file=sheet.file, field="sourcedId")

    def filter_org(
        self,
        people: Mapping[str, _Person],
        links: _Links,
        leaving: Mapping[str, _User],
        role_rows: Mapping[str, Sequence[_RoleRow]],
    ) -> tuple[set[str], set[str], dict[str, set[str]]]:
        """The keys kept, the keys removed and the links left, under ``org``."""
        where: dict[str, tuple[str, int]] = {}
        membership: dict[str, bool | None] = {}
        for key, person in people.items():
            membership[key] = self.member(person.user, role_rows.get(key, ()))
            where[key] = (self.users_file, person.user.line)
        # Without both its row and its role rows a user's orgs are only partly known
        # in a delta: its org is known to be the filter's, or unknown.
        partly: set[str] = set()
        for key, user in self.roleless.items():
            membership[key] = True if user.primary_org == self.org else None
            where[key] = (self.users_file, user.line)
            partly.add(key)
        for key, (chosen, rows) in self.role_changes.items():
            membership[key] = True if self.member(None, rows) else None
            where[key] = (self.roles_file or ROLES, chosen.line)
            partly.add(key)
        kept = {k for k, m in membership.items() if m}
        pupils = {k for k in kept if k in people and people[k].role is Role.PUPIL}
        kept |= {g for g, linked in links.found.items() if g in people and linked & pupils}
        # A pupil left out of the snapshot is not a relationship it can hold.
        outside = set(people) - kept
        found = {g: linked - outside for g, linked in links.found.items()}
        # A user marked tobedeleted leaves the source, whatever org it was in: a
        # guardian of another org may be in this org's book through its pupils.
        # The merge ignores a removed key it does not hold.
        removed = set(leaving)
        for key in sorted(set(membership) - kept, key=lambda k: where[k]):
            file, line = where[key]
            if key in partly:
                msg = (
                    "this delta holds only part of the user's orgs, none of them the "
                    "filter's org: whether it is still in the org is unknown, so it is left out"
                )
                self.notice("org-unknown", msg, file, line)
            elif membership[key] is None:
                msg = (
                    "nothing read here says which orgs this user belongs to, so the org "
                    "filter leaves it out"
                )
                self.notice("org-unknown", msg, file, line)
            elif not self.delta:
                continue  # a full bundle: the user simply departs from this org's snapshot
            elif people[key].guardian and (key in links.partial or key in links.unseen):
                msg = (
                    "a guardian outside the org whose pupils are not all in this delta: "
                    "whether it is still a guardian of the org's pupils is unknown, so it "
                    "is left out"
                )
                self.notice("org-link-unknown", msg, file, line)
            else:
                removed.add(key)  # in the delta, and no longer in the org: it leaves the org
        return kept, removed, found

    # -- the whole read

    def raise_if_errors(self) -> None:
        if self.errors:
            files = {e.file for e in self.errors}
            file = files.pop() if len(files) == 1 else None
            msg = (
                f"{self.what} was rejected: {len(self.errors)} "
                f"problem{'s' if len(self.errors) != 1 else ''}; nothing from it was applied"
            )
            raise RejectedFileError(msg, self.errors, file=file)

    def run(self, source: str, extracted_at: datetime) -> Reading:
        users_sheet, roles_sheet = self.open_sheets()
        role_rows = self.role_rows
        people, leaving = self.people(users_sheet, roles_sheet, role_rows)
        self.reject_files_if_needed()
        self.raise_if_errors()

        links = self.links(people, leaving)
        found = links.found
        if self.org is None:
            # Each key is in one of the three: a user has a role or not, and a
            # role change is for a user users.csv does not hold.
            keys = sorted([*people, *self.roleless, *self.role_changes])
            removed = set(leaving)
        else:
            kept, removed, found = self.filter_org(people, links, leaving, role_rows)
            keys = sorted(kept)
            del kept
        # What a user was read as is let go as its record is built: no more than
        # one of the two is held for most users at once.
        records = tuple(
            self.record(key, people.pop(key, None), found.pop(key, ()), links) for key in keys
        )
        return self.reading(source, extracted_at, records, removed)

    def open_sheets(self) -> tuple[_Sheet | None, _Sheet | None]:
        """users.csv and roles.csv (None where unreadable or not in the bundle); checks the org."""
        v12 = _VERSIONS[self.manifest.version]
        required = ["sourcedId", "givenName", "familyName"]
        # A 1.2 delta without roles.csv changes no role: its users are read without one.
        if not self.manifest.roles and not (v12 and self.delta):
            required.append("role")
        if self.org is not None and not v12:
            required.append("orgSourcedIds")
        users_sheet = self.sheet(USERS, _USER_COLUMNS, required, self.users)
        roles_sheet = None
        if self.manifest.roles:
            roles_required = ["userSourcedId", "role"]
            if self.org is not None:
                roles_required.append("orgSourcedId")
            roles_sheet = self.sheet(ROLES, ROLE_COLUMNS, roles_required, self.roles)
        orgs_sheet = None
        if self.org is not None and self.manifest.orgs:
            orgs_sheet = self.sheet(ORGS, ORG_COLUMNS, ["sourcedId"], self.orgs)
        if orgs_sheet is not None and not orgs_sheet.usable:
            orgs_sheet = None
        self.check_org(orgs_sheet)
        return users_sheet, roles_sheet

    def people(
        self,
        users_sheet: _Sheet | None,
        roles_sheet: _Sheet | None,
        role_rows: Mapping[str, Sequence[_RoleRow]],
    ) -> tuple[dict[str, _Person], dict[str, _User]]:
        """The users read with their roles, and the users leaving, by key."""
        people: dict[str, _Person] = {}
        leaving: dict[str, _User] = {}
        if users_sheet is None or not users_sheet.usable:
            return people, leaving
        users, self.read_users = self.read_users, []
        roles_file = roles_sheet.file if roles_sheet is not None else None
        self.roles_file = roles_file
        # With roles.csv missing or broken every user would read as having no
        # role: that one problem is already collected, so do not repeat it per row.
        roles_broken = self.manifest.roles and (roles_sheet is None or not roles_sheet.usable)
        for user in users:
            if user.leaves:
                leaving[user.key] = user
                continue
            if roles_broken:
                continue
            if user.key in self.held:
                # Reading its role from the rows left would change it on a guess.
                msg = (
                    f"a roles.csv row of this user (line {self.held[user.key]}) was "
                    "rejected, so its role is unknown: the user is held back too"
                )
                self.reject(self.users_file, user.line, "role", msg, user.key)
                continue
            person = self.person(user, role_rows.get(user.key, ()), roles_file)
            if person is not None:
                people[user.key] = person
        if roles_sheet is not None and roles_file is not None:
            known = {u.key for u in users} | self.rejected_keys
            for key in sorted(set(role_rows) - known, key=lambda k: role_rows[k][0].line):
                self.role_only(key, role_rows[key], roles_file)
        return people, leaving

    def reject_files_if_needed(self) -> None:
        """Collect every file that lost more rows than ``max_reject_fraction`` allows."""
        for file, problems in self.rejects.items():
            try:
                reject_if_needed(
                    problems,
                    rows=self.row_counts[file],
                    file=file,
                    max_fraction=self.max_reject_fraction,
                )
            except RejectedFileError as error:
                self.errors.extend(error.problems)

    def reading(
        self, source: str, extracted_at: datetime, records: tuple[Record, ...], removed: set[str]
    ) -> Reading:
        """The snapshot of *records* and the notices, in file order then line."""
        rejected = sum(len({p.line for p in problems}) for problems in self.rejects.values())
        kind = self.manifest.kind
        for problems in self.rejects.values():
            for problem in problems:
                self.notice(
                    "row-rejected",
                    problem.reason,
                    problem.file,
                    problem.line,
                    problem.field,
                )
        if rejected:
            msg = (
                f"{rejected} row{'s' if rejected != 1 else ''} rejected; the readable rows are "
                "returned as a delta so that no rejected row reads as a departure"
            )
            self.notice("rows-rejected", msg, None)
            kind = SnapshotKind.DELTA
        elif kind is SnapshotKind.FULL and not records:
            msg = (
                "the full bundle holds no users; the merge refuses to read that as everyone leaving"
            )
            self.notice("empty-snapshot", msg, self.users_file)
        snapshot = Snapshot(
            source,
            extracted_at,
            records,
            kind,
            tuple(sorted(removed)) if kind is SnapshotKind.DELTA else (),
        )
        # File order, then line; notices about one line keep the order they were found in.
        ranked = sorted(
            enumerate(self.notices),
            key=lambda item: (
                self.rank(item[1].file),
                item[1].line or 0,
                item[0],
            ),
        )
        notices = [notice for _, notice in ranked]
        return Reading(snapshot, notices, rejected)

    def record(
        self, key: str, person: _Person | None, pupils: Iterable[str], links: _Links
    ) -> Record:
        if person is None and key in self.role_changes:
            changed = self.role_changes[key][0].role
            # A pupil holds no relationships and only a pupil has a year group; the
            # rest (a staff member's secondary guardian role) needs the user's row.
            settled = {"role", "relationships" if changed is Role.PUPIL else "year_group"}
            return Record(key, ContactData(role=changed), fields=settled)  # rare: checked
        user = person.user if person is not None else self.roleless[key]
        role = person.role if person is not None else None
        phones: list[Phone] = []
        if user.sms.strip():
            phones.append(build.phone(user.sms, PhoneType.MOBILE))
        if user.phone.strip():
            same = _digits(user.sms) == _digits(user.phone) and (
                _digits(user.phone) or user.sms.strip() == user.phone.strip()
            )
            if not (phones and same):
                phones.append(build.phone(user.phone, PhoneType.HOME))
        # The one email column says nothing of whose address it is: never guessed from the role.
        emails = (build.email(user.email, EmailType.OTHER),) if user.email.strip() else ()
        grades = _split(user.grades)
        unknown: set[str] = set()
        if role is None:
            # Empty grades read the same whatever the role; filled ones do not.
            unknown = {"role", "relationships"}
            unknown |= {"year_group"} if grades else set()
        elif key in links.partial:
            unknown = {"relationships"}
        data = build.contact_data(
            user.given,
            user.family,
            Role.OTHER if role is None else role,
            tuple(phones),
            emails,
            tuple(build.relationship(p) for p in sorted(pupils)),
            grades[0] if grades and role is Role.PUPIL else "",
            "",
        )
        return build.record(key, data, COVERS - unknown if unknown else None)


# -- the adapter -----------------------------------------------------------------------


class OneRosterAdapter(MisExportAdapter):
    """Reads a OneRoster 1.0, 1.1 or 1.2 CSV bundle (a directory or a ``.zip``) as snapshots.

    ``source`` is the source's name in the policy. ``org`` keeps only the users
    of that org (and the guardians of its pupils). ``allow_cp1252`` lets files
    without a byte-order mark be cp1252 when they are not UTF-8.
    ``max_reject_fraction`` is the share of a file's rows that may be rejected
    before the whole bundle is; rejected rows make the snapshot a delta.
    ``guardian_agents_complete`` says whether a guardian's ``agentSourcedIds``
    lists all its children, as OneRoster says it does (True): a delta then
    reads a guardian's row as all its links. Set it to False for an export
    that writes links only on pupil rows (a full bundle's ``agent-one-sided``
    notices show one); its deltas then keep a guardian's links as the book has
    them. See the module's documentation for the mapping rules.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "mis",
        org: str | None = None,
        allow_cp1252: bool = False,
        max_reject_fraction: float = 0.0,
        guardian_agents_complete: bool = True,
    ) -> None:
        super().__init__(
            path,
            source=source,
            org=org,
            allow_cp1252=allow_cp1252,
            max_reject_fraction=max_reject_fraction,
        )
        self._guardian_agents_complete = guardian_agents_complete

    @property
    def guardian_agents_complete(self) -> bool:
        """Whether a guardian's own row lists all its children (see the class docstring)."""
        return self._guardian_agents_complete

    @property
    def covers(self) -> frozenset[str]:
        """The contact fields a bundle fills: :data:`COVERS`."""
        return COVERS

    @property
    def supports_delta(self) -> bool:
        """True: a bundle whose manifest says ``file.users,delta`` is read as a delta."""
        return True

    def read(self, *, extracted_at: datetime) -> Reading:
        """Read the bundle as it was at the source at *extracted_at* (timezone-aware).

        Raises :class:`~sourcetruth.AdapterError` when the bundle cannot be
        opened, :class:`~sourcetruth.SourceDataError` when its manifest is
        unusable or ``org`` is not one of its orgs, and
        :class:`~sourcetruth.RejectedFileError` with every problem of its files.
        """
        at = utc(extracted_at)
        files = _load(self._path)
        manifest = _manifest(files, self._allow_cp1252)
        run = _Read(
            files,
            manifest,
            org=self._org,
            allow_cp1252=self._allow_cp1252,
            max_reject_fraction=self._max_reject_fraction,
            agents_complete=self._guardian_agents_complete,
        )
        return run.run(self._source, at)
