"""The book stores: SQLite and the JSON file, their journal, conflicts and crash safety.

Every test uses real files in ``tmp_path``. The crash tests run a child Python
that stops itself (``os._exit``) before a chosen SQL statement of a commit, or
that the parent kills with SIGKILL while it commits (or that kills itself
with SIGKILL mid-write), and then check that the file holds the book entirely
as it was or entirely as the merge left it, and that the JSON store's next
open leaves no copy of a book behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from school import ROOT, full, guardian, london, mis_policy, pupil, school, staff
from sourcetruth import (
    AdapterError,
    Book,
    ContactData,
    Email,
    GroupDefinition,
    Policy,
    Rule,
    SchemaVersionError,
    SetGroup,
    SetOverride,
    Snapshot,
    SourceDataError,
    Status,
    contact_at,
    contacts_at,
    dumps,
    explain,
    merge,
)
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SCHEMA_VERSION, SqliteStore
from sourcetruth.exceptions import ConflictError
from sourcetruth.journal import Run, input_hash
from sourcetruth.merge import Change
from sourcetruth.protocols import Store
from sourcetruth.serialise import converter
from sourcetruth.testing.synthetic import policy as synthetic_policy
from sourcetruth.testing.synthetic import school as synthetic_school

TESTS = ROOT / "tests"
SRC = ROOT / "src"
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}

MONDAY_AT = london(23, 2)
TUESDAY_AT = london(24, 2)
READ_AHEAD = timedelta(minutes=5)

StoreFactory = Callable[[Path], Store]

STORES = [
    pytest.param(lambda folder: SqliteStore(folder / "book.db"), id="sqlite"),
    pytest.param(lambda folder: JsonStore(folder / "book.json"), id="json"),
]


def monday() -> Snapshot:
    """Monday's MIS, read at 01:55 for the 02:00 sync."""
    return full(MONDAY_AT - READ_AHEAD, school())


def tuesday() -> Snapshot:
    """Tuesday's MIS: three records changed, a family joined, a pupil and a parent left."""
    records = school(
        guardian("G9", "P9", mobile="07700 900999", email="gita@parent.test", given="Gita"),
        guardian("G8", "P8", mobile="07700 900888", email="g8@parent.test", given="Hal"),
        staff("S1", mobile="07700 900202", email="steve@school.test", given="Steve"),
        pupil("P7", "7", "7A", given="Ada"),
        guardian("G7", "P7", mobile="07700 900107", email="g7@parent.test", given="Gus"),
    )
    leavers = {"GOV", "P9b"}
    return full(TUESDAY_AT - READ_AHEAD, [r for r in records if r.key not in leavers])


def run_matches(run: Run, change: Change, report_status: Status, before_seq: int) -> None:
    """Assert that *run* is the journal entry of *change* merged into a book at *before_seq*."""
    digest = input_hash(change)
    assert run.input_hash == digest
    assert run.id == f"{digest[:16]}-{before_seq}"
    assert run.status == report_status.value


def book_bytes(store: Store) -> str:
    """The canonical serialised form of the book *store* holds."""
    return dumps(store.load())


def copy_db(source: Path, target: Path) -> None:
    """Copy an SQLite file with its WAL (or rollback journal), as a crash left them."""
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-journal"):
        beside = source.with_name(source.name + suffix)
        if beside.exists():
            shutil.copyfile(beside, target.with_name(target.name + suffix))


def integrity(path: Path) -> str:
    """SQLite's own check of the file (after it rolled back any hot journal)."""
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def schema_version_of(path: Path) -> tuple[str] | None:
    """The schema_version row of an SQLite book, read without the library."""
    db = sqlite3.connect(path)
    try:
        row: tuple[str] | None = db.execute(
            "SELECT value FROM meta WHERE name='schema_version'"
        ).fetchone()
    finally:
        db.close()
    return row


def row_counts(path: Path) -> dict[str, int]:
    """Rows per table of an SQLite book."""
    db = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not name.startswith("sqlite_")
        ]
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()


@pytest.fixture
def opened() -> Iterator[list[Store]]:
    """Stores a test opened; each is closed when the test ends."""
    stores: list[Store] = []
    yield stores
    for store in stores:
        store.close()


# -- 1. both stores: round trip, journal, repeated input, time travel -----------------


