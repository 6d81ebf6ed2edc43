"""The OneRoster REST adapter against a OneRoster service on 127.0.0.1.

The service (:class:`Roster`) serves a CSV bundle's rows in the REST
binding's documented shapes: ``{"users": [...]}`` at 1.1's
``/ims/oneroster/v1p1/users`` and 1.2's ``/ims/oneroster/rostering/v1p2/users``
(1.2's roles inside each user), ``limit``/``offset``/``sort``/``fields`` and a
``dateLastModified>'...'`` filter, ``X-Total-Count`` and ``Link`` headers,
and an OAuth 2.0 client-credentials token endpoint. It reads the bundle at
each request, so a test (or the conformance kit) that rewrites or spoils the
bundle changes what it serves. Fixtures use Ofcom drama numbers and `.test`
addresses only.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import math
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from school import emails_typed_other
from sourcetruth import (
    AdapterError,
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
    SourceDataError,
    SourceTruthError,
    UsageError,
)
from sourcetruth.adapters import SourceAdapter, registry
from sourcetruth.adapters.sources.oneroster import OneRosterAdapter, write_bundle
from sourcetruth.adapters.sources.oneroster_rest import OneRosterRestAdapter
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.app.settings import check_adapters, parse_settings
from sourcetruth.cli import main as cli_main
from sourcetruth.exceptions import RejectedFileError, format_errors
from sourcetruth.testing.conformance import SourceAdapterContract, sample_school

SECRET = "Zq9-client-secret-value-7Hx"  # the loopback service's test secret
CLIENT = "sourcetruth-test"
#: The service's clock: after every date the tests write.
SERVER_NOW = datetime(2027, 1, 1, tzinfo=UTC)
#: dateLastModified of a row that has none (a bulk bundle's).
OLD_DATE = "2026-01-01T00:00:00.000Z"
AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ROOTS = {"1.1": "/ims/oneroster/v1p1", "1.2": "/ims/oneroster/rostering/v1p2"}


# -- the service ------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    """A bundle file's rows by column; undecodable bytes kept (they go out as they came)."""
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _ref(key: str, kind: str) -> dict[str, str]:
    return {"href": f"/{kind}s/{key}", "sourcedId": key, "type": kind}


def _refs(cell: str, kind: str) -> list[dict[str, str]]:
    return [_ref(k.strip(), kind) for k in cell.split(",") if k.strip()]


def user_json(row: dict[str, str], roles: list[dict[str, str]], version: str) -> dict[str, Any]:
    """A users.csv row (and its roles.csv rows) as the binding's JSON user."""
    user: dict[str, Any] = {
        "sourcedId": row.get("sourcedId", ""),
        "status": row.get("status") or "active",
        "dateLastModified": row.get("dateLastModified") or OLD_DATE,
        "username": row.get("username", ""),
        "givenName": row.get("givenName", ""),
        "familyName": row.get("familyName", ""),
        "email": row.get("email", ""),
        "sms": row.get("sms", ""),
        "phone": row.get("phone", ""),
        "agents": _refs(row.get("agentSourcedIds", ""), "user"),
        "grades": [g.strip() for g in row.get("grades", "").split(",") if g.strip()],
    }
    if version == "1.1":
        user["enabledUser"] = row.get("enabledUser") or "true"
        user["role"] = row.get("role", "")
        user["orgs"] = _refs(row.get("orgSourcedIds", ""), "org")
        return user
    user["enabledUser"] = (row.get("enabledUser") or "true") == "true"
    user["roles"] = [
        {
            "roleType": r.get("roleType", ""),
            "role": r.get("role", ""),
            "org": _ref(r.get("orgSourcedId", ""), "org"),
        }
        for r in roles
        if r.get("status", "") != "tobedeleted"
    ]
    if row.get("primaryOrgSourcedId"):
        user["primaryOrg"] = _ref(row["primaryOrgSourcedId"], "org")
    return user


def org_json(row: dict[str, str]) -> dict[str, Any]:
    """An orgs.csv row as the binding's JSON org."""
    org: dict[str, Any] = {
        "sourcedId": row.get("sourcedId", ""),
        "status": row.get("status") or "active",
        "dateLastModified": row.get("dateLastModified") or OLD_DATE,
        "name": row.get("name", ""),
        "type": row.get("type", ""),
        "identifier": row.get("identifier", ""),
    }
    if row.get("parentSourcedId"):
        org["parent"] = _ref(row["parentSourcedId"], "org")
    return org


