"""Rule 7: merge is deterministic, and no module of the core reads a clock or the environment.

The subprocess tests build the same book under different ``PYTHONHASHSEED``
values and with the records of each snapshot in different orders, and compare
the serialised book and last report byte for byte.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sourcetruth
from sourcetruth.adapters.stores.postgres import book_url, open_book_url
from sourcetruth.adapters.stores.sqlite import SqliteStore
from stores import kinds

SCRIPT = textwrap.dedent(
    '''
    """Build a book from several inputs; print the book and the last report."""
    import sys
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sourcetruth import (
        AddressBookSave, Book, ContactData, Email, GroupDefinition, Phone, Policy,
        Record, Relationship, Role, Rule, Schedule, SetGroup, SetOverride, Snapshot,
        Source, SourceKind, dumps,
    )

    LONDON = ZoneInfo("Europe/London")
    ORDER = sys.argv[1]
    # A store to commit each merge to and load the book back from: none (in memory),
    # a SQLite file's path, or a PostgreSQL book's URL.
    STORE = sys.argv[2] if len(sys.argv) > 2 else ""
    if STORE.startswith("postgresql://"):
        from sourcetruth.adapters.stores.postgres import open_book_url
        store = open_book_url(STORE)
    elif STORE:
        from sourcetruth.adapters.stores.sqlite import SqliteStore
        store = SqliteStore(STORE)
    else:
        store = None


    def merge(book, change, *, policy, at, by):
        """The core's merge; with a store, committed and the book loaded back."""
        from sourcetruth import merge as merge_in_memory
        result = merge_in_memory(book, change, policy=policy, at=at, by=by)
        if store is None:
            return result
        from attrs import evolve
        from sourcetruth.journal import run_of
        store.commit(book, result, run_of(book, (change,), result.report, at=at, by=by))
        return evolve(result, book=store.load())


    def at(day, hour, minute=0):
        return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


    def arrange(records):
        """Put the records in the order this run was asked for."""
        records = sorted(records, key=lambda r: r.key)
        if ORDER == "reversed":
            records.reverse()
        elif ORDER == "rotated":
            records = records[3:] + records[:3]
        elif ORDER == "hashed":
            records.sort(key=lambda r: hash(r.key))  # differs with PYTHONHASHSEED
        print(",".join(r.key for r in records), file=sys.stderr)
        return tuple(records)


    def person(key, role, given, mobile="", email="", year="", pupils=()):
        return Record(key, ContactData(
            given, "Family" + key, role,
            phones=(Phone(mobile),) if mobile else (),
            emails=(Email(email),) if email else (),
            relationships=tuple(Relationship(p) for p in pupils),
            year_group=year,
        ))


    policy = Policy(sources=(
        Source("mis", SourceKind.MIS, schedule=Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0")),
        Source("import", SourceKind.IMPORT,
               covers=frozenset({"given_name", "family_name", "phones", "emails"})),
    ))
    monday = [
        person("P1", Role.PUPIL, "Nina", year="9"),
        person("P2", Role.PUPIL, "Omar", year="8"),
        person("P3", Role.PUPIL, "Ivy", year="9"),
        person("G1", Role.GUARDIAN, "Gita", "07700 900101", "g1@parent.test", pupils=("P1",)),
        person("G2", Role.GUARDIAN, "Hal", "07700 900102", "g2@parent.test", pupils=("P2",)),
        person("G3", Role.GUARDIAN, "Paula", "07700 900103", "G3@Parent.Test", pupils=("P3",)),
        person("S1", Role.STAFF, "Steve", "01632 960201", "s1@school.test"),
        person("S2", Role.STAFF, "Sue", "not a number", "s2@school.test"),
    ]
    book = Book()
    book = merge(book, Snapshot("mis", at(23, 1, 55), arrange(monday)),
                 policy=policy, at=at(23, 2), by="nightly").book
    imported = [
        person("row-1", Role.OTHER, "Gita", "07700 900101", "g1@parent.test"),
        person("row-2", Role.OTHER, "Una", "07700 900401", "una@example.org"),
        person("row-3", Role.OTHER, "Vic", "07700 900402", "vic@example.org"),
        person("row-4", Role.OTHER, "Wes", "07700 900403", "wes@example.org"),
    ]
    book = merge(book, Snapshot("import", at(23, 9), arrange(imported)),
                 policy=policy, at=at(23, 9), by="upload").book
    la = ContactData("Lars", "Governor", Role.GOVERNOR,
                     phones=(Phone("07700 900301"),), emails=(Email("la@example.org"),))
    book = merge(book, AddressBookSave("address-book:la", la),
                 policy=policy, at=at(23, 10), by="office").book
    book = merge(book, SetOverride("mis:G1", "emails",
                                   ContactData(emails=(Email("g1.new@parent.test"),))),
                 policy=policy, at=at(23, 11), by="office").book
    book = merge(book, SetOverride("mis:G2", "phones",
                                   ContactData(phones=(Phone("07700 900902"),))),
                 policy=policy, at=at(23, 11, 30), by="office").book
    governors = GroupDefinition(
        "Governors", members=frozenset({"mis:S1", "mis:G3", "address-book:la", "import:row-2"}))
    book = merge(book, SetGroup(governors), policy=policy, at=at(23, 12), by="office").book
    year9 = GroupDefinition("Year 9 parents",
                            rule=Rule(year_groups=frozenset({"9"}), guardians_of=True))
    book = merge(book, SetGroup(year9), policy=policy, at=at(23, 12, 5), by="office").book
    # Tuesday: P2 leaves, P4 arrives, G2's phone changes to the edited value, S2's
    # phone is another unparseable text, G3's phone and email are only reformatted.
    tuesday = {r.key: r for r in monday if r.key != "P2"}
    tuesday["G2"] = person("G2", Role.GUARDIAN, "Hal", "07700 900902", "g2@parent.test",
                           pupils=("P2",))
    tuesday["G3"] = person("G3", Role.GUARDIAN, "Paula", "07700900103", "G3@parent.test",
                           pupils=("P3",))
    tuesday["P4"] = person("P4", Role.PUPIL, "Zed", year="7")
    tuesday["S2"] = person("S2", Role.STAFF, "Sue", "ring the office", "s2@school.test")
    result = merge(book, Snapshot("mis", at(24, 1, 55), arrange(tuesday.values())),
                   policy=policy, at=at(24, 2), by="nightly")
    print(dumps(result.book))
    print(dumps(result.report))
    '''
)

SEEDS = ("0", "1", "2", "random")
ORDERS = ("sorted", "reversed", "rotated", "hashed")


def _run(
    script: Path, seed: str, order: str, store: str = ""
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = seed
    return subprocess.run(
        [sys.executable, str(script), order, store], capture_output=True, env=env, check=False
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """stdout and stderr of the script for every (seed, order) pair."""
    script = tmp_path_factory.mktemp("determinism") / "build_book.py"
    script.write_text(SCRIPT, encoding="utf-8")
    out = {}
    for seed in SEEDS:
        for order in ORDERS:
            done = _run(script, seed, order)
            assert done.returncode == 0, done.stderr.decode(errors="replace")
            out[seed, order] = (done.stdout, done.stderr)
    return out


#: The runs made through each store: the records in key order, and in an order set by
#: the hash seed (a random one).
STORED_RUNS = (("0", "sorted"), ("random", "hashed"))


@pytest.fixture(scope="module")
def stored_runs(
    request: pytest.FixtureRequest,
    store_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], bytes]:
    """stdout of the script committing each merge to *store_kind*'s store, per (seed, order)."""
    folder = tmp_path_factory.mktemp("determinism-stores")
    script = folder / "build_book.py"
    script.write_text(SCRIPT, encoding="utf-8")
    database = ""
    if store_kind == "postgres":
        database = request.getfixturevalue("postgres_server").new_database("determinism")
    out = {}
    for n, (seed, order) in enumerate(STORED_RUNS):
        # A new store for every run: a book of its own in one database, or a file.
        store = book_url(database, f"run-{n}") if database else str(folder / f"run-{n}.sqlite")
        done = _run(script, seed, order, store)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        out[seed, order] = done.stdout
        # The run really went through the store: its eight merges are journalled there.
        opened = open_book_url(store) if database else SqliteStore(store)
        assert len(opened.journal()) == 8
        opened.close()
    return out


@pytest.mark.parametrize("store_kind", kinds("sqlite", "postgres"), indirect=True, scope="module")
class TestThroughAStore:
    """Each merge committed to a store and the book loaded back: the same bytes as in memory."""

    def test_the_same_bytes_as_in_memory_for_every_seed_and_order(
        self,
        runs: dict[tuple[str, str], tuple[bytes, bytes]],
        stored_runs: dict[tuple[str, str], bytes],
    ) -> None:
        """Under every hash seed and record order, the stored book and report are memory's."""
        in_memory = runs["0", "sorted"][0]
        assert in_memory.count(b"\n") == 2
        assert {key: out == in_memory for key, out in stored_runs.items()} == dict.fromkeys(
            STORED_RUNS, True
        )


class TestSerialisedBookIsByteIdentical:
    def test_same_bytes_for_every_hash_seed_and_record_order(
        self, runs: dict[tuple[str, str], tuple[bytes, bytes]]
    ) -> None:
        """Book and last report hash the same under PYTHONHASHSEED 0, 1, 2, random, any order."""
        digests = {key: hashlib.sha256(stdout).hexdigest() for key, (stdout, _) in runs.items()}
        assert len(set(digests.values())) == 1, digests

    def test_the_runs_really_fed_records_in_different_orders(
        self, runs: dict[tuple[str, str], tuple[bytes, bytes]]
    ) -> None:
        """The comparison means something: the snapshots' record orders did differ."""
        orders = {stderr for _, stderr in runs.values()}
        assert len(orders) >= len(ORDERS)

    def test_output_is_the_book_and_a_rich_last_report(
        self, runs: dict[tuple[str, str], tuple[bytes, bytes]]
    ) -> None:
        """What is compared holds a book and an applied report with real content."""
        stdout, _ = runs["0", "sorted"]
        book_text, report_text = stdout.decode().splitlines()
        book = sourcetruth.loads(book_text, sourcetruth.Book)
        report = sourcetruth.loads(report_text, sourcetruth.Report)
        assert report.status is sourcetruth.Status.APPLIED
        assert report.departed == ("mis:P2",)
        assert report.created == ("mis:P4",)
        assert report.changes
        assert {e.override.contact_id for e in report.overrides_ended} == {"mis:G1", "mis:G2"}
        assert [(u.record, u.field) for u in report.unnormalised] == [("mis:S2", "phones")]
        assert "mis:G3" not in {c.contact_id for c in report.changes}
        assert set(book.groups) == {"Governors", "Year 9 parents"}
        assert set(book.records) == {"mis", "import", "address-book"}
        # Serialisation is canonical: the bytes are stable through a round trip.
        assert sourcetruth.dumps(book) == book_text
        assert json.loads(report_text)["type"] == "Report"


# -- the core reads no clock, environment or file ---------------------------------------

FORBIDDEN_MODULES = frozenset({"os", "time", "random", "uuid", "socket", "pathlib", "io"})
FORBIDDEN_METHODS = frozenset({"now", "utcnow", "today"})
FORBIDDEN_CALLS = frozenset({"open"})
PACKAGE = Path(sourcetruth.__file__).parent
#: The core: every module directly in the package. ``__main__`` runs the command
#: and ``_moved`` is import machinery for old module paths; neither is the core.
CORE = sorted(
    p.name
    for p in PACKAGE.glob("*.py")
    if p.name not in {"__init__.py", "__main__.py", "_moved.py"}
)


def impurities(source: str) -> list[str]:
    """Every forbidden import or call in *source*, as readable strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_METHODS:
                found.append(f"call .{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"call {func.id}()")
            elif isinstance(func, ast.Name) and func.id == "__import__":
                found.append("call __import__()")
    return found


class TestTheCoreIsPure:
    def test_the_core_is_found(self) -> None:
        """The list of core modules holds the merge and its queries (so the check is not empty)."""
        assert {"merge.py", "model.py", "report.py", "effective.py", "audience.py"} <= set(CORE)
        assert {"duplicates.py", "worklists.py", "messages.py"} <= set(CORE)

    @pytest.mark.parametrize("module", CORE)
    def test_no_clock_environment_or_file_access(self, module: str) -> None:
        """A core module imports no os/time/random/uuid/socket/pathlib/io and calls no clock."""
        source = (PACKAGE / module).read_text(encoding="utf-8")
        assert impurities(source) == []

    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            ("import os", "import os"),
            ("import os.path as p", "import os.path"),
            ("from time import monotonic", "from time import ..."),
            ("import random, json", "import random"),
            ("from uuid import uuid4", "from uuid import ..."),
            ("import socket", "import socket"),
            ("from pathlib import Path", "from pathlib import ..."),
            ("import io", "import io"),
            ("from datetime import datetime\nx = datetime.now()", "call .now()"),
            ("import datetime\nx = datetime.datetime.utcnow()", "call .utcnow()"),
            ("from datetime import date\nx = date.today()", "call .today()"),
            ("with open('f') as f:\n    pass", "call open()"),
        ],
    )
    def test_the_checker_catches_each_kind_of_impurity(self, snippet: str, expected: str) -> None:
        """The check above can fail: each forbidden form is found in a sample."""
        assert impurities(snippet) == [expected]

    def test_the_checker_lets_pure_code_through(self) -> None:
        """Imports like json, hashlib and datetime (without a clock call) are fine."""
        pure = "import json, hashlib\nfrom datetime import datetime, UTC\nx = datetime(2026, 1, 1)"
        assert impurities(pure) == []
