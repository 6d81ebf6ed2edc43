"""OneRoster 1.1 and 1.2 over REST: the live MIS feed, read as the CSV bundle reader reads a bundle.

The adapter gets ``users`` (and, with ``org``, ``orgs``) from the rostering
service, 1.1's ``/ims/oneroster/v1p1`` or 1.2's
``/ims/oneroster/rostering/v1p2``, and reads them with the bundle reader's
own mapping (:mod:`sourcetruth.adapters.sources.oneroster`): the same data
served as REST and written as a bundle gives the same snapshot, the same
notices and the same problems. Only where they are named differs: a REST
reading names the collection (``users``, ``orgs``; ``users.roles`` for a
1.2 user's ``roles``) and the record's position in it (``line 1`` is the
first record read), where a bundle names the file and the line.

The JSON is the binding's: each collection in its envelope
(``{"users": [...]}``); a user's ``agents``, ``orgs`` and 1.2's
``primaryOrg`` and ``roles[].org`` are references whose ``sourcedId`` is
read; ``grades`` is a list. A 1.1 user's ``role`` is its role; a 1.2 user's
``roles`` are its role rows (``roleType``, ``role``, ``org``), read as
``roles.csv`` is. A value of the wrong JSON type (a number for a name, a
text for a list, an id holding a comma) rejects the record, as a broken row
does, and counts towards ``max_reject_fraction``.

How it reads
------------

- **Token**: OAuth 2.0 client credentials at ``token_url``, the client
  authenticated with HTTP Basic (``client_auth="body"`` puts it in the form
  instead), with the binding's read-only core scope by default. The token is
  kept while it lasts and renewed once when a page answers 401.
- **Pages**: ``limit`` and ``offset``, sorted by ``sourcedId``, asking only
  for the fields the mapping reads (``fields``). The read ends when the
  records reach ``X-Total-Count``, else when a ``Link`` header has no
  ``rel="next"``, else at an empty page; a server that sends fewer records
  than ``limit`` (its own maximum) is paged on by what it sent.
- **Retries**: 429 and 5xx answers, timeouts and cut connections are tried
  again with ``Retry-After`` or exponential backoff, ``max_retries`` times;
  then a retryable :class:`~sourcetruth.AdapterError`.
- **All or nothing**: the read is one snapshot or none. When the data moves
  under it (``X-Total-Count`` changes between pages, a page ends the
  collection before the count, or a record was modified after the first
  page's ``Date``), the whole read starts again, up to ``max_restarts``
  times, and then fails with a retryable :class:`~sourcetruth.AdapterError`.
  Nothing of a read that failed is returned.
- **Deltas**: with ``since`` (a time), the users are filtered with
  ``dateLastModified>'...'`` and the reading is a DELTA, read as a delta
  bundle is: a user marked ``tobedeleted`` is in ``Snapshot.removed``. A
  server that deletes records outright shows no deletion in a delta: read
  in full now and then (a full read departs them).
- **Errors**: a page that is not UTF-8 JSON in the binding's envelope is a
  :class:`~sourcetruth.SourceDataError` naming the collection and the page;
  credentials refused, a redirect, or another 4xx an
  :class:`~sourcetruth.AdapterError` that is not retryable. No error, notice,
  log line or ``repr`` holds the secret, the token, or a value read.

Not covered: OAuth 1.0a request signing (OneRoster 1.1's first security
model), the per-school endpoints (``/schools/{id}/users``; ``org`` filters
instead), and the collections a contact does not need (classes, enrollments,
demographics).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final

from sourcetruth.adapters.sources._oneroster_format import ORGS, ROLES, USERS
from sourcetruth.adapters.sources._oneroster_http import Page, RestClient, check_url, public_url
from sourcetruth.adapters.sources.base import Reading
from sourcetruth.adapters.sources.oneroster import COVERS, _Manifest, _Read, _Row
from sourcetruth.exceptions import AdapterError, SourceDataError, UsageError
from sourcetruth.model import SnapshotKind, SourceKind, check_source_name, utc

__all__ = ["SCOPES", "OneRosterRestAdapter"]

#: The rostering service's root path, by version.
ROOTS: Final = {"1.1": "ims/oneroster/v1p1", "1.2": "ims/oneroster/rostering/v1p2"}

#: The read-only scope that covers users and orgs, by version (asked for unless ``scope`` is given).
SCOPES: Final = {
    "1.1": "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly",
    "1.2": "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
}

#: What a REST reading calls its collections, in the order its notices come.
USERS_COLLECTION: Final = "users"
ROLES_COLLECTION: Final = "users.roles"
ORGS_COLLECTION: Final = "orgs"
_RANK: Final = {USERS_COLLECTION: 0, ROLES_COLLECTION: 1, ORGS_COLLECTION: 2}

# The JSON fields the mapping reads, asked for with ``fields``.
_USER_FIELDS: Final = {
    "1.1": (
        "sourcedId,status,dateLastModified,role,givenName,familyName,email,sms,phone,"
        "agents,grades,orgs"
    ),
    "1.2": (
        "sourcedId,status,dateLastModified,roles,givenName,familyName,email,sms,phone,"
        "agents,grades,primaryOrg"
    ),
}
_ORG_FIELDS: Final = "sourcedId,status,dateLastModified,name,type,identifier,parent"

# users.csv's columns as the JSON gives them: column -> (JSON field, how it is read).
_TEXT: Final = "text"
_REFS: Final = "refs"
_REF: Final = "ref"
_LIST: Final = "list"
_SHARED_USER_CELLS: Final = (
    ("givenName", "givenName", _TEXT),
    ("familyName", "familyName", _TEXT),
    ("email", "email", _TEXT),
    ("sms", "sms", _TEXT),
    ("phone", "phone", _TEXT),
    ("agentSourcedIds", "agents", _REFS),
    ("grades", "grades", _LIST),
)
_HEAD_CELLS: Final = (
    ("sourcedId", "sourcedId", _TEXT),
    ("status", "status", _TEXT),
    ("dateLastModified", "dateLastModified", _TEXT),
)
_USER_CELLS: Final = {
    # 1.1 gives a user one role and several orgs; 1.2 its roles apart, and one primary org.
    "1.1": (
        *_HEAD_CELLS,
        ("role", "role", _TEXT),
        *_SHARED_USER_CELLS,
        ("orgSourcedIds", "orgs", _REFS),
    ),
    "1.2": (
        *_HEAD_CELLS,
        *_SHARED_USER_CELLS,
        ("primaryOrgSourcedId", "primaryOrg", _REF),
    ),
}
_ROLE_CELLS: Final = (
    ("roleType", "roleType", _TEXT),
    ("role", "role", _TEXT),
    ("orgSourcedId", "org", _REF),
    ("beginDate", "beginDate", _TEXT),
    ("endDate", "endDate", _TEXT),
)
_ORG_CELLS: Final = (
    *_HEAD_CELLS,
    ("type", "type", _TEXT),
    ("parentSourcedId", "parent", _REF),
)


# -- JSON records as rows ------------------------------------------------------------


class _Unfit(Exception):
    """A JSON value the mapping cannot read: the field it is in, and why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(why)
        self.field = field
        self.why = why


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # 1.1 writes enabledUser as text, 1.2 as a boolean
    if isinstance(value, str):
        return value
    raise _Unfit(field, "is not text")