@dataclass
class Fault:
    """What the service does instead of answering one page: a status, or a broken body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: "cut": Content-Length promises more than is sent; "short": half the JSON, then close.
    body: str = ""


@dataclass
class Seen:
    """One request the service answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Roster:
    """A OneRoster service over the bundle in *directory*, as the tests script it."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url
        self.token_url = f"{url}/oauth/token"
        self.seen: list[Seen] = []
        self.faults: dict[int, list[Fault]] = {}  # page request number (from 1) -> faults, in turn
        self.tokens: dict[str, int] = {}  # token -> pages it may still answer
        self.token_lasts = 10_000
        self.max_limit = 10_000
        self.total_header: bool | str = True  # "first": on the first page only
        self.link_header = True
        self.after_page: Callable[[Roster, int], None] | None = None
        self.edit_users: Callable[[list[dict[str, Any]]], None] | None = None
        self.extra_users: list[dict[str, Any]] = []
        self.pages = 0
        self._lock = threading.Lock()

    # the data, read from the bundle at each request

    def users(self, version: str) -> list[dict[str, Any]]:
        roles: dict[str, list[dict[str, str]]] = {}
        for row in _rows(self.directory / "roles.csv"):
            roles.setdefault(row.get("userSourcedId", ""), []).append(row)
        found = [
            user_json(row, roles.get(row.get("sourcedId", ""), []), version)
            for row in _rows(self.directory / "users.csv")
        ]
        found += [dict(u) for u in self.extra_users]
        if self.edit_users is not None:
            self.edit_users(found)
        return found

    def orgs(self) -> list[dict[str, Any]]:
        return [org_json(row) for row in _rows(self.directory / "orgs.csv")]

    def page_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET"]

    def token_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


def _filtered(records: list[dict[str, Any]], expression: str | None) -> list[dict[str, Any]]:
    if not expression:
        return records
    name, _, value = expression.partition(">")
    if name.strip() != "dateLastModified" or not (value.startswith("'") and value.endswith("'")):
        raise ValueError(expression)
    since = datetime.fromisoformat(value[1:-1].replace("Z", "+00:00"))
    return [
        r
        for r in records
        if datetime.fromisoformat(str(r["dateLastModified"]).replace("Z", "+00:00")) > since
    ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    roster: Roster


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def date_time_string(self, timestamp: float | None = None) -> str:
        return SERVER_NOW.strftime("%a, %d %b %Y %H:%M:%S GMT")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _seen(self) -> Seen:
        parts = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        seen = Seen(
            self.command,
            parts.path,
            dict(urllib.parse.parse_qsl(parts.query)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        with self.server.roster._lock:
            self.server.roster.seen.append(seen)
        return seen

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else _encode(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        roster = self.server.roster
        seen = self._seen()
        if seen.path != "/oauth/token":
            self._send(404, {"error": "not_found"})
            return
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        basic = seen.headers.get("authorization", "")
        if basic.startswith("Basic "):
            pair = base64.b64decode(basic[6:]).decode()
            who, _, secret = pair.partition(":")
            who, secret = urllib.parse.unquote_plus(who), urllib.parse.unquote_plus(secret)
        else:
            who, secret = form.get("client_id", ""), form.get("client_secret", "")
        if (who, secret) != (CLIENT, SECRET) or form.get("grant_type") != "client_credentials":
            self._send(401, {"error": "invalid_client"})
            return
        with roster._lock:
            token = f"token-{len(roster.tokens) + 1}"
            roster.tokens[token] = roster.token_lasts
        self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self) -> None:
        roster = self.server.roster
        seen = self._seen()
        with roster._lock:
            roster.pages += 1
            number = roster.pages
            faults = roster.faults.get(number)
            fault = faults.pop(0) if faults else None
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        with roster._lock:
            left = roster.tokens.get(token, 0)
            if left > 0:
                roster.tokens[token] = left - 1
        if left <= 0:
            self._send(401, {"imsx_codeMajor": "failure", "imsx_description": "token"})
            return
        if fault is not None and fault.status != 200:
            self._send(fault.status, {"imsx_codeMajor": "failure"}, fault.headers)
            return
        self._collection(roster, seen, number, fault)

    def _collection(self, roster: Roster, seen: Seen, number: int, fault: Fault | None) -> None:
        version = next((v for v, root in ROOTS.items() if seen.path.startswith(root + "/")), None)
        name = seen.path.rpartition("/")[2]
        if version is None or name not in ("users", "orgs"):
            self._send(404, {"imsx_codeMajor": "failure"})
            return
        records = roster.users(version) if name == "users" else roster.orgs()
        try:
            records = _filtered(records, seen.query.get("filter"))
        except ValueError:
            self._send(400, {"imsx_codeMajor": "failure", "imsx_description": "filter"})
            return
        if seen.query.get("sort") == "sourcedId":
            records.sort(
                key=lambda r: str(r["sourcedId"]), reverse=seen.query.get("orderBy") == "desc"
            )
        limit = min(int(seen.query.get("limit", "100")), roster.max_limit)
        offset = int(seen.query.get("offset", "0"))
        page = records[offset : offset + limit]
        wanted = [f for f in seen.query.get("fields", "").split(",") if f]
        if wanted:
            page = [{k: v for k, v in r.items() if k in wanted} for r in page]
        headers: dict[str, str] = {}
        if roster.total_header is True or (roster.total_header == "first" and offset == 0):
            headers["X-Total-Count"] = str(len(records))
        if roster.link_header:
            links = []
            if offset + limit < len(records):
                query = {**seen.query, "offset": str(offset + limit)}
                links.append(f'<{seen.path}?{urllib.parse.urlencode(query)}>; rel="next"')
            links.append(f'<{seen.path}?offset=0>; rel="first"')
            headers["Link"] = ", ".join(links)
        data = _encode({name: page})
        # Before the answer goes: the next request must find the change made.
        if roster.after_page is not None:
            roster.after_page(roster, number)
        if fault is not None and fault.body == "cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        elif fault is not None and fault.body == "short":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self._send(200, data, headers)


def _encode(payload: Any) -> bytes:
    # Bytes a spoilt bundle holds go out as they are: the page is then not UTF-8.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogateescape")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to the local service must not go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@contextlib.contextmanager
def services() -> Iterator[Callable[[Path], Roster]]:
    """Start services over bundle directories on 127.0.0.1; all stop at the end."""
    running: list[tuple[_Server, threading.Thread]] = []

    def start(directory: Path) -> Roster:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.roster = Roster(directory, f"http://127.0.0.1:{server.server_port}")
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        running.append((server, thread))
        return server.roster

    try:
        yield start
    finally:
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join(2)


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Roster]]:
    """Start services over bundle directories on 127.0.0.1; all stop after the test."""
    with services() as start:
        yield start


class Sleeps(list[float]):
    """A sleep that records how long it was asked to wait, and does not."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def adapter(roster: Roster, version: str = "1.2", **options: Any) -> OneRosterRestAdapter:
    """An adapter reading *roster*, waiting for nothing."""
    options.setdefault("sleep", Sleeps())
    options.setdefault("timeout", 5.0)
    return OneRosterRestAdapter(
        roster.url,
        token_url=roster.token_url,
        client_id=CLIENT,
        client_secret=SECRET,
        version=version,
        **options,
    )


# -- a school -------------------------------------------------------------------------------