class TestRoundTrip:
    @pytest.mark.parametrize("factory", STORES)
    def test_new_store_is_empty(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store]
    ) -> None:
        """A store on a new file loads an empty book and an empty journal."""
        store = factory(tmp_path)
        opened.append(store)
        assert store.load() == Book()
        assert dumps(store.load()) == dumps(Book())
        assert store.journal() == ()

    @pytest.mark.parametrize("factory", STORES)
    def test_every_apply_is_kept_and_journalled(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """Syncs, an override and a group: after each, a fresh store loads the same bytes."""
        override = SetOverride("mis:G8", "emails", ContactData(emails=(Email("hal@new.test"),)))
        group = SetGroup(
            GroupDefinition(
                "year-9-parents", rule=Rule(year_groups=frozenset({"9"}), guardians_of=True)
            )
        )
        steps: list[tuple[Change, datetime, str, Status]] = [
            (monday(), MONDAY_AT, "nightly", Status.APPLIED),
            (tuesday(), TUESDAY_AT, "nightly", Status.APPLIED),
            (override, london(24, 10), "office", Status.APPLIED),
            (group, london(24, 11), "office", Status.APPLIED),
            (tuesday(), london(24, 12), "nightly", Status.NO_CHANGE),
        ]
        store = factory(tmp_path)
        opened.append(store)
        memory = Book()
        for n, (change, at, by, status) in enumerate(steps, start=1):
            before = store.load()
            assert dumps(before) == dumps(memory)
            result = apply(store, change, policy=policy, at=at, by=by)
            assert result.report.status is status
            assert dumps(result.book) == dumps(
                merge(memory, change, policy=policy, at=at, by=by).book
            )
            fresh = factory(tmp_path)
            opened.append(fresh)
            assert dumps(fresh.load()) == dumps(result.book)
            journal = fresh.journal()
            assert len(journal) == n
            assert journal == store.journal()
            run = journal[-1]
            run_matches(run, change, status, before.seq)
            assert run.at == at
            assert run.by == by
            assert run.report == result.report
            memory = result.book
        # The repeated Tuesday snapshot changed nothing but the journal.
        assert store.load().seq == 4
        assert [r.status for r in store.journal()] == [
            "applied",
            "applied",
            "applied",
            "applied",
            "no-change",
        ]
        assert store.journal()[1].input_hash == store.journal()[4].input_hash

    @pytest.mark.parametrize("factory", STORES)
    def test_same_snapshot_again_is_no_change(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """Applying the same snapshot twice journals a NO_CHANGE run; the book bytes stay."""
        store = factory(tmp_path)
        opened.append(store)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        first = book_bytes(store)
        again = apply(store, monday(), policy=policy, at=london(23, 3), by="nightly")
        assert again.report.status is Status.NO_CHANGE
        fresh = factory(tmp_path)
        opened.append(fresh)
        assert book_bytes(fresh) == first
        runs = fresh.journal()
        assert [r.status for r in runs] == ["applied", "no-change"]
        assert runs[0].input_hash == runs[1].input_hash == input_hash(monday())
        assert runs[1].report == again.report

    @pytest.mark.parametrize("factory", STORES)
    def test_held_sync_is_journalled_and_book_kept(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """A sync the departure guard holds is journalled as held; the book is unchanged."""
        store = factory(tmp_path)
        opened.append(store)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        first = book_bytes(store)
        almost_empty = full(TUESDAY_AT - READ_AHEAD, school()[:1])
        result = apply(store, almost_empty, policy=policy, at=TUESDAY_AT, by="nightly")
        assert result.report.status is Status.HELD
        fresh = factory(tmp_path)
        opened.append(fresh)
        assert book_bytes(fresh) == first
        run = fresh.journal()[-1]
        run_matches(run, almost_empty, Status.HELD, 1)
        assert run.report == result.report
        assert run.report.held is not None

    @pytest.mark.parametrize("factory", STORES)
    def test_time_travel_from_the_loaded_book(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """contact_at, contacts_at and explain at past times agree, loaded or in memory."""
        store = factory(tmp_path)
        opened.append(store)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        override = SetOverride("mis:G8", "emails", ContactData(emails=(Email("hal@new.test"),)))
        memory = apply(store, override, policy=policy, at=london(24, 10), by="office").book
        fresh = factory(tmp_path)
        opened.append(fresh)
        loaded = fresh.load()
        for at in (london(23, 12), london(24, 9), london(24, 10, 30), london(25, 9)):
            assert list(contacts_at(loaded, policy=policy, at=at)) == list(
                contacts_at(memory, policy=policy, at=at)
            )
            for cid in ("mis:G9", "mis:G8", "mis:S1"):
                assert contact_at(loaded, cid, policy=policy, at=at) == contact_at(
                    memory, cid, policy=policy, at=at
                )
            for cid, field in (("mis:G9", "phones"), ("mis:G8", "emails")):
                assert explain(loaded, cid, field, policy=policy, at=at) == explain(
                    memory, cid, field, policy=policy, at=at
                )
        # Monday noon: the old number, and explain names Tuesday's change as the later one.
        why = explain(loaded, "mis:G9", "phones", policy=policy, at=london(23, 12))
        assert why.later is not None
        assert why.later.applied_at == TUESDAY_AT
        assert contact_at(loaded, "mis:GOV", policy=policy, at=london(23, 12)).departed is False
        assert contact_at(loaded, "mis:GOV", policy=policy, at=london(24, 9)).departed is True


# -- 2. conflicts ----------------------------------------------------------------------


class TestConflict:
    @pytest.mark.parametrize("factory", STORES)
    def test_second_commit_of_the_same_book_conflicts(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """Two stores load one book and both merge: the second commit raises ConflictError."""
        setup = factory(tmp_path)
        opened.append(setup)
        apply(setup, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        first, second = factory(tmp_path), factory(tmp_path)
        opened.extend([first, second])
        book_a, book_b = first.load(), second.load()
        sync = tuesday()
        result_a = merge(book_a, sync, policy=policy, at=TUESDAY_AT, by="nightly")
        edit = SetOverride("mis:G9", "emails", ContactData(emails=(Email("gita@new.test"),)))
        result_b = merge(book_b, edit, policy=policy, at=london(24, 3), by="office")
        run_a = Run("a", TUESDAY_AT, "nightly", input_hash(sync), "applied", result_a.report)
        run_b = Run("b", london(24, 3), "office", input_hash(edit), "applied", result_b.report)
        first.commit(book_a, result_a, run_a)
        with pytest.raises(ConflictError):
            second.commit(book_b, result_b, run_b)
        check = factory(tmp_path)
        opened.append(check)
        assert book_bytes(check) == dumps(result_a.book)
        assert [r.id for r in check.journal()] == [check.journal()[0].id, "a"]

    @pytest.mark.parametrize("factory", STORES)
    def test_apply_after_a_conflict_succeeds(
        self, factory: StoreFactory, tmp_path: Path, opened: list[Store], policy: Policy
    ) -> None:
        """The loser of a conflict loads again, merges again and commits."""
        setup = factory(tmp_path)
        opened.append(setup)
        apply(setup, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        stale = setup.load()
        apply(factory(tmp_path), tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        edit = SetOverride("mis:G9", "emails", ContactData(emails=(Email("gita@new.test"),)))
        late = merge(stale, edit, policy=policy, at=london(24, 3), by="office")
        run = Run("late", london(24, 3), "office", input_hash(edit), "applied", late.report)
        with pytest.raises(ConflictError):
            setup.commit(stale, late, run)
        result = apply(setup, edit, policy=policy, at=london(24, 3), by="office")
        assert result.report.status is Status.APPLIED
        assert book_bytes(setup) == dumps(result.book)
        assert [r.status for r in setup.journal()] == ["applied"] * 3


# -- 3 and 4. SQLite crash safety ------------------------------------------------------

CRASH_CHILD = """
import os, sys
from datetime import datetime
from pathlib import Path
from school import mis_policy
from sourcetruth import Snapshot, loads
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.adapters.stores.base import apply

path, k, change_file, at = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
change = loads(Path(change_file).read_text(encoding="utf-8"), Snapshot)
store = SqliteStore(path, statement_hook=lambda n: os._exit(9) if n == k else None)
apply(store, change, policy=mis_policy(), at=datetime.fromisoformat(at), by="nightly")
store.close()
"""


class CrashRun:
    """The files of a crash experiment: the books before and after, and one file per K."""

    def __init__(self, folder: Path) -> None:
        policy = mis_policy()
        self.folder = folder
        self.base = folder / "monday.db"
        store = SqliteStore(self.base)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        self.monday_book = store.load()
        store.close()
        self.monday = dumps(self.monday_book)
        self.change = tuesday()
        self.hash = input_hash(self.change)
        # Measure how many statements the Tuesday commit executes.
        counted: list[int] = []
        copy_db(self.base, folder / "counted.db")
        store = SqliteStore(folder / "counted.db", statement_hook=counted.append)
        self.uninterrupted = apply(store, self.change, policy=policy, at=TUESDAY_AT, by="nightly")
        store.close()
        self.counted_path = folder / "counted.db"
        self.statements = len(counted)
        assert counted == list(range(1, self.statements + 1))
        self.tuesday = dumps(self.uninterrupted.book)
        change_file = folder / "tuesday.json"
        change_file.write_text(dumps(self.change), encoding="utf-8")
        # One child per K, all at once: K from 1 to the last statement, and one beyond.
        self.ks = list(range(1, self.statements + 2))
        self.paths: dict[int, Path] = {}
        children: dict[int, subprocess.Popen[bytes]] = {}
        for k in self.ks:
            path = folder / f"crash-{k}.db"
            copy_db(self.base, path)
            self.paths[k] = path
            args = [str(path), str(k), str(change_file), TUESDAY_AT.isoformat()]
            children[k] = subprocess.Popen(
                [sys.executable, "-c", CRASH_CHILD, *args],
                env=CHILD_ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        self.exit_codes: dict[int, int] = {}
        self.errors: dict[int, str] = {}
        for k, child in children.items():
            _out, err = child.communicate(timeout=60)
            self.exit_codes[k] = child.returncode
            self.errors[k] = err.decode(errors="replace")


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> CrashRun:
    """The Tuesday commit, crashed before each of its statements in turn."""
    return CrashRun(tmp_path_factory.mktemp("crashes"))


class TestSqliteCrashSafety:
    def test_statement_count_is_measured(self, crashes: CrashRun) -> None:
        """The Tuesday commit writes several rows: enough statements to crash between."""
        assert crashes.uninterrupted.report.status is Status.APPLIED
        assert len(crashes.uninterrupted.report.departed) == 2
        assert len(crashes.uninterrupted.report.created) == 2
        assert 8 <= crashes.statements <= 40
        assert crashes.ks[0] == 1
        assert crashes.ks[-2] == crashes.statements  # the run's row, just before COMMIT
        assert crashes.ks[-1] == crashes.statements + 1  # never reached: the commit completes

    def test_children_stopped_where_told(self, crashes: CrashRun) -> None:
        """Every child died at its statement (exit 9), but the one told to stop beyond the end."""
        for k in crashes.ks:
            expected = 0 if k > crashes.statements else 9
            assert crashes.exit_codes[k] == expected, (k, crashes.errors[k])

    def test_book_is_entirely_old_or_entirely_new(self, crashes: CrashRun) -> None:
        """After a crash before any statement K the file is sound and holds Monday or Tuesday."""
        for k in crashes.ks:
            path = crashes.paths[k]
            assert integrity(path) == "ok", k
            store = SqliteStore(path)
            try:
                loaded = dumps(store.load())
                journal = store.journal()
            finally:
                store.close()
            assert loaded in (crashes.monday, crashes.tuesday), k
            has_tuesday_run = any(r.input_hash == crashes.hash for r in journal)
            assert has_tuesday_run == (loaded == crashes.tuesday), k
            # A crash before COMMIT can only leave Monday: the transaction never ended.
            assert loaded == (crashes.tuesday if k > crashes.statements else crashes.monday), k
            assert len(journal) == (2 if loaded == crashes.tuesday else 1), k

    def test_rerun_after_a_crash_converges(self, crashes: CrashRun, tmp_path: Path) -> None:
        """Applying the Tuesday snapshot again after any crash gives the uninterrupted book."""
        policy = mis_policy()
        expected = crashes.uninterrupted.book
        later = london(24, 9)
        expected_contacts = list(contacts_at(expected, policy=policy, at=later))
        expected_rows = row_counts(crashes.counted_path)
        for k in crashes.ks:
            path = tmp_path / f"rerun-{k}.db"
            copy_db(crashes.paths[k], path)
            store = SqliteStore(path)
            try:
                result = apply(store, crashes.change, policy=policy, at=TUESDAY_AT, by="nightly")
                book = store.load()
                journal = store.journal()
            finally:
                store.close()
            crashed_after_commit = k > crashes.statements
            assert result.report.status is (
                Status.NO_CHANGE if crashed_after_commit else Status.APPLIED
            ), k
            assert book.records == expected.records, k
            assert dumps(book) == crashes.tuesday, k
            got = list(contacts_at(book, policy=policy, at=later))
            assert got == expected_contacts, k
            ids = [c.id for c in got]
            assert len(ids) == len(set(ids)), k
            rows = row_counts(path)
            # The same rows as the uninterrupted file, but one extra run when it was re-run
            # after the commit had completed.
            extra_runs = 1 if crashed_after_commit else 0
            assert rows == {**expected_rows, "runs": expected_rows["runs"] + extra_runs}, k
            assert [r.input_hash for r in journal].count(crashes.hash) == 1 + extra_runs, k
            assert next(r.status for r in journal if r.input_hash == crashes.hash) == "applied"

    def test_unchanged_merge_writes_only_the_journal(self, tmp_path: Path) -> None:
        """A NO_CHANGE commit executes exactly one statement: the run's row."""
        policy = mis_policy()
        store = SqliteStore(tmp_path / "book.db")
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        store.close()
        counted: list[int] = []
        store = SqliteStore(tmp_path / "book.db", statement_hook=counted.append)
        try:
            result = apply(store, monday(), policy=policy, at=london(23, 3), by="nightly")
        finally:
            store.close()
        assert result.report.status is Status.NO_CHANGE
        assert counted == [1]


KILL_CHILD = """
import sys
from datetime import timedelta
from school import full, guardian, london, mis_policy, school
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.adapters.stores.base import apply

store = {"sqlite": SqliteStore, "json": JsonStore}[sys.argv[2]](sys.argv[1])
policy = mis_policy()
for i in range(1, 100000):
    at = london(24, 2) + timedelta(minutes=i)
    records = school(guardian("G9", "P9", mobile=f"07700 9{i:05d}", given="Gita"))
    apply(store, full(at - timedelta(minutes=1), records), policy=policy, at=at, by="loop")
    if i == 1:
        print("committing", flush=True)
"""


def loop_change(i: int) -> tuple[Snapshot, datetime]:
    """The *i*-th sync of KILL_CHILD's loop, and its time."""
    at = london(24, 2) + timedelta(minutes=i)
    records = school(guardian("G9", "P9", mobile=f"07700 9{i:05d}", given="Gita"))
    return full(at - timedelta(minutes=1), records), at


def kill_while_committing(path: Path, kind: str, rng: random.Random) -> None:
    """Run KILL_CHILD's loop on the *kind* store at *path*; SIGKILL it at a random moment."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD, str(path), kind],
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == b"committing\n", child.stderr.read() if child.stderr else b""
    time.sleep(rng.uniform(0.01, 0.25))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


def replayed(seq: int, policy: Policy) -> Book:
    """The book KILL_CHILD's loop holds at *seq*: Monday, then the loop's syncs, in memory."""
    book = merge(Book(), monday(), policy=policy, at=MONDAY_AT, by="nightly").book
    for i in range(1, seq):
        change, at = loop_change(i)
        book = merge(book, change, policy=policy, at=at, by="loop").book
    return book


class TestSqliteKilled:
    def test_sigkill_while_committing_leaves_a_whole_book(self, tmp_path: Path) -> None:
        """SIGKILL at random moments of a commit loop: a sound file holding one whole book."""
        policy = mis_policy()
        rng = random.Random(20261124)
        for attempt in range(3):
            path = tmp_path / f"killed-{attempt}.db"
            store = SqliteStore(path)
            apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
            store.close()
            kill_while_committing(path, "sqlite", rng)
            assert integrity(path) == "ok"
            store = SqliteStore(path)
            try:
                loaded = store.load()
                journal = store.journal()
            finally:
                store.close()
            assert loaded.seq >= 2  # Monday and at least the loop's first sync
            # Replay the loop in memory up to the book's seq: the bytes must match exactly.
            assert dumps(loaded) == dumps(replayed(loaded.seq, policy))
            assert len(journal) == loaded.seq
            last_change, _at = loop_change(loaded.seq - 1)
            assert journal[-1].input_hash == input_hash(last_change)


#: A child that commits Tuesday's sync and kills itself (SIGKILL) once the new
#: book is whole in its temporary file, before the rename: the worst moment.
JSON_KILLED_AT_FSYNC = """
import os, signal, sys
from pathlib import Path
from school import mis_policy
from sourcetruth import Snapshot, loads
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.base import apply

path, change_file, at = sys.argv[1], sys.argv[2], sys.argv[3]
change = loads(Path(change_file).read_text(encoding="utf-8"), Snapshot)
store = JsonStore(path)
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
from datetime import datetime
apply(store, change, policy=mis_policy(), at=datetime.fromisoformat(at), by="nightly")
"""


def leftovers(folder: Path) -> list[str]:
    """The atomic writer's temporaries in *folder*: what a killed write leaves behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class TestJsonKilled:
    def kill_mid_write(self, path: Path, tmp_path: Path) -> None:
        """Run JSON_KILLED_AT_FSYNC on the book at *path*: killed with Tuesday in its temporary."""
        change_file = tmp_path / "tuesday.json"
        change_file.write_text(dumps(tuesday()), encoding="utf-8")
        child = subprocess.run(
            [sys.executable, "-c", JSON_KILLED_AT_FSYNC, str(path), str(change_file),
             TUESDAY_AT.isoformat()],
            env=CHILD_ENV,
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert child.returncode == -signal.SIGKILL, child.stderr

    def test_a_killed_commits_temporary_is_removed_when_the_store_opens(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """F5: killed after writing its temporary, before the rename: the next open removes it."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        old = path.read_bytes()
        self.kill_mid_write(path, tmp_path)
        (left,) = leftovers(tmp_path)  # a whole copy of the new book, so the check can fail
        assert left.startswith(".book.json.")
        assert b"Gita" in (tmp_path / left).read_bytes()
        store = JsonStore(path)
        assert leftovers(tmp_path) == []
        assert path.read_bytes() == old
        assert dumps(store.load()) == dumps(JsonStore(path).load())

    def test_a_commit_removes_what_an_earlier_kill_left(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """F5: a store opened before the kill removes the leftover at its next commit."""
        path = tmp_path / "book.json"
        store = JsonStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        self.kill_mid_write(path, tmp_path)
        assert len(leftovers(tmp_path)) == 1
        apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        assert leftovers(tmp_path) == []

    def test_a_live_writers_temporary_is_never_taken(self, tmp_path: Path, policy: Policy) -> None:
        """F5: while a writer holds the folder (mid-write) an open removes nothing; then it does."""
        import fcntl

        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        self.kill_mid_write(path, tmp_path)
        writing = os.open(tmp_path, os.O_RDONLY)
        try:
            fcntl.flock(writing, fcntl.LOCK_SH)  # what write_atomic holds while it writes
            JsonStore(path)
            assert len(leftovers(tmp_path)) == 1
        finally:
            os.close(writing)
        JsonStore(path)
        assert leftovers(tmp_path) == []

    def test_others_files_are_left_alone(self, tmp_path: Path, policy: Policy) -> None:
        """F5: only the store's own leftovers go: another file's, a folder or a link stay."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        (tmp_path / ".other.json.abcd1234.tmp").write_text("not the store's", encoding="utf-8")
        (tmp_path / ".book.json.abcd1234.tmp").mkdir()
        (tmp_path / ".book.json.efgh5678.tmp").symlink_to(tmp_path / "book.json")
        (tmp_path / "book.json.tmp").write_text("not the writer's name", encoding="utf-8")
        JsonStore(path)
        assert leftovers(tmp_path) == sorted(
            [".other.json.abcd1234.tmp", ".book.json.abcd1234.tmp", ".book.json.efgh5678.tmp",
             "book.json.tmp"]
        )  # fmt: skip

    def test_sigkill_while_committing_leaves_a_whole_book_and_no_copy(self, tmp_path: Path) -> None:
        """F5: SIGKILL at random moments of a commit loop: one whole book, no copy after opening."""
        policy = mis_policy()
        rng = random.Random(20261204)
        for attempt in range(3):
            folder = tmp_path / f"killed-{attempt}"
            folder.mkdir()
            path = folder / "book.json"
            apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
            kill_while_committing(path, "json", rng)
            store = JsonStore(path)
            assert leftovers(folder) == []
            loaded = store.load()
            assert dumps(loaded) == dumps(replayed(loaded.seq, policy))
            assert len(store.journal()) == loaded.seq


# -- 5. schema versions and unreadable files ------------------------------------------


class TestVersionsAndDamage:
    def test_sqlite_newer_schema_is_refused(self, tmp_path: Path, policy: Policy) -> None:
        """An SQLite book whose schema_version is newer is refused, naming the file."""
        path = tmp_path / "newer.db"
        store = SqliteStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        store.close()
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE meta SET value='999' WHERE name='schema_version'")
        db.close()
        with pytest.raises(SchemaVersionError) as caught:
            SqliteStore(path)
        assert caught.value.file == "newer.db"
        assert "newer.db" in str(caught.value)
        assert "999" in str(caught.value)

    def test_sqlite_current_schema_is_recorded(self, tmp_path: Path) -> None:
        """A new SQLite book records the schema version this library writes."""
        path = tmp_path / "new.db"
        SqliteStore(path).close()
        assert schema_version_of(path) == (str(SCHEMA_VERSION),)

    def test_sqlite_schema_1_is_upgraded_and_its_journal_reads_the_same(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """A file of schema 1 (changes inline in each run) opens, upgrades, reads the same."""
        path = tmp_path / "old.db"
        store = SqliteStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        journal = store.journal()
        store.close()
        assert journal[0].report.changes
        assert journal[1].report.changes
        # Write it back as schema 1 did: every run whole in its row, no change rows.
        db = sqlite3.connect(path)
        with db:
            for n, run in zip((1, 2), journal, strict=True):
                text = json.dumps(
                    converter.unstructure(run),
                    sort_keys=True,
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                db.execute("UPDATE runs SET data=? WHERE n=?", (text, n))
            db.execute("DROP TABLE run_changes")
            db.execute("UPDATE meta SET value='1' WHERE name='schema_version'")
        db.close()
        store = SqliteStore(path)
        try:
            assert store.journal() == journal
            apply(store, tuesday(), policy=policy, at=london(24, 3), by="nightly")
            assert store.journal()[:2] == journal
        finally:
            store.close()
        assert schema_version_of(path) == (str(SCHEMA_VERSION),)

    def test_sqlite_journal_values_stay_small_however_big_the_sync(self, tmp_path: Path) -> None:
        """A run's field changes are kept a row per contact, never as one value.

        SQLite refuses a value over 1,000,000,000 bytes: an initial sync of a
        million contacts holds about five million field changes, which as one
        report did not fit.
        """
        contacts = 2_000
        big = synthetic_school(contacts, seed=3)
        at = MONDAY_AT
        store = SqliteStore(tmp_path / "big.db")
        try:
            result = apply(store, big.snapshot(at), policy=synthetic_policy(), at=at, by="nightly")
            assert store.journal()[0].report == result.report
        finally:
            store.close()
        db = sqlite3.connect(tmp_path / "big.db")
        try:
            rows = db.execute("SELECT count(*), max(length(data)) FROM run_changes").fetchone()
            whole = db.execute("SELECT length(data) FROM runs").fetchone()[0]
        finally:
            db.close()
        assert rows[0] == len({c.contact_id for c in result.report.changes}) == contacts
        assert rows[1] < 5_000  # one contact's changes
        # The run's own row keeps the ids created, not their values.
        assert whole < contacts * 100

    def test_json_book_of_a_newer_format_is_refused(self, tmp_path: Path, policy: Policy) -> None:
        """A JSON store holding a book written by a newer format version raises on load."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        document = json.loads(path.read_text(encoding="utf-8"))
        envelope = json.loads(document["book"])
        envelope["version"] = 999
        document["book"] = json.dumps(envelope)
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(SchemaVersionError):
            JsonStore(path).load()

    def test_json_document_of_a_newer_version_is_refused(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """A JSON store document whose top-level version is newer is refused on load."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        document = json.loads(path.read_text(encoding="utf-8"))
        document["version"] = 999
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(SchemaVersionError):
            JsonStore(path).load()

    @pytest.mark.parametrize("text", ["{not json", "[]", '{"book": null}', ""])
    def test_corrupt_json_file(self, tmp_path: Path, text: str) -> None:
        """A JSON store file that is not a book document raises SourceDataError naming it."""
        path = tmp_path / "broken.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(SourceDataError) as caught:
            JsonStore(path).load()
        assert caught.value.file == "broken.json"

    def test_non_sqlite_file_is_an_adapter_error(self, tmp_path: Path) -> None:
        """A file that is not an SQLite database cannot be opened as a store."""
        path = tmp_path / "book.db"
        path.write_bytes(b"this is plainly not an SQLite database\n" * 200)
        with pytest.raises(AdapterError) as caught:
            SqliteStore(path)
        assert "book.db" in str(caught.value)


# -- 6. the JSON store's atomic replace ------------------------------------------------

FSIZE_CHILD = """
import resource, signal, sys
from school import london, mis_policy
from sourcetruth import AdapterError, Snapshot, loads
from pathlib import Path
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.base import apply

change = loads(Path(sys.argv[2]).read_text(encoding="utf-8"), Snapshot)
store = JsonStore(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
try:
    apply(store, change, policy=mis_policy(), at=london(24, 2), by="nightly")
except AdapterError as error:
    print("AdapterError", error.retryable)
else:
    print("committed")
"""


class TestSqliteReadersDoNotWait:
    """WAL: a reader sees the last commit while a writer works, and opening writes nothing."""

    @staticmethod
    def synced(tmp_path: Path, policy: Policy) -> Path:
        path = tmp_path / "book.sqlite"
        store = SqliteStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        store.close()
        return path

    def test_a_reader_opens_and_loads_while_a_writer_holds_the_file(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """With another connection inside an exclusive write, a store opens and loads at once."""
        path = self.synced(tmp_path, policy)
        writer = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("INSERT OR REPLACE INTO meta VALUES ('seq', '99')")
            other = sqlite3.connect(path, isolation_level=None, timeout=0)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the writer really holds the file
            other.close()
            reader = SqliteStore(path)
            try:
                assert reader.load().seq == 1  # the last commit, not the write under way
                assert len(reader.journal()) == 1
            finally:
                reader.close()
        finally:
            writer.execute("ROLLBACK")
            writer.close()

    def test_opening_a_current_book_writes_nothing(self, tmp_path: Path, policy: Policy) -> None:
        """Open, load and close a book of this schema: the file's bytes are as they were."""
        path = self.synced(tmp_path, policy)
        before = path.read_bytes()
        store = SqliteStore(path)
        store.load()
        store.journal()
        store.close()
        assert path.read_bytes() == before

    def test_a_file_in_the_old_journal_mode_is_moved_to_wal(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """A book written with the rollback journal is put in WAL mode when next opened."""
        path = self.synced(tmp_path, policy)
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=DELETE")
        db.close()
        SqliteStore(path).close()
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()


class TestJsonAtomicReplace:
    def test_no_partial_file_remains(self, tmp_path: Path, policy: Policy) -> None:
        """After commits, the folder holds the book file and its lock file alone."""
        store = JsonStore(tmp_path / "book.json")
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["book.json", "book.json.lock"]

    def test_read_only_folder(self, tmp_path: Path, policy: Policy) -> None:
        """When the folder cannot be written, commit raises AdapterError and the old file stays."""
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions")
        path = tmp_path / "book.json"
        store = JsonStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        old = path.read_bytes()
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(AdapterError) as caught:
                apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        finally:
            tmp_path.chmod(0o755)
        assert caught.value.retryable
        assert path.read_bytes() == old
        assert sorted(p.name for p in tmp_path.iterdir()) == ["book.json", "book.json.lock"]

    def test_failed_write_keeps_the_old_file(self, tmp_path: Path, policy: Policy) -> None:
        """A write that fails part way (file size limit) raises AdapterError; the old file stays."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        old = path.read_bytes()
        change_file = tmp_path / "tuesday.json"
        change_file.write_text(dumps(tuesday()), encoding="utf-8")
        child = subprocess.run(
            [sys.executable, "-c", FSIZE_CHILD, str(path), str(change_file)],
            env=CHILD_ENV,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout == b"AdapterError True\n"
        assert path.read_bytes() == old
        assert not list(tmp_path.glob("*.partial"))
        assert not list(tmp_path.glob(".book.json.*.tmp"))  # the atomic writer's temporary name

    def test_a_stray_partial_is_not_in_the_way(self, tmp_path: Path, policy: Policy) -> None:
        """A left-over ``.partial`` (even a folder) does not stop a commit: each has its own."""
        path = tmp_path / "book.json"
        store = JsonStore(path)
        apply(store, monday(), policy=policy, at=MONDAY_AT, by="nightly")
        (tmp_path / "book.json.partial").mkdir()
        result = apply(store, tuesday(), policy=policy, at=TUESDAY_AT, by="nightly")
        assert dumps(JsonStore(path).load()) == dumps(result.book)


# -- 7. the protocol and repr -----------------------------------------------------------


class TestProtocol:
    def test_stores_satisfy_the_protocol(self, tmp_path: Path) -> None:
        """Both stores are instances of the runtime-checkable Store protocol."""
        sqlite_store = SqliteStore(tmp_path / "book.db")
        try:
            assert isinstance(sqlite_store, Store)
        finally:
            sqlite_store.close()
        assert isinstance(JsonStore(tmp_path / "book.json"), Store)
        assert not isinstance(object(), Store)

    def test_repr_shows_the_path_only(self, tmp_path: Path) -> None:
        """A store's repr names its class and path, and nothing else (no hook, no data)."""
        db_path = tmp_path / "book.db"
        sqlite_store = SqliteStore(db_path, statement_hook=lambda n: None)
        try:
            assert repr(sqlite_store) == f"SqliteStore({str(db_path)!r})"
        finally:
            sqlite_store.close()
        json_path = tmp_path / "book.json"
        assert repr(JsonStore(json_path)) == f"JsonStore({str(json_path)!r})"


WRITER = """
import sys
from school import london, mis_policy
from sourcetruth import GroupDefinition, SetGroup
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.base import apply
from sourcetruth.exceptions import ConflictError

store, name = JsonStore(sys.argv[1]), sys.argv[2]
done = 0
for n in range(15):
    group = SetGroup(GroupDefinition(f"{name}-{n}", members=frozenset({"mis:G9"})))
    for attempt in range(200):
        try:
            apply(store, group, policy=mis_policy(), at=london(24, 10), by=name)
            done += 1
            break
        except ConflictError:
            continue
print(done)
"""


class TestJsonConcurrency:
    def test_writers_in_parallel_never_corrupt_or_lose_a_commit(
        self, tmp_path: Path, policy: Policy
    ) -> None:
        """Three processes committing at once: every commit lands, the file always parses."""
        path = tmp_path / "book.json"
        apply(JsonStore(path), monday(), policy=policy, at=MONDAY_AT, by="nightly")
        children = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), name],
                env=CHILD_ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for name in ("a", "b", "c")
        ]
        outputs = [child.communicate(timeout=120) for child in children]
        assert [out.strip() for out, _ in outputs] == [b"15", b"15", b"15"], outputs
        book = JsonStore(path).load()
        assert len(book.groups) == 45
        assert len(JsonStore(path).journal()) == 46
