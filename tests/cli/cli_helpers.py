"""Helpers of the command's tests: the school, the command on a book folder, a refusing gateway.

A small school in the week of Monday 23 November 2026 (Europe/London): the MIS
is a OneRoster bundle synced nightly at 02:00, manual imports are CSV files
read through a mapping, and the address book takes vCards. Every time is given
explicitly (``--at``, ``--extracted-at``), so nothing depends on the clock.
Fixtures use only Ofcom drama numbers and ``.test`` / ``example.org`` addresses.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from sourcetruth import ContactData, Email, Phone, PhoneType, Record, Relationship, Role, Snapshot
from sourcetruth.adapters.sources.oneroster import write_bundle
from sourcetruth.adapters.sources.vcard import format_vcards
from sourcetruth.adapters.stores.postgres import TABLES, split_url
from sourcetruth.cli import main

LONDON = ZoneInfo("Europe/London")
USER = "office"


def when(day: int, hour: int, minute: int = 0) -> str:
    """A wall-clock time in London in November 2026, as the command takes it."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}"


def moment(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


def iso(day: int, hour: int, minute: int = 0) -> str:
    """How JSON output writes that time (UTC; London is on GMT in November)."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+00:00"


def person(
    key: str,
    given: str,
    family: str,
    role: Role,
    *,
    mobile: str = "",
    email: str = "",
    year: str = "",
    pupils: tuple[str, ...] = (),
) -> Record:
    return Record(
        key,
        ContactData(
            given,
            family,
            role,
            phones=(Phone(mobile, PhoneType.MOBILE),) if mobile else (),
            emails=(Email(email),) if email else (),
            relationships=tuple(Relationship(p) for p in pupils),
            year_group=year,
        ),
    )


#: A truncated export: half of the school is missing from it.
TRUNCATED: dict[str, Record | None] = dict.fromkeys(("P4", "P5", "P6", "G4", "G5", "G6"))


def school(**changed: Record | None) -> list[Record]:
    """The MIS: six pupils (three in year 9, three in year 8), their guardians, one teacher."""
    people: dict[str, Record | None] = {
        "P1": person("P1", "Nina", "Okafor", Role.PUPIL, year="9"),
        "P2": person("P2", "Omar", "Byrne", Role.PUPIL, year="9"),
        "P3": person("P3", "Tess", "Moreau", Role.PUPIL, year="9"),
        "P4": person("P4", "Lily", "Shah", Role.PUPIL, year="8"),
        "P5": person("P5", "Ravi", "Patel", Role.PUPIL, year="8"),
        "P6": person("P6", "Ada", "Birch", Role.PUPIL, year="8"),
        "G1": guardian("G1", "Gita", "Okafor", "900101", "P1"),
        "G2": guardian("G2", "Hugh", "Byrne", "900102", "P2"),
        "G3": guardian("G3", "Ines", "Moreau", "900103", "P3"),
        "G4": guardian("G4", "Raj", "Shah", "900104", "P4"),
        "G5": guardian("G5", "Mina", "Patel", "900105", "P5"),
        "G6": guardian("G6", "Zebedee", "Quill", "900106", "P6"),
        "S1": person(
            "S1", "Sam", "Teach", Role.STAFF, mobile="07700 900201", email="sam@school.example.org"
        ),
    }
    people.update(changed)
    return [r for r in people.values() if r is not None]


def guardian(key: str, given: str, family: str, digits: str, pupil: str, **kw: str) -> Record:
    email = kw.get("email", f"{given.lower()}@parent.test")
    mobile = kw.get("mobile", f"07700 {digits}")
    return person(key, given, family, Role.GUARDIAN, mobile=mobile, email=email, pupils=(pupil,))


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


#: Where a book of a test marked ``@on_both`` is kept: a folder, then a PostgreSQL database.
KINDS = ("folder", "postgres")
#: Runs a test of the ``cli`` (or ``book``) fixture once on a folder, once in a database.
on_both = pytest.mark.parametrize("cli", KINDS, indirect=True)


class Cli:
    """The command on one book (a folder, or the URL *book*), its environment, and exports."""

    def __init__(self, root: Path, book: str | None = None) -> None:
        self.root = root
        self.folder = root / "book"
        #: What ``--book`` says: the folder, or a ``postgresql://`` URL.
        self.book = book or os.fspath(self.folder)
        self.in_database = book is not None
        self.exports = root / "exports"
        self.exports.mkdir(parents=True, exist_ok=True)
        self.environ: dict[str, str] = {"SOURCETRUTH_USER": USER}

    def __call__(self, *args: str, environ: Mapping[str, str] | None = None) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--book", self.book, *args],
            out=out,
            err=err,
            environ={**self.environ, **(environ or {})},
        )
        return Ran(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, environ: Mapping[str, str] | None = None) -> Ran:
        ran = self(*args, environ=environ)
        assert ran.code == 0, ran.err
        return ran

    def fails(self, code: int, *args: str, environ: Mapping[str, str] | None = None) -> Ran:
        ran = self(*args, environ=environ)
        assert ran.code == code, (ran.code, ran.out, ran.err)
        assert "Traceback" not in ran.err
        return ran

    def export(self, name: str, records: list[Record] | None = None) -> str:
        """A OneRoster bundle of the school (as changed), for `sync mis`."""
        folder = self.exports / name
        write_bundle(Snapshot("mis", moment(23, 0), records or school()), folder)
        return os.fspath(folder)

    def sync(self, path: str, day: int, hour: int = 2, *extra: str) -> Ran:
        """The nightly sync: read half an hour before it is applied."""
        read = when(day, hour - 1, 30) if hour else when(day - 1, 23, 30)
        return self.ok("sync", "mis", path, "--at", when(day, hour), "--extracted-at", read, *extra)

    def journal(self) -> list[Any]:
        runs: list[Any] = self.ok("journal", "--json").json()
        return runs

    def show(self, contact: str, at: str) -> Any:
        return self.ok("show", contact, "--at", at, "--json").json()

    def stored(self) -> dict[str, bytes]:
        """What the book keeps: each file of its folder, or each of its rows in the database."""
        if not self.in_database:
            return files_of(self.folder)
        connection, book = split_url(self.book)
        found: dict[str, bytes] = {}
        with psycopg.connect(connection, autocommit=True) as db:
            # The store's own role, under its row-level security: this book's rows only.
            db.execute("SELECT set_config('sourcetruth.book', %s, false)", (book,))
            for table in TABLES:
                rows = db.execute(f"SELECT t::text FROM sourcetruth.{table} t").fetchall()
                for i, (row,) in enumerate(rows):
                    found[f"{table}/{i}"] = row.encode("utf-8")
        return found

    def outbox(self) -> list[bytes]:
        """The messages in the book's outbox: its folder's files, or its rows."""
        if not self.in_database:
            return [p.read_bytes() for p in sorted((self.folder / "outbox").rglob("*.json"))]
        return [data for name, data in sorted(self.stored().items()) if name.startswith("outbox/")]

    def enable_import(self) -> None:
        """Give the import source its CSV mapping, as docs/adapters.md describes."""
        (self.folder / "mapping.toml").write_text(
            'key = "Id"\n'
            'given_name = "First name"\n'
            'family_name = "Surname"\n'
            'phones = [{ column = "Mobile", type = "mobile" }]\n'
            'emails = [{ column = "Email" }]\n',
            encoding="utf-8",
        )
        policy = self.folder / "policy.toml"
        text = policy.read_text(encoding="utf-8")
        policy.write_text(
            text.replace('# mapping = "mapping.toml"', 'mapping = "mapping.toml"'),
            encoding="utf-8",
        )

    def csv(self, name: str, text: str) -> str:
        path = self.exports / name
        path.write_text(text, encoding="utf-8")
        return os.fspath(path)


def one_error_line(ran: Ran) -> str:
    """The single line a failing command writes on stderr."""
    lines = ran.err_lines
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("sourcetruth: ")
    assert "Traceback" not in ran.err
    return lines[0]


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        os.fspath(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def governor_card(email: str = "aoife@example.org") -> str:
    return format_vcards(
        [
            Record(
                "gov-la",
                ContactData(
                    "Aoife",
                    "Lennon",
                    Role.GOVERNOR,
                    phones=(Phone("07700 900301"),),
                    emails=(Email(email),),
                ),
            )
        ],
        version="3.0",
    )


def outbox_files(cli: Cli) -> list[Path]:
    return sorted((cli.folder / "outbox").rglob("*.json"))


class Gateway(ThreadingHTTPServer):
    """An SMS gateway that refuses every message with a 400, and keeps the requests."""

    seen: list[dict[str, Any]]


class RefusingHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append({"headers": dict(self.headers), "body": json.loads(body)})
        answer = json.dumps({"status": "rejected", "reason": "invalid-number"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


SMS_TOKEN = "tok-7c1e9a2b5d"


def use_gateway(cli: Cli, gateway: Gateway) -> None:
    port = gateway.server_address[1]
    with (cli.folder / "policy.toml").open("a", encoding="utf-8") as policy:
        policy.write(
            "\n[transports.sms]\n"
            'adapter = "sms-http"\n'
            f'url = "http://127.0.0.1:{port}/send"\n'
            'sender = "School"\n'
            'token_env = "SCHOOL_SMS_TOKEN"\n'
        )


class ClosedPipe(io.StringIO):
    """Standard output whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")