def school(pupils: int = 3, *, source: str = "mis", at: datetime = AT) -> Snapshot:
    """*pupils* pupils, each with a guardian, and a teacher."""
    records = [
        Record(
            "T1",
            ContactData(
                "Tessa", "Teacher", Role.STAFF, emails=(Email("t1@school.test", EmailType.OTHER),)
            ),
        )
    ]
    for n in range(1, pupils + 1):
        records.append(
            Record(f"P{n:03d}", ContactData("Pat", f"Pupil{n}", Role.PUPIL, year_group="9"))
        )
        records.append(
            Record(
                f"G{n:03d}",
                ContactData(
                    "Gill",
                    f"Guardian{n}",
                    Role.GUARDIAN,
                    phones=(Phone(f"07700 900{n:03d}", PhoneType.MOBILE),),
                    emails=(Email(f"g{n}@parent.test", EmailType.OTHER),),
                    relationships=(Relationship(f"P{n:03d}"),),
                ),
            )
        )
    return Snapshot(source, at, sorted(records, key=lambda r: r.key))


def bundle(snapshot: Snapshot, directory: Path, version: str = "1.2") -> Path:
    """*snapshot* written as a bundle in *directory*."""
    write_bundle(snapshot, directory, version=version)
    return directory


def edit_users_csv(directory: Path, edit: Callable[[list[dict[str, str]]], None]) -> None:
    """Change the rows of the bundle's users.csv in place (in key order)."""
    path = directory / "users.csv"
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    edit(rows)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


def user_count(snapshot: Snapshot) -> int:
    """How many users the bundle of *snapshot* holds."""
    return len(snapshot.records) + len(snapshot.removed)


# -- the same as the bundle reader ------------------------------------------------------------


def _where(notice: Any, version: str) -> tuple[Any, ...]:
    """A notice or problem with its place as the REST reading names it."""
    line = notice.line
    file = notice.file
    if file == "users.csv":
        file = "users"
        line = None if line is None else line - 1
    elif file == "roles.csv":
        file, line = "users.roles", None  # a role is named by its user's place
    elif file == "users.roles":
        line = None
    elif file == "orgs.csv":
        file = "orgs"
        line = None if line is None else line - 1
    return (notice.code if hasattr(notice, "code") else None, file, line, notice.field)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