def _ref(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, Mapping):
        raise _Unfit(field, 'is not a reference ({"sourcedId": ...})')
    found = _text(value.get("sourcedId"), field)
    if "," in found:
        # A bundle's cells list ids with commas: one holding a comma would read as two.
        raise _Unfit(field, "holds an id with a comma in it, which the mapping cannot carry")
    return found


def _list(value: Any, field: str, item: Callable[[Any, str], str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, list):
        raise _Unfit(field, "is not a list")
    return ",".join(item(v, field) for v in value)


def _cell(record: Mapping[str, Any], field: str, how: str) -> str:
    value = record.get(field)
    if how == _TEXT:
        return _text(value, field)
    if how == _REF:
        return _ref(value, field)
    if how == _REFS:
        return _list(value, field, _ref)
    return _list(value, field, _text)


def _cells(record: Mapping[str, Any], columns: Sequence[tuple[str, str, str]]) -> list[str]:
    return [_cell(record, field, how) for _, field, how in columns]


class _Rows:
    """A collection's records as rows of a bundle's file: what the bundle reader splits.

    Rows are numbered by the record's place in the collection (1 is the
    first). A record the mapping cannot read is a problem, named by that
    number and the JSON field, never by what it held.
    """

    def __init__(self, collection: str, header: Sequence[str]) -> None:
        self.collection = collection
        self.header = tuple(header)
        self.problems: list[SourceDataError] = []
        self.rows = 0
        self.rejected = 0
        self._held: list[_Row] = []

    def add(self, line: int, cells: list[str]) -> None:
        self._held.append((line, cells))
        self.rows += 1

    def refuse(self, line: int, field: str | None, why: str) -> None:
        self.problems.append(SourceDataError(why, file=self.collection, line=line, field=field))
        self.rejected += 1

    def __iter__(self) -> Iterator[_Row]:
        held, self._held = self._held, []
        return iter(held)


def _user_rows(records: Sequence[Any], version: str) -> tuple[_Rows, _Rows | None]:
    """users.csv's rows (and 1.2's roles.csv rows) of the ``users`` collection."""
    columns = _USER_CELLS[version]
    users = _Rows(USERS_COLLECTION, [c for c, _, _ in columns])
    roles = (
        _Rows(ROLES_COLLECTION, ["userSourcedId", *(c for c, _, _ in _ROLE_CELLS)])
        if version == "1.2"
        else None
    )
    for line, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            users.refuse(line, None, "the record is not a JSON object")
            continue
        try:
            cells = _cells(record, columns)
            role_rows = [] if roles is None else _role_rows(record, cells[0])
        except _Unfit as unfit:
            users.refuse(line, unfit.field, f"{unfit.field} {unfit.why}; the record is rejected")
            continue
        users.add(line, cells)
        if roles is not None:
            for row in role_rows:
                roles.add(line, row)
    return users, roles


def _role_rows(record: Mapping[str, Any], key: str) -> list[list[str]]:
    """A 1.2 user's ``roles``, each a roles.csv row (none has a status: a role is there or not)."""
    found = record.get("roles")
    if found is None:
        return []
    if not isinstance(found, list):
        raise _Unfit(field="roles", why="is not a list")
    rows = []
    for role in found:
        if not isinstance(role, Mapping):
            raise _Unfit(field="roles", why="holds an entry that is not a JSON object")
        rows.append([key, *_cells(role, _ROLE_CELLS)])
    return rows


def _org_rows(records: Sequence[Any]) -> _Rows:
    orgs = _Rows(ORGS_COLLECTION, [c for c, _, _ in _ORG_CELLS])
    for line, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            orgs.refuse(line, None, "the record is not a JSON object")
            continue
        try:
            orgs.add(line, _cells(record, _ORG_CELLS))
        except _Unfit as unfit:
            orgs.refuse(line, unfit.field, f"{unfit.field} {unfit.why}; the record is rejected")
    return orgs


class _RestRead(_Read):
    """The bundle reader over rows made from the REST collections."""

    def __init__(self, tables: dict[str, _Rows], manifest: _Manifest, **options: Any) -> None:
        super().__init__({}, manifest, **options)
        self.tables = tables
        self.users_file = USERS_COLLECTION
        self.what = "the OneRoster REST read"

    def open(self, name: str, known: Sequence[str]) -> tuple[str, _Rows] | None:
        rows = self.tables.pop(name)
        return rows.collection, rows

    def rank(self, file: str | None) -> int:
        return _RANK.get(file or "", len(_RANK))


# -- reading the collections, all or nothing --------------------------------------


class _Moved(Exception):
    """The collection changed while it was read: the read starts again."""


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _stamp(at: datetime) -> str:
    at = utc(at)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _check_whole(name: str, value: object, least: int) -> None:
    """*value*, the option *name*, is a whole number (not a bool) of at least *least*."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        msg = f"{name} must be a whole number of at least {least}"
        raise UsageError(msg)


def _check_credentials(client_id: object, client_secret: object, client_auth: str) -> None:
    """The client's id and secret are given, and the way to send them is known."""
    if client_auth not in ("basic", "body"):
        msg = "client_auth must be 'basic' (HTTP Basic) or 'body' (in the token request's form)"
        raise UsageError(msg)
    if not isinstance(client_id, str) or not client_id:
        msg = "client_id must be the client's id, not empty"
        raise UsageError(msg)
    if not isinstance(client_secret, str) or not client_secret:
        # Never the value: only that it is missing.
        msg = "client_secret is empty: set the environment variable that holds it"
        raise UsageError(msg)


class OneRosterRestAdapter:
    """Reads users from a OneRoster 1.1 or 1.2 REST rostering service as snapshots.

    *url* is the service: its root (``https://sis.example.org``), to which the
    version's path is added, or a URL already ending in that path.
    *token_url* is the OAuth 2.0 token endpoint; *client_id* and
    *client_secret* the client credentials (in ``policy.toml``,
    ``client_secret_env`` names the environment variable that holds the
    secret). *version* is ``"1.1"`` or ``"1.2"``; *scope* defaults to the
    version's ``roster-core.readonly`` scope (:data:`SCOPES`), ``""`` asks for
    none. *since* (a timezone-aware time) reads a DELTA of the users modified
    after it. ``source``, ``org``, ``max_reject_fraction`` and
    ``guardian_agents_complete`` are the bundle reader's options, meaning the
    same. *page_size* is ``limit``; *timeout* is per request; *max_retries*,
    *backoff* and *max_wait* bound the retries of one request, and
    *max_restarts* the reads started again because the data moved. *sleep*
    waits (pass one that does not, in tests). Plain ``http://`` is refused
    for any host but this machine unless *allow_insecure*.
    """

    #: A live source: it reads from its URL, and takes no path.
    live: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        source: str = "mis",
        version: str = "1.2",
        scope: str | None = None,
        client_auth: str = "basic",
        since: datetime | None = None,
        org: str | None = None,
        max_reject_fraction: float = 0.0,
        guardian_agents_complete: bool = True,
        page_size: int = 100,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 120.0,
        max_restarts: int = 2,
        allow_insecure: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_source_name(source)
        _check_credentials(client_id, client_secret, client_auth)
        if version not in ROOTS:
            msg = f"version must be one of {', '.join(ROOTS)}"
            raise UsageError(msg)
        if not 0.0 <= max_reject_fraction <= 1.0:
            msg = "max_reject_fraction is a fraction of records, from 0 to 1"
            raise UsageError(msg)
        if org is not None and not org.strip():
            msg = "org, when given, must be an org's sourcedId, not blank"
            raise UsageError(msg)
        _check_whole("page_size", page_size, 1)
        _check_whole("max_retries", max_retries, 0)
        _check_whole("max_restarts", max_restarts, 0)
        if not (timeout > 0 and backoff >= 0 and max_wait >= 0):
            msg = "timeout must be more than 0 seconds, backoff and max_wait at least 0"
            raise UsageError(msg)
        parts = check_url(url, what="the OneRoster url", allow_insecure=allow_insecure)
        check_url(token_url, what="the OneRoster token_url", allow_insecure=allow_insecure)
        root = ROOTS[version]
        path = parts.path.rstrip("/")
        base = url.rstrip("/") if path.endswith("/" + root) else f"{url.rstrip('/')}/{root}"
        self._url = url
        self._source = source
        self._version = version
        self._since = None if since is None else utc(since)
        self._org = None if org is None else org.strip()
        self._max_reject_fraction = max_reject_fraction
        self._guardian_agents_complete = guardian_agents_complete
        self._page_size = page_size
        self._max_restarts = max_restarts
        self._backoff = backoff
        self._sleep = sleep
        self._client = RestClient(
            base=base,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=SCOPES[version] if scope is None else scope,
            client_auth=client_auth,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_wait=max_wait,
            sleep=sleep,
            ssl_context=ssl_context,
        )

    def __repr__(self) -> str:
        return (
            f"OneRosterRestAdapter({public_url(self._url)!r}, source={self._source!r}, "
            f"version={self._version!r})"
        )

    @property
    def source(self) -> str:
        """The source's name in the policy."""
        return self._source

    @property
    def kind(self) -> SourceKind:
        """A OneRoster service is an MIS feed."""
        return SourceKind.MIS

    @property
    def covers(self) -> frozenset[str]:
        """What the bundle reader fills: :data:`~sourcetruth.adapters.sources.oneroster.COVERS`."""
        return COVERS

    @property
    def supports_delta(self) -> bool:
        """True: an adapter made with ``since`` reads a delta."""
        return True

    @property
    def version(self) -> str:
        return self._version

    @property
    def since(self) -> datetime | None:
        return self._since

    def read(self, *, extracted_at: datetime) -> Reading:
        """Read the service as it is now; *extracted_at* (timezone-aware) is when the read began.

        Raises :class:`~sourcetruth.AdapterError` when the service cannot be
        read (``retryable`` when trying later may help: the server is busy or
        down, or the data kept moving), :class:`~sourcetruth.SourceDataError`
        when a page is not the binding's JSON or ``org`` is not one of the
        service's orgs, and :class:`~sourcetruth.RejectedFileError` with
        every problem of the records, as the bundle reader does.
        """
        at = utc(extracted_at)
        restarts = 0
        while True:
            try:
                tables = self._tables()
                break
            except _Moved as moved:
                if restarts >= self._max_restarts:
                    msg = (
                        f"the roster changed while it was read ({moved}), on "
                        f"{restarts + 1} read{'s' if restarts else ''} in a row; nothing was "
                        "read. Try again when the service is quiet"
                    )
                    raise AdapterError(msg, retryable=True) from None
                restarts += 1
                self._sleep(self._backoff * restarts)
        manifest = _Manifest(
            file=USERS_COLLECTION,
            version=self._version,
            kind=SnapshotKind.FULL if self._since is None else SnapshotKind.DELTA,
            roles=self._version == "1.2",
            orgs=self._org is not None,
        )
        run = _RestRead(
            tables,
            manifest,
            org=self._org,
            allow_cp1252=False,
            max_reject_fraction=self._max_reject_fraction,
            agents_complete=self._guardian_agents_complete,
        )
        return run.run(self._source, at)

    def _tables(self) -> dict[str, _Rows]:
        """The collections as the bundle reader's files: all of them from one quiet read."""
        root_filter = None if self._since is None else f"dateLastModified>'{_stamp(self._since)}'"
        users = self._collection(USERS_COLLECTION, _USER_FIELDS[self._version], root_filter)
        user_rows, role_rows = _user_rows(users, self._version)
        tables = {USERS: user_rows}
        if role_rows is not None:
            tables[ROLES] = role_rows
        if self._org is not None:
            # Every org, even in a delta: the filter's org must be one of them.
            tables[ORGS] = _org_rows(self._collection(ORGS_COLLECTION, _ORG_FIELDS, None))
        return tables

    def _collection(self, name: str, fields: str, where: str | None) -> list[Any]:
        """Every record of the collection *name*, page by page; :class:`_Moved` if it moved."""
        records: list[Any] = []
        seen: set[str] = set()
        total: int | None = None
        began: datetime | None = None
        number = 1
        while True:
            params = {
                "limit": str(self._page_size),
                "offset": str(len(records)),
                "sort": "sourcedId",
                "orderBy": "asc",
                "fields": fields,
            }
            if where is not None:
                params["filter"] = where
            page = self._client.page(f"{name}", params, collection=name, number=number)
            if number == 1:
                total, began = page.total, page.served_at
            elif page.total is not None and total is not None and page.total != total:
                msg = f"X-Total-Count of {name} changed between page 1 and page {number}"
                raise _Moved(msg)
            elif total is None:
                total = page.total  # a server that counts on later pages only
            keys = {_key(r) for r in page.records} - {""}
            if page.records and keys and keys <= seen:
                msg = (
                    f"page {number} of {name} repeats records of earlier pages only: the "
                    "server does not page by offset"
                )
                raise SourceDataError(msg, file=name)
            seen |= keys
            records.extend(page.records)
            if self._last(page, total, len(records), name, number):
                break
            number += 1
        self._check_quiet(records, began, name)
        return records

    @staticmethod
    def _last(page: Page, total: int | None, read: int, name: str, number: int) -> bool:
        """Whether *page* ends the collection (:class:`_Moved` when it ends it too soon or late)."""
        if total is not None:
            if read > total or (not page.records and read < total):
                msg = f"page {number} of {name} ends at record {read}, not at X-Total-Count"
                raise _Moved(msg)
            return read >= total
        if not page.records:
            return True
        return page.more is False

    @staticmethod
    def _check_quiet(records: Sequence[Any], began: datetime | None, name: str) -> None:
        """:class:`_Moved` when a record was modified after the read began (the first ``Date``)."""
        if began is None:
            return
        for record in records:
            if not isinstance(record, Mapping):
                continue
            changed = _parse_date(record.get("dateLastModified"))
            # Date has whole seconds: a record modified in the read's first second is
            # taken as moved, and the read starts again (a second later).
            if changed is not None and changed > began:
                msg = f"a record of {name} was modified after the read began"
                raise _Moved(msg)


def _key(record: Any) -> str:
    if isinstance(record, Mapping):
        key = record.get("sourcedId")
        if isinstance(key, str):
            return key.strip()
    return ""