class TestSameAsTheBundle:
    """The same data, served as REST and written as a bundle, reads the same."""

    def test_a_full_read(
        self, version: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A full read gives the bundle reader's snapshot and notices."""
        snapshot = school(4)
        directory = bundle(snapshot, tmp_path, version)
        by_rest = adapter(serve(directory), version).read(extracted_at=AT)
        by_csv = OneRosterAdapter(directory).read(extracted_at=AT)
        assert by_rest.snapshot == by_csv.snapshot == snapshot
        assert [_where(n, version) for n in by_rest.notices] == [
            _where(n, version) for n in by_csv.notices
        ]

    def test_notices_and_rejected_rows(
        self, version: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """An unknown role, a link to nobody, a bad status: the same notices and rejects."""
        directory = bundle(school(6), tmp_path, version)

        def damage(rows: list[dict[str, str]]) -> None:
            rows[0]["status"] = "withdrawn"  # rejected
            rows[1]["agentSourcedIds"] = "NOBODY"  # agent-missing (and a one-sided link)
            if version == "1.1":
                rows[2]["role"] = "coach"  # role-unknown

        edit_users_csv(directory, damage)
        by_csv = OneRosterAdapter(directory, max_reject_fraction=0.5).read(extracted_at=AT)
        by_rest = adapter(serve(directory), version, max_reject_fraction=0.5).read(extracted_at=AT)
        assert by_rest.snapshot == by_csv.snapshot
        assert by_rest.rejected == by_csv.rejected == 1
        assert by_rest.snapshot.kind is SnapshotKind.DELTA
        codes = {n.code for n in by_rest.notices}
        assert {"row-rejected", "rows-rejected", "agent-missing"} <= codes
        assert ("role-unknown" in codes) is (version == "1.1")
        assert [_where(n, version) for n in by_rest.notices] == [
            _where(n, version) for n in by_csv.notices
        ]

    def test_too_many_rejected_records(
        self, version: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """Over the reject limit the whole read is refused, with the same problems."""
        directory = bundle(school(2), tmp_path, version)

        def damage(rows: list[dict[str, str]]) -> None:
            rows[0]["status"] = "withdrawn"

        edit_users_csv(directory, damage)
        with pytest.raises(RejectedFileError) as by_csv:
            OneRosterAdapter(directory).read(extracted_at=AT)
        with pytest.raises(RejectedFileError) as by_rest:
            adapter(serve(directory), version).read(extracted_at=AT)
        assert [(p.file, p.line, p.field) for p in by_rest.value.problems] == [
            ("users", 1, "status")
        ]
        assert [(p.reason, p.field) for p in by_rest.value.problems] == [
            (p.reason, p.field) for p in by_csv.value.problems
        ]

    def test_a_delta(self, version: str, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A read with since is the delta bundle's reading: changes, and leavers removed."""
        before = school(3)
        after_at = AT + timedelta(days=1)
        changed = attrs.evolve(
            before.records[1], data=attrs.evolve(before.records[1].data, family_name="Moved")
        )
        delta = Snapshot("mis", after_at, [changed], SnapshotKind.DELTA, removed=["G003"])
        directory = tmp_path / "served"
        bundle(before, directory, version)
        roster = serve(directory)
        # The service holds everyone; only the delta's rows were modified after the last read.
        stamp = after_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")

        def modified(users: list[dict[str, Any]]) -> None:
            for user in users:
                if user["sourcedId"] == changed.key:
                    user["familyName"] = "Moved"
                    user["dateLastModified"] = stamp
                if user["sourcedId"] == "G003":
                    user["status"] = "tobedeleted"
                    user["dateLastModified"] = stamp

        roster.edit_users = modified
        reading = adapter(roster, version, since=AT).read(extracted_at=after_at)
        assert (
            roster.page_requests()[0].query["filter"]
            == "dateLastModified>'2026-11-24T02:00:00.000Z'"
        )
        by_csv = OneRosterAdapter(bundle(delta, tmp_path / "delta", version)).read(
            extracted_at=after_at
        )
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert reading.snapshot == by_csv.snapshot
        assert reading.snapshot.removed == ("G003",)
        assert [_where(n, version) for n in reading.notices] == [
            _where(n, version) for n in by_csv.notices
        ]

    def test_the_org_filter(
        self, version: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """org reads the orgs collection to check the org, and keeps its users, as a bundle does."""
        directory = bundle(school(2), tmp_path, version)
        roster = serve(directory)
        reading = adapter(roster, version, org="school").read(extracted_at=AT)
        assert (
            reading.snapshot
            == OneRosterAdapter(directory, org="school").read(extracted_at=AT).snapshot
        )
        assert any(s.path.endswith("/orgs") for s in roster.page_requests())
        with pytest.raises(SourceDataError, match="no org has the sourcedId"):
            adapter(roster, version, org="elsewhere").read(extracted_at=AT)


# -- the requests -------------------------------------------------------------------------------


class TestRequests:
    """What the adapter asks the service for, as the binding documents it."""

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_paths_paging_sort_and_fields(
        self, version: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """The version's path, limit/offset, a stable sort, only the fields the mapping reads."""
        roster = serve(bundle(school(2), tmp_path, version))
        adapter(roster, version, page_size=2).read(extracted_at=AT)
        pages = roster.page_requests()
        assert {p.path for p in pages} == {f"{ROOTS[version]}/users"}
        assert [p.query["offset"] for p in pages] == ["0", "2", "4"]
        assert {p.query["limit"] for p in pages} == {"2"}
        assert {(p.query["sort"], p.query["orderBy"]) for p in pages} == {("sourcedId", "asc")}
        fields = set(pages[0].query["fields"].split(","))
        assert {"sourcedId", "status", "givenName", "familyName", "agents", "sms"} <= fields
        assert ("role" in fields) is (version == "1.1")
        assert ("roles" in fields) is (version == "1.2")
        assert "password" not in fields
        assert "filter" not in pages[0].query

    def test_a_url_already_at_the_service_root(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A url that already ends in the version's path is used as it is."""
        roster = serve(bundle(school(1), tmp_path))
        made = OneRosterRestAdapter(
            roster.url + ROOTS["1.2"] + "/",
            token_url=roster.token_url,
            client_id=CLIENT,
            client_secret=SECRET,
            sleep=Sleeps(),
        )
        made.read(extracted_at=AT)
        assert {p.path for p in roster.page_requests()} == {f"{ROOTS['1.2']}/users"}

    def test_the_token_request(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """Client credentials by HTTP Basic, the version's read-only scope; one token reused."""
        roster = serve(bundle(school(3), tmp_path))
        adapter(roster, page_size=2).read(extracted_at=AT)
        (token,) = roster.token_requests()
        form = dict(urllib.parse.parse_qsl(token.body.decode()))
        assert form == {
            "grant_type": "client_credentials",
            "scope": "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
        }
        assert token.headers["authorization"].startswith("Basic ")
        assert {p.headers["authorization"] for p in roster.page_requests()} == {"Bearer token-1"}

    def test_credentials_in_the_body(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """client_auth='body' sends the credentials in the form, for servers that want that."""
        roster = serve(bundle(school(1), tmp_path))
        adapter(roster, client_auth="body", scope="").read(extracted_at=AT)
        (token,) = roster.token_requests()
        form = dict(urllib.parse.parse_qsl(token.body.decode()))
        assert form == {
            "grant_type": "client_credentials",
            "client_id": CLIENT,
            "client_secret": SECRET,
        }
        assert "authorization" not in token.headers


# -- paging boundaries ------------------------------------------------------------------------


class TestPaging:
    """Every page is read once, whatever the headers say of the end."""

    @pytest.mark.parametrize(
        ("pupils", "page_size", "headers", "requests"),
        [
            # 1 teacher + 2 per pupil: 3 users at 1 pupil, 5 at 2, 7 at 3, 41 at 20.
            (2, 5, "total", 1),  # total = limit
            (2, 4, "total", 2),  # total = limit + 1
            (20, 4, "total", 11),  # many pages
            (2, 5, "link", 1),  # Link without rel=next ends it
            (2, 4, "link", 2),
            (2, 5, "none", 2),  # neither: an empty page ends it
            (2, 4, "none", 3),
            (20, 7, "none", 7),
        ],
    )
    def test_boundaries(
        self,
        pupils: int,
        page_size: int,
        headers: str,
        requests: int,
        serve: Callable[[Path], Roster],
        tmp_path: Path,
    ) -> None:
        """Exactly the pages needed are asked for, and every user is read once."""
        snapshot = school(pupils)
        roster = serve(bundle(snapshot, tmp_path))
        roster.total_header = headers == "total"
        roster.link_header = headers == "link"
        reading = adapter(roster, page_size=page_size).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert len(roster.page_requests()) == requests

    @settings(max_examples=budget.examples(30), deadline=None)
    @given(
        pupils=st.integers(min_value=0, max_value=8),
        page_size=st.integers(min_value=1, max_value=7),
        headers=st.sampled_from(["total", "link", "none"]),
    )
    def test_any_page_size_reads_the_same(self, pupils: int, page_size: int, headers: str) -> None:
        """Any page size, any end signal: the bundle's reading, in the fewest pages."""
        snapshot = school(pupils)
        users = len(snapshot.records)
        with tempfile.TemporaryDirectory() as folder, services() as start:
            directory = bundle(snapshot, Path(folder))
            roster = start(directory)
            roster.total_header = headers == "total"
            roster.link_header = headers == "link"
            reading = adapter(roster, page_size=page_size).read(extracted_at=AT)
            expected = OneRosterAdapter(directory).read(extracted_at=AT)
        assert reading == expected
        pages = max(1, math.ceil(users / page_size))
        assert len(roster.page_requests()) == (pages + 1 if headers == "none" else pages)
        assert len(roster.token_requests()) == 1

    def test_a_count_on_the_first_page_only(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A server that counts on page 1 only: the count ends the read, and nothing moved."""
        snapshot = school(4)
        roster = serve(bundle(snapshot, tmp_path))
        roster.total_header = "first"
        roster.link_header = False
        reading = adapter(roster, page_size=3).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert len(roster.page_requests()) == 3

    def test_an_empty_service(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """No users at all (X-Total-Count 0): one page, an empty full snapshot, and the notice."""
        roster = serve(bundle(Snapshot("mis", AT, []), tmp_path))
        reading = adapter(roster).read(extracted_at=AT)
        assert reading.snapshot.records == ()
        assert reading.snapshot.kind is SnapshotKind.FULL
        assert [n.code for n in reading.notices] == ["empty-snapshot"]
        assert len(roster.page_requests()) == 1

    def test_a_server_with_a_smaller_page(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A server that sends fewer than limit (its own maximum) is paged on by what it sent."""
        snapshot = school(5)
        roster = serve(bundle(snapshot, tmp_path))
        roster.max_limit = 3
        reading = adapter(roster, page_size=100).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert [p.query["offset"] for p in roster.page_requests()] == ["0", "3", "6", "9"]

    def test_a_server_that_ignores_offset(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """The same page again and again is an error, not an endless read."""
        roster = serve(bundle(school(3), tmp_path))
        roster.total_header = roster.link_header = False

        def first_page_always(users: list[dict[str, Any]]) -> None:
            users.sort(key=lambda u: u["sourcedId"])

        roster.edit_users = first_page_always
        made = adapter(roster, page_size=2)
        original = made._client.page

        def ignoring_offset(path: str, params: Any, **kw: Any) -> Any:
            return original(path, {**params, "offset": "0"}, **kw)

        made._client.page = ignoring_offset  # type: ignore[method-assign]
        with pytest.raises(SourceDataError, match="does not page by offset"):
            made.read(extracted_at=AT)


# -- the token ----------------------------------------------------------------------------------


class TestToken:
    """A token that expires mid-sync is renewed once; refused credentials stop the read."""

    def test_expired_mid_sync(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """The service stops taking the token after two pages: one new token, the read goes on."""
        snapshot = school(5)
        roster = serve(bundle(snapshot, tmp_path))
        roster.token_lasts = 2
        reading = adapter(roster, page_size=3).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert len(roster.token_requests()) == 2
        offsets = [p.query["offset"] for p in roster.page_requests()]
        assert offsets == ["0", "3", "6", "6", "9"]  # the refused page is asked again

    def test_refused_again_after_renewal(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A new token refused too is a typed error that is not retryable."""
        roster = serve(bundle(school(2), tmp_path))
        roster.token_lasts = 0
        with pytest.raises(AdapterError, match="refused a new token") as caught:
            adapter(roster).read(extracted_at=AT)
        assert caught.value.retryable is False
        assert len(roster.token_requests()) == 2

    def test_wrong_secret(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """Credentials the token endpoint refuses: its error code, never the secret."""
        roster = serve(bundle(school(1), tmp_path))
        made = OneRosterRestAdapter(
            roster.url,
            token_url=roster.token_url,
            client_id=CLIENT,
            client_secret="not-" + SECRET,
            sleep=Sleeps(),
        )
        with pytest.raises(AdapterError, match=r"invalid_client") as caught:
            made.read(extracted_at=AT)
        assert caught.value.retryable is False
        assert SECRET not in format_errors(caught.value)
        assert roster.page_requests() == []


# -- retries ----------------------------------------------------------------------------------


class TestRetries:
    """A busy or failing service is waited for, a bounded number of times."""

    def test_429_with_retry_after(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A 429 on page 2 waits what Retry-After says, then reads on."""
        snapshot = school(3)
        roster = serve(bundle(snapshot, tmp_path))
        roster.faults[2] = [Fault(429, {"Retry-After": "7"})]
        sleeps = Sleeps()
        reading = adapter(roster, page_size=4, sleep=sleeps).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert sleeps == [7.0]
        assert [p.query["offset"] for p in roster.page_requests()] == ["0", "4", "4"]

    def test_retry_after_as_a_date(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """Retry-After as an HTTP date is read against the answer's Date."""
        roster = serve(bundle(school(1), tmp_path))
        later = (SERVER_NOW + timedelta(seconds=12)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        roster.faults[1] = [Fault(503, {"Retry-After": later})]
        sleeps = Sleeps()
        adapter(roster, sleep=sleeps).read(extracted_at=AT)
        assert sleeps == [12.0]

    def test_exponential_backoff_then_a_typed_error(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """Without Retry-After the waits double; past max_retries, a retryable AdapterError."""
        roster = serve(bundle(school(1), tmp_path))
        roster.faults[1] = [Fault(503)]
        roster.faults.update({n: [Fault(503)] for n in range(2, 6)})
        sleeps = Sleeps()
        with pytest.raises(AdapterError, match="after 3 retries") as caught:
            adapter(roster, sleep=sleeps, max_retries=3, backoff=0.5).read(extracted_at=AT)
        assert caught.value.retryable is True
        assert sleeps == [0.5, 1.0, 2.0]

    def test_a_wait_too_long(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A Retry-After past max_wait fails at once instead of sleeping through the night."""
        roster = serve(bundle(school(1), tmp_path))
        roster.faults[1] = [Fault(429, {"Retry-After": "3600"})]
        sleeps = Sleeps()
        with pytest.raises(AdapterError, match="asks to wait 3600") as caught:
            adapter(roster, sleep=sleeps, max_wait=60).read(extracted_at=AT)
        assert caught.value.retryable is True
        assert sleeps == []

    def test_other_refusals_are_not_retried(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A 403 or 404 is the configuration's fault: no retry, not retryable."""
        roster = serve(bundle(school(1), tmp_path))
        roster.faults[1] = [Fault(403)]
        sleeps = Sleeps()
        with pytest.raises(AdapterError, match="answered 403") as caught:
            adapter(roster, sleep=sleeps).read(extracted_at=AT)
        assert caught.value.retryable is False
        assert sleeps == []

    def test_a_redirect_is_not_followed(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A 3xx would carry the token elsewhere: it is an error, and nothing follows it."""
        roster = serve(bundle(school(1), tmp_path))
        roster.faults[1] = [Fault(302, {"Location": "http://127.0.0.1:9/elsewhere"})]
        with pytest.raises(AdapterError, match="redirects"):
            adapter(roster).read(extracted_at=AT)
        assert len(roster.page_requests()) == 1


# -- broken pages -------------------------------------------------------------------------------


class TestBrokenPages:
    """A page cut short or not JSON never gives a half snapshot."""

    def test_a_cut_connection_is_retried(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """Fewer bytes than Content-Length promised: the page is asked for again."""
        snapshot = school(3)
        roster = serve(bundle(snapshot, tmp_path))
        roster.faults[2] = [Fault(body="cut")]
        sleeps = Sleeps()
        reading = adapter(roster, page_size=4, sleep=sleeps).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert len(sleeps) == 1

    def test_a_cut_that_persists(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A page cut every time: a retryable AdapterError naming the page, not a half snapshot."""
        roster = serve(bundle(school(3), tmp_path))
        roster.faults.update({n: [Fault(body="cut")] for n in range(2, 10)})
        with pytest.raises(AdapterError, match="page 2 of users") as caught:
            adapter(roster, page_size=4, max_retries=2).read(extracted_at=AT)
        assert caught.value.retryable is True

    def test_a_truncated_page(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """Half a page of JSON, the connection closed: a data error naming collection and page."""
        snapshot = school(3)
        roster = serve(bundle(snapshot, tmp_path))
        roster.faults[2] = [Fault(body="short")]
        with pytest.raises(SourceDataError, match="page 2 of users is not valid JSON") as caught:
            adapter(roster, page_size=4).read(extracted_at=AT)
        assert caught.value.file == "users"
        text = format_errors(caught.value)
        assert not [v for v in _personal(snapshot) if v in text]

    def test_not_the_envelope(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """JSON that is not {"users": [...]} is a data error."""
        roster = serve(bundle(school(1), tmp_path))
        made = adapter(roster)
        original = made._client.page

        def wrong(path: str, params: Any, *, collection: str, number: int) -> Any:
            return original(path, params, collection="user", number=number)

        made._client.page = wrong  # type: ignore[method-assign]
        with pytest.raises(SourceDataError, match="the binding's envelope"):
            made.read(extracted_at=AT)

    def test_a_record_of_the_wrong_shape(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A name that is a number, agents that are text: each record rejected, named by field."""
        snapshot = school(4)
        roster = serve(bundle(snapshot, tmp_path))

        def spoil(users: list[dict[str, Any]]) -> None:
            users.sort(key=lambda u: u["sourcedId"])
            users[0]["givenName"] = 7
            users[1]["agents"] = "P001"

        roster.edit_users = spoil
        reading = adapter(roster, max_reject_fraction=0.5).read(extracted_at=AT)
        assert reading.rejected == 2
        assert reading.snapshot.kind is SnapshotKind.DELTA
        rejected = [(n.file, n.line, n.field) for n in reading.notices if n.code == "row-rejected"]
        assert rejected == [("users", 1, "givenName"), ("users", 2, "agents")]
        with pytest.raises(RejectedFileError):
            adapter(roster).read(extracted_at=AT)


# -- all or nothing -----------------------------------------------------------------------------


class TestAllOrNothing:
    """Data that moves under the read restarts it; data that keeps moving fails it whole."""

    def test_a_count_that_changes_between_pages(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A pupil joins after page 1 (X-Total-Count changes): the read starts again, whole."""
        snapshot = school(3)
        roster = serve(bundle(snapshot, tmp_path))
        joiner = user_json(
            {"sourcedId": "P000", "givenName": "New", "familyName": "Pupil", "role": "student"},
            [{"roleType": "primary", "role": "student", "orgSourcedId": "school"}],
            "1.2",
        )
        joiner["dateLastModified"] = "2026-12-31T23:59:59.000Z"  # before the service's clock

        def after(roster: Roster, number: int) -> None:
            if number == 1:
                roster.extra_users.append(joiner)

        roster.after_page = after
        sleeps = Sleeps()
        reading = adapter(roster, page_size=3, sleep=sleeps).read(extracted_at=AT)
        assert "P000" in {r.key for r in reading.snapshot.records}
        assert len(reading.snapshot.records) == len(snapshot.records) + 1
        assert [p.query["offset"] for p in roster.page_requests()][:3] == ["0", "3", "0"]
        assert sleeps == [1.0]

    def test_a_record_modified_during_the_read(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """A record whose dateLastModified is after the first page's Date: the read starts again."""
        snapshot = school(3)
        roster = serve(bundle(snapshot, tmp_path))

        def touched(users: list[dict[str, Any]]) -> None:
            if roster.pages in (2, 3):  # while the first read is on its later pages
                for user in users:
                    if user["sourcedId"] == "T1":
                        user["familyName"] = "Renamed"
                        user["dateLastModified"] = "2027-01-01T00:00:05.000Z"

        roster.edit_users = touched
        sleeps = Sleeps()
        reading = adapter(roster, page_size=3, sleep=sleeps).read(extracted_at=AT)
        assert reading.snapshot == snapshot
        assert sleeps == [1.0]  # one restart, after the backoff
        assert len(roster.page_requests()) == 6

    def test_data_that_keeps_moving(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A service whose data changes on every page: a retryable error, and nothing read."""
        roster = serve(bundle(school(3), tmp_path))

        def after(roster: Roster, number: int) -> None:
            roster.extra_users.append(
                user_json(
                    {"sourcedId": f"X{number:03d}", "givenName": "Ex", "role": "student"},
                    [{"roleType": "primary", "role": "student"}],
                    "1.2",
                )
            )

        roster.after_page = after
        sleeps = Sleeps()
        with pytest.raises(AdapterError, match="changed while it was read") as caught:
            adapter(roster, page_size=3, max_restarts=2, sleep=sleeps).read(extracted_at=AT)
        assert caught.value.retryable is True
        assert [p.query["offset"] for p in roster.page_requests()].count("0") == 3
        assert sleeps == [1.0, 2.0]

    def test_a_collection_that_ends_early(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """An empty page before X-Total-Count is reached is data moving, never a shorter roster."""
        roster = serve(bundle(school(3), tmp_path))

        def fewer(users: list[dict[str, Any]]) -> None:
            if roster.pages >= 3:
                users.sort(key=lambda u: u["sourcedId"])
                del users[2:]

        roster.edit_users = fewer
        roster.total_header = False  # the count of the short list would give it away first

        def counted(path: str, params: Any, **kw: Any) -> Any:
            page = original(path, params, **kw)
            return attrs.evolve(page, total=7)

        made = adapter(roster, page_size=3, max_restarts=0)
        original = made._client.page
        made._client.page = counted  # type: ignore[method-assign]
        with pytest.raises(AdapterError, match="changed while it was read"):
            made.read(extracted_at=AT)


# -- secrets and settings ---------------------------------------------------------------------


def _personal(snapshot: Snapshot) -> set[str]:
    found: set[str] = set()
    for record in snapshot.records:
        found.update(v for v in (record.data.given_name, record.data.family_name) if len(v) > 3)
        found.update(p.number for p in record.data.phones)
        found.update(e.address for e in record.data.emails)
    return found


class TestSecrets:
    """The secret and the token appear in no error, log line or repr."""

    def test_nowhere(
        self, serve: Callable[[Path], Roster], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Across a read with a 429, a renewed token, and a failure: no secret, no token."""
        caplog.set_level(logging.DEBUG)
        roster = serve(bundle(school(3), tmp_path))
        roster.token_lasts = 1
        roster.faults[2] = [Fault(429, {"Retry-After": "0"})]
        made = adapter(roster, page_size=3)
        made.read(extracted_at=AT)
        roster.faults.update({n: [Fault(500)] for n in range(1, 40)})
        with pytest.raises(AdapterError) as caught:
            adapter(roster, max_retries=1).read(extracted_at=AT)
        said = "\n".join([repr(made), repr(made._client), format_errors(caught.value), caplog.text])
        assert SECRET not in said
        assert "token-1" not in said
        assert base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode() not in said

    def test_plain_http_elsewhere_is_refused(self) -> None:
        """http:// to another machine would carry the secret in clear: refused unless accepted."""
        with pytest.raises(UsageError, match="unencrypted") as caught:
            OneRosterRestAdapter(
                "http://sis.example.org",
                token_url="https://sis.example.org/token",
                client_id=CLIENT,
                client_secret=SECRET,
            )
        assert SECRET not in str(caught.value)
        made = OneRosterRestAdapter(
            "http://sis.example.org",
            token_url="http://sis.example.org/token",
            client_id=CLIENT,
            client_secret=SECRET,
            allow_insecure=True,
        )
        assert (
            repr(made)
            == "OneRosterRestAdapter('http://sis.example.org', source='mis', version='1.2')"
        )

    @pytest.mark.parametrize(
        "options",
        [
            {"version": "2.0"},
            {"client_secret": ""},
            {"client_auth": "digest"},
            {"page_size": 0},
            {"max_retries": -1},
            {"source": "a:b"},
            {"org": " "},
        ],
    )
    def test_options_are_checked(self, options: dict[str, Any]) -> None:
        """A bad option is a UsageError when the adapter is made, before any request."""
        given: dict[str, Any] = {
            "token_url": "https://sis.example.org/token",
            "client_id": CLIENT,
            "client_secret": SECRET,
            **options,
        }
        with pytest.raises(UsageError):
            OneRosterRestAdapter("https://sis.example.org", **given)

    def test_registered(self) -> None:
        """policy.toml can name it: the registry's source adapter 'oneroster-rest'."""
        assert registry.get("source", "oneroster-rest") is OneRosterRestAdapter
        assert "oneroster-rest" in registry.available("source")


def policy_toml(roster: Roster, secret: str = 'client_secret_env = "ONEROSTER_SECRET"') -> str:
    """A policy.toml whose MIS is *roster*, read over REST."""
    return f"""
precedence = ["mis"]

[sources.mis]
kind = "mis"
covers = ["given_name", "family_name", "role", "phones", "emails", "relationships",
          "year_group"]
adapter = "oneroster-rest"

[sources.mis.options]
url = "{roster.url}"
token_url = "{roster.token_url}"
client_id = "{CLIENT}"
{secret}
version = "1.1"
"""


class TestPolicyToml:
    """policy.toml names the service and the secret's variable; the secret stays outside."""

    def test_a_book_folder_reads_it(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """The folder builds the adapter from the settings and the environment, and reads."""
        snapshot = school(2)
        roster = serve(bundle(snapshot, tmp_path / "served", "1.1"))
        environ = {"ONEROSTER_SECRET": SECRET}
        folder = BookFolder.create(tmp_path / "book", settings=policy_toml(roster), environ=environ)
        assert folder.settings.plaintext_secrets == ()
        assert SECRET not in (tmp_path / "book" / "policy.toml").read_text(encoding="utf-8")
        reading = folder.read_source("mis", None, extracted_at=AT)
        assert reading.snapshot == snapshot
        with pytest.raises(UsageError, match="reads its service's URL, not a path"):
            folder.source_adapter("mis", tmp_path)

    def test_the_command_syncs_it_without_a_path(
        self, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """`sourcetruth sync mis` reads the live source; a path given to it is refused."""
        roster = serve(bundle(school(2), tmp_path / "served", "1.1"))
        (tmp_path / "policy.toml").write_text(policy_toml(roster), encoding="utf-8")
        environ = {"ONEROSTER_SECRET": SECRET, "SOURCETRUTH_USER": "office"}
        book = str(tmp_path / "book")
        out, err = io.StringIO(), io.StringIO()

        def run(*argv: str) -> int:
            return cli_main(["--book", book, *argv], out=out, err=err, environ=environ)

        assert run("init", "--policy", str(tmp_path / "policy.toml")) == 0
        assert run("sync", "mis", "--at", "2026-11-24T02:00") == 0, err.getvalue()
        assert "mis sync 1: applied; 5 new" in out.getvalue()
        assert SECRET not in out.getvalue() + err.getvalue()
        assert run("sync", "mis", str(tmp_path / "served"), "--at", "2026-11-24T02:05") == 2
        assert "is read from its service: give no path" in err.getvalue()

    def test_the_variable_unset(self, serve: Callable[[Path], Roster], tmp_path: Path) -> None:
        """A folder made where the variable is unset says so at the read, naming the key only."""
        roster = serve(bundle(school(1), tmp_path / "served", "1.1"))
        folder = BookFolder.create(tmp_path / "book", settings=policy_toml(roster), environ={})
        with pytest.raises(SourceDataError, match="ONEROSTER_SECRET") as caught:
            folder.source_adapter("mis", None)
        assert caught.value.field == "sources.mis.options.client_secret_env"
        assert roster.seen == []

    def test_a_secret_in_the_file(
        self, serve: Callable[[Path], Roster], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A secret written in the file works, is listed, and is logged by its key only."""
        roster = serve(bundle(school(1), tmp_path / "served", "1.1"))
        text = policy_toml(roster, f'client_secret = "{SECRET}"')
        with caplog.at_level(logging.WARNING):
            settings = parse_settings(text)
        assert settings.plaintext_secrets == ("sources.mis.options.client_secret",)
        assert "sources.mis.options.client_secret" in caplog.text
        assert SECRET not in caplog.text

    @pytest.mark.parametrize(
        ("secret", "field", "said"),
        [
            (
                f'client_secret = "{SECRET}"\nclient_secret_env = "ONEROSTER_SECRET"',
                "sources.mis.options.client_secret_env",
                "both give client_secret",
            ),
            ("client_secret_env = 7", "sources.mis.options.client_secret_env", ""),
            ("", "sources.mis.options.client_secret", "client_secret_env"),
            (
                'client_secret_env = "S"\npage_sise = 5',
                "sources.mis.options.page_sise",
                "page_size",
            ),
        ],
    )
    def test_mistakes_name_the_key(
        self, secret: str, field: str, said: str, serve: Callable[[Path], Roster], tmp_path: Path
    ) -> None:
        """Both forms of the secret, a variable not a name, none, a typo: each by its key."""
        roster = serve(bundle(school(1), tmp_path / "served", "1.1"))
        with pytest.raises(SourceDataError) as caught:
            check_adapters(parse_settings(policy_toml(roster, secret)))
        assert caught.value.field == field
        assert said in caught.value.reason
        assert SECRET not in str(caught.value)


# -- the conformance kit ------------------------------------------------------------------------


class TestRestContract(SourceAdapterContract):
    """The conformance kit over a bundle served by the loopback service (OneRoster 1.2)."""

    version = "1.2"

    @pytest.fixture
    def sample(self, source_name: str) -> Snapshot:
        """The kit's school with every email retyped OTHER: the format has no email type."""
        return emails_typed_other(sample_school(source_name))

    @pytest.fixture
    def make_adapter(
        self, serve: Callable[[Path], Roster]
    ) -> Callable[[Snapshot, Path], SourceAdapter]:
        """Write the snapshot as a bundle, serve it, read it by REST (a delta: since before it)."""

        def make(snapshot: Snapshot, directory: Path) -> SourceAdapter:
            write_bundle(snapshot, directory, version=self.version)
            since = None
            if snapshot.kind is SnapshotKind.DELTA:
                since = snapshot.extracted_at - timedelta(seconds=1)
            return adapter(
                serve(directory), self.version, source=snapshot.source, since=since, page_size=3
            )

        return make

    @pytest.fixture
    def partly_broken(
        self, serve: Callable[[Path], Roster], sample: Snapshot, tmp_path: Path
    ) -> tuple[SourceAdapter, str]:
        """One person's record with a name that is not text, read with room for one reject."""
        directory = tmp_path / "partly"
        write_bundle(sample, directory, version=self.version)
        roster = serve(directory)
        bad = sorted(r.key for r in sample.records)[0]

        def spoil(users: list[dict[str, Any]]) -> None:
            for user in users:
                if user["sourcedId"] == bad:
                    user["givenName"] = {"not": "text"}

        roster.edit_users = spoil
        return adapter(roster, self.version, source=sample.source, max_reject_fraction=0.5), bad

    @pytest.fixture
    def make_lenient_adapter(
        self, serve: Callable[[Path], Roster]
    ) -> Callable[[Snapshot, Path], SourceAdapter]:
        """``make_adapter`` with a reject limit of 50%."""

        def make(snapshot: Snapshot, directory: Path) -> SourceAdapter:
            write_bundle(snapshot, directory, version=self.version)
            return adapter(
                serve(directory),
                self.version,
                source=snapshot.source,
                page_size=3,
                max_reject_fraction=0.5,
            )

        return make

    @pytest.fixture
    def not_applicable(self) -> dict[str, str]:
        """What the kit cannot do through a served bundle, and where it is tested instead."""
        sorted_by_key = "write_bundle writes users and their links by key: bytes of the data alone"
        return {
            "test_the_order_of_written_records_does_not_matter": sorted_by_key,
            "test_the_order_of_links_does_not_matter": sorted_by_key,
            "test_a_spoilt_value_is_refused_naming_its_file": (
                "a REST source reads pages, not files: a page that is not UTF-8 JSON is "
                "refused naming its collection and page (TestBrokenPages)"
            ),
        }


class TestRest11Contract(TestRestContract):
    """The conformance kit again, through the OneRoster 1.1 binding."""

    version = "1.1"


def test_errors_are_the_librarys(serve: Callable[[Path], Roster], tmp_path: Path) -> None:
    """Whatever goes wrong, the read raises the library's own errors."""
    roster = serve(bundle(school(1), tmp_path))
    roster.faults[1] = [Fault(404)]
    with pytest.raises(SourceTruthError):
        adapter(roster).read(extracted_at=AT)
