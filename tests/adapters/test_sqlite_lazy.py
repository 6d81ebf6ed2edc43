"""A book loaded from SQLite reads only the rows it is asked for, all from one snapshot.

Rows are counted where every lazy read structures one (``structure_row``),
never timed. The upgrade test opens a copy of a book written by the library
of schema 2 (``tests/data/schema2.sqlite``, made by ``make_schema2_book.py``
beside it) and checks every answer against what that library gave.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given

from school import ROOT
from sourcetruth import (
    FIELDS,
    Book,
    ContactData,
    Erase,
    OverrideLifetime,
    Phone,
    Policy,
    RefreshView,
    SetOverride,
    Source,
    SourceKind,
    Status,
    contact_at,
    dumps,
    explain,
    merge,
)
from sourcetruth._digest import name_key, record_digest
from sourcetruth.adapters.stores import _rows
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SCHEMA_VERSION, SqliteStore
from sourcetruth.exceptions import ConflictError
from sourcetruth.journal import run_of
from sourcetruth.model import RecordState
from sourcetruth.testing import strategies as sts
from sourcetruth.testing.synthetic import policy as synthetic_policy
from sourcetruth.testing.synthetic import school as synthetic_school
from sourcetruth.view import _history_only, build_view, view_basis

DATA = ROOT / "tests" / "data"
AT = datetime.fromisoformat("2026-11-23T02:00:00+00:00")
POLICY = synthetic_policy()


@pytest.fixture
def structured(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The kinds of the rows a lazy book structures, one entry per row, as the test runs."""
    seen: list[object] = []
    real = _rows.structure_row

    def counting(text: str, kind: object) -> object:
        seen.append(kind)
        return real(text, kind)

    monkeypatch.setattr(_rows, "structure_row", counting)
    return seen


def book_of(path: Path, contacts: int) -> list[str]:
    """A synced book of *contacts* MIS records at *path*; its contact ids, sorted."""
    store = SqliteStore(path)
    try:
        snapshot = synthetic_school(contacts, seed=5).snapshot(AT - timedelta(minutes=5))
        result = apply(store, snapshot, policy=POLICY, at=AT, by="nightly")
        return sorted(result.report.created)
    finally:
        store.close()


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list[str]]]:
    """Books of 60 and 2,000 contacts, made once: copy one before changing it."""
    folder = tmp_path_factory.mktemp("books")
    return {n: (folder / f"{n}.db", book_of(folder / f"{n}.db", n)) for n in (60, 2_000)}


def copied(books: dict[int, tuple[Path, list[str]]], n: int, tmp_path: Path) -> Path:
    """A copy of the book of *n* contacts in *tmp_path*."""
    target = tmp_path / f"{n}.db"
    shutil.copyfile(books[n][0], target)
    return target


@pytest.fixture
def opened() -> Iterator[list[SqliteStore]]:
    """Stores a test opened; each is closed when the test ends."""
    stores: list[SqliteStore] = []
    yield stores
    for store in stores:
        store.close()


class TestReadsOnlyWhatIsAsked:
    @pytest.mark.parametrize("n", [60, 2_000])
    def test_showing_one_contact_structures_a_few_rows(
        self,
        n: int,
        books: dict[int, tuple[Path, list[str]]],
        structured: list[object],
        opened: list[SqliteStore],
    ) -> None:
        """show and explain of one contact structure the same handful of rows at 60 and 2,000."""
        store = SqliteStore(books[n][0])
        opened.append(store)
        book = store.load()
        assert structured == []  # loading reads no record, contact or override
        cid = books[n][1][len(books[n][1]) // 2]
        contact = contact_at(book, cid, policy=POLICY, at=AT)
        for field in FIELDS:
            explain(book, cid, field, policy=POLICY, at=AT)
        assert contact.id == cid
        assert len(structured) <= 4, structured  # its contact and its record, whatever n

    def test_len_and_keys_read_no_value(
        self, books: dict[int, tuple[Path, list[str]]], structured: list[object]
    ) -> None:
        """len counts and iteration reads keys: nothing is structured, and keys come sorted."""
        store = SqliteStore(books[2_000][0])
        try:
            book = store.load()
            assert len(book.contacts) == 2_000
            assert list(book.contacts) == books[2_000][1]
            assert len(book.records["mis"]) == 2_000
        finally:
            store.close()
        assert structured == []

    def test_an_override_set_and_committed_structures_a_few_rows(
        self,
        books: dict[int, tuple[Path, list[str]]],
        structured: list[object],
        tmp_path: Path,
    ) -> None:
        """merge(SetOverride) + commit on a lazy book of 2,000 reads and writes a few rows."""
        path = copied(books, 2_000, tmp_path)
        cid = next(c for c in books[2_000][1] if c.startswith("mis:"))
        statements: list[int] = []
        store = SqliteStore(path, statement_hook=statements.append)
        try:
            before = store.load()
            at = AT + timedelta(hours=8)
            change = SetOverride(cid, "given_name", ContactData(given_name="Edited"))
            result = merge(before, change, policy=POLICY, at=at, by="office")
            assert result.report.status is Status.APPLIED
            store.commit(before, result, run_of(before, (change,), result.report, at=at, by="o"))
            assert len(structured) <= 8, structured
            assert len(statements) <= 10, statements  # override, view row and links, meta, run
            again = SqliteStore(path)
            try:
                shown = contact_at(again.load(), cid, policy=POLICY, at=at)
            finally:
                again.close()
        finally:
            store.close()
        assert shown.data.given_name == "Edited"

    def test_an_edit_counts_no_table(
        self,
        books: dict[int, tuple[Path, list[str]]],
        monkeypatch: pytest.MonkeyPatch,
        opened: list[SqliteStore],
    ) -> None:
        """merge(SetOverride) on a lazy book counts no table's rows: a count grows with the book.

        Asking whether the view is empty once counted all of it (a scan of a
        million rows for one edit); one row answers that. Ending the
        overrides that ran out once read every override.
        """
        counted: list[str] = []
        real = _rows.Table.__len__

        def counting(table: _rows.Table[object]) -> int:
            counted.append(table._count)
            return real(table)

        monkeypatch.setattr(_rows.Table, "__len__", counting)
        store = SqliteStore(books[2_000][0])
        opened.append(store)
        book = store.load()
        cid = next(c for c in books[2_000][1] if c.startswith("mis:"))
        change = SetOverride(cid, "given_name", ContactData(given_name="Edited"))
        result = merge(book, change, policy=POLICY, at=AT + timedelta(hours=8), by="office")
        assert result.report.status is Status.APPLIED
        assert counted == []
        assert book.view
        assert book.contacts
        assert book.records["mis"]
        assert counted == []

    def test_an_edit_reads_only_the_overrides_that_may_run_out(
        self,
        books: dict[int, tuple[Path, list[str]]],
        structured: list[object],
        tmp_path: Path,
    ) -> None:
        """An edit reads no override "until the next sync"; one with "until" it reads, and ends.

        (Most edits last until the next sync: reading them all made every merge
        cost the number of edits in the book.)
        """
        path = copied(books, 2_000, tmp_path)
        ids = [c for c in books[2_000][1] if c.startswith("mis:")]
        until = AT + timedelta(days=2)
        edits = [
            SetOverride(cid, "given_name", ContactData(given_name=f"Kept{i}"))
            for i, cid in enumerate(ids[:30])
        ]
        edits.append(
            SetOverride(
                ids[30],
                "given_name",
                ContactData(given_name="Brief"),
                lifetime=OverrideLifetime.UNTIL,
                until=until,
            )
        )
        store = SqliteStore(path)
        try:
            for i, edit in enumerate(edits):
                apply(store, edit, policy=POLICY, at=AT + timedelta(hours=1, seconds=i), by="o")
        finally:
            store.close()
        store = SqliteStore(path)
        try:
            book = store.load()
            structured.clear()
            later = until + timedelta(hours=1)
            edit = SetOverride(ids[31], "family_name", ContactData(family_name="Later"))
            result = merge(book, edit, policy=POLICY, at=later, by="office")
        finally:
            store.close()
        assert [o.override.contact_id for o in result.report.overrides_ended] == [ids[30]]
        read = [kind for kind in structured if "Override" in str(kind)]
        assert len(read) <= 2, read  # the one with until, and the edited contact's (none)
        ended = result.book.ended_overrides[ids[30]]
        assert [e.override.field for e in ended] == ["given_name"]
        assert result.book.overrides[ids[0]][0].value.given_name == "Kept0"


class TestOneSnapshot:
    def test_a_loaded_book_keeps_its_commit_while_another_store_commits(
        self, books: dict[int, tuple[Path, list[str]]], tmp_path: Path
    ) -> None:
        """Another store's commit is not seen by a book loaded before it, key read or not."""
        path = copied(books, 60, tmp_path)
        cid = books[60][1][0]
        reader = SqliteStore(path)
        writer = SqliteStore(path)
        try:
            old = reader.load()
            at = AT + timedelta(hours=8)
            change = SetOverride(cid, "given_name", ContactData(given_name="Later"))
            apply(writer, change, policy=POLICY, at=at, by="office")
            # Nothing of cid was read before the commit: the old values all the same.
            assert cid not in old.overrides
            assert contact_at(old, cid, policy=POLICY, at=at).data.given_name != "Later"
            assert old.seq == 1
            fresh = reader.load()
            assert contact_at(fresh, cid, policy=POLICY, at=at).data.given_name == "Later"
        finally:
            reader.close()
            writer.close()

    def test_after_a_commit_the_books_before_and_after_answer_as_they_did(
        self, books: dict[int, tuple[Path, list[str]]], tmp_path: Path
    ) -> None:
        """The committed book, the result and a dry run from the same load stay right."""
        path = copied(books, 60, tmp_path)
        ids = books[60][1]
        store = SqliteStore(path)
        try:
            before = store.load()
            at = AT + timedelta(hours=8)
            edit = SetOverride(ids[0], "given_name", ContactData(given_name="Edited"))
            other = SetOverride(ids[1], "given_name", ContactData(given_name="Dry"))
            dry = merge(before, other, policy=POLICY, at=at, by="office").book
            result = apply_to(store, before, edit, at)
            fresh = store.load()
            assert dumps(result.book) == dumps(fresh)
            assert contact_at(before, ids[0], policy=POLICY, at=at).data.given_name != "Edited"
            assert ids[0] not in before.overrides
            # Its keys too: the override the commit added is not among them.
            assert list(before.overrides) == []
            assert len(before.overrides) == 0
            assert list(result.book.overrides) == [ids[0]]
            assert contact_at(dry, ids[1], policy=POLICY, at=at).data.given_name == "Dry"
            assert contact_at(dry, ids[0], policy=POLICY, at=at).data.given_name != "Edited"
            # The next merge and commit go on from the result, as a nightly loop does.
            again = SetOverride(ids[2], "given_name", ContactData(given_name="Next"))
            later = apply_to(store, result.book, again, at + timedelta(minutes=1))
            assert dumps(later.book) == dumps(store.load())
        finally:
            store.close()


def apply_to(store: SqliteStore, before: Book, change: SetOverride, at: datetime) -> object:
    """Merge *change* into *before* and commit it to *store*; the result."""
    result = merge(before, change, policy=POLICY, at=at, by="office")
    store.commit(before, result, run_of(before, (change,), result.report, at=at, by="office"))
    return result


class TestClosing:
    def test_a_book_outlives_its_store(self, books: dict[int, tuple[Path, list[str]]]) -> None:
        """A book read after its store closed still answers (a book is a value)."""
        store = SqliteStore(books[60][0])
        book = store.load()
        store.close()
        assert contact_at(book, books[60][1][0], policy=POLICY, at=AT).id == books[60][1][0]

    def test_a_dropped_book_lets_go_of_its_connection(
        self, books: dict[int, tuple[Path, list[str]]]
    ) -> None:
        """Many loads hold no connection once their books are dropped."""
        store = SqliteStore(books[60][0])
        try:
            for _ in range(50):
                contact_at(store.load(), books[60][1][0], policy=POLICY, at=AT)
            assert len(store._snapshots) == 0
        finally:
            store.close()

    def test_the_last_connection_to_close_empties_the_wal(self, tmp_path: Path) -> None:
        """A book that outlives its store leaves no write-ahead log once it is dropped."""
        path = tmp_path / "book.db"
        book_of(path, 20)
        store = SqliteStore(path)
        book = store.load()
        store.close()
        assert len(book.contacts) > 0
        del book
        assert not path.with_name(path.name + "-wal").exists()

    def test_a_snapshot_closed_by_an_erasure_raises_a_typed_error(
        self, books: dict[int, tuple[Path, list[str]]], tmp_path: Path
    ) -> None:
        """Reading a book whose snapshot an erasure closed is a ConflictError, not sqlite3's."""
        path = copied(books, 60, tmp_path)
        store = SqliteStore(path)
        try:
            older = store.load()
            apply(
                store, Erase(books[60][1][0]), policy=erasing(), at=AT + timedelta(hours=9), by="d"
            )
            with pytest.raises(ConflictError, match="load it again"):
                list(older.contacts)
        finally:
            store.close()


class TestErasure:
    def test_no_old_snapshot_serves_the_erased(
        self,
        books: dict[int, tuple[Path, list[str]]],
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An erasure closes the other books loaded from the store, and empties the WAL."""
        path = copied(books, 60, tmp_path)
        cid = books[60][1][3]
        store = SqliteStore(path)
        try:
            older = store.load()
            policy = erasing()
            with caplog.at_level(logging.WARNING):
                result = apply(store, Erase(cid), policy=policy, at=AT + timedelta(hours=9), by="d")
            assert not caplog.records  # no snapshot of ours kept the WAL from emptying
            with pytest.raises(ConflictError):
                contact_at(older, cid, policy=POLICY, at=AT)
            assert cid not in store.load().contacts
            assert cid not in result.book.contacts
            assert dumps(result.book) == dumps(store.load())
        finally:
            store.close()
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0


def erasing() -> Policy:
    """The synthetic policy with a suppression key, as an erasure needs."""
    return Policy(sources=POLICY.sources, suppression_key="a secret kept elsewhere")


class TestCompactJournal:
    def test_an_initial_syncs_journal_reads_as_the_report(self, tmp_path: Path) -> None:
        """A created contact's changes are one short row, read back equal to the report's."""
        path = tmp_path / "book.db"
        store = SqliteStore(path)
        try:
            snapshot = synthetic_school(300, seed=2).snapshot(AT - timedelta(minutes=5))
            result = apply(store, snapshot, policy=POLICY, at=AT, by="nightly")
            assert store.journal()[0].report == result.report
        finally:
            store.close()
        db = sqlite3.connect(path)
        try:
            rows = db.execute("SELECT data FROM run_changes").fetchall()
        finally:
            db.close()
        assert len(rows) == 300
        assert all(data.startswith("{") and len(data) < 200 for (data,) in rows)


class TestDigest:
    def test_the_digest_is_canonical(self) -> None:
        """Equal data, equal digest; other data, another; departed has one of its own."""
        data = ContactData("Gita", phones=(Phone("07700 900101"),))
        assert record_digest(data) == record_digest(
            ContactData("Gita", phones=(Phone("07700 900101"),))
        )
        assert record_digest(data) != record_digest(ContactData("Gita"))
        assert record_digest(None) != record_digest(ContactData())
        assert len(record_digest(data)) == 32

    @given(sts.contact_data())
    def test_equal_data_has_equal_digests(self, data: ContactData) -> None:
        """Data rebuilt from its serialised form digests the same (no order, no hash seed)."""
        from sourcetruth.serialise import converter

        again = converter.structure(converter.unstructure(data), ContactData)
        assert record_digest(again) == record_digest(data)

    def test_each_record_row_holds_its_current_digest(
        self, books: dict[int, tuple[Path, list[str]]]
    ) -> None:
        """Every records row's digest is that of its current version's data."""
        db = sqlite3.connect(books[60][0])
        try:
            rows = db.execute("SELECT data, digest FROM records").fetchall()
        finally:
            db.close()
        for data, digest in rows:
            state = _rows.structure_row(data, RecordState)
            assert digest == record_digest(state.current.data)


class TestUpgradeFromSchema2:
    def test_a_book_written_by_schema_2_reads_as_it_did(self, tmp_path: Path) -> None:
        """Every contact, explanation and run of the old file is what the old library said."""
        path = tmp_path / "old.sqlite"
        shutil.copyfile(DATA / "schema2.sqlite", path)
        expected = json.loads((DATA / "schema2.json").read_text(encoding="utf-8"))
        policy = Policy(
            sources=(
                Source("mis", SourceKind.MIS),
                Source("import", SourceKind.IMPORT, covers=frozenset({"given_name", "phones"})),
            )
        )
        store = SqliteStore(path)
        try:
            book = store.load()
            assert plain(book) == expected["book"]
            for name, answer in expected["contacts"].items():
                cid, when = name.split(" ")
                at = datetime.fromisoformat(when)
                if answer is None:
                    with pytest.raises(LookupError):
                        contact_at(book, cid, policy=policy, at=at)
                else:
                    assert plain(contact_at(book, cid, policy=policy, at=at)) == answer, name
            for name, answer in expected["explain"].items():
                cid, when, field = name.split(" ")
                told = explain(book, cid, field, policy=policy, at=datetime.fromisoformat(when))
                assert plain(told) == answer, name
            assert [plain(run) for run in store.journal()] == expected["journal"]
        finally:
            store.close()
        db = sqlite3.connect(path)
        try:
            version = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            rows = db.execute("SELECT data, digest, name FROM records").fetchall()
        finally:
            db.close()
        assert version == (str(SCHEMA_VERSION),)
        for data, digest, name in rows:
            state = _rows.structure_row(data, RecordState)
            assert digest == record_digest(state.current.data)
            assert name == name_key(state.current.data)

    def test_a_file_without_the_name_column_is_filled_on_open(
        self, books: dict[int, tuple[Path, list[str]]], tmp_path: Path
    ) -> None:
        """A schema 3 file written before records.name (its digests older) gets both anew."""
        path = copied(books, 60, tmp_path)
        db = sqlite3.connect(path)
        try:
            db.execute("DROP INDEX records_by_name")
            db.execute("ALTER TABLE records DROP COLUMN name")
            db.execute("UPDATE records SET digest=?", ("0" * 64,))
            db.commit()
        finally:
            db.close()
        SqliteStore(path).close()
        db = sqlite3.connect(path)
        try:
            rows = db.execute("SELECT data, digest, name FROM records").fetchall()
        finally:
            db.close()
        assert rows
        for data, digest, name in rows:
            state = _rows.structure_row(data, RecordState)
            assert (digest, name) == (
                record_digest(state.current.data),
                name_key(state.current.data),
            )

    def test_an_upgraded_book_takes_merges_and_journals_them(self, tmp_path: Path) -> None:
        """After the upgrade the book takes a new run; the old runs read as before."""
        path = tmp_path / "old.sqlite"
        shutil.copyfile(DATA / "schema2.sqlite", path)
        expected = json.loads((DATA / "schema2.json").read_text(encoding="utf-8"))
        policy = Policy(
            sources=(Source("mis", SourceKind.MIS), Source("import", SourceKind.IMPORT))
        )
        store = SqliteStore(path)
        try:
            change = SetOverride("mis:P1", "given_name", ContactData(given_name="Ada-Mae"))
            at = datetime.fromisoformat("2026-11-25T13:00:00+00:00")
            apply(store, change, policy=policy, at=at, by="office")
            journal = store.journal()
        finally:
            store.close()
        assert [plain(run) for run in journal[:-1]] == expected["journal"]
        assert journal[-1].status == "applied"

    def test_an_upgraded_book_has_no_view_until_refreshed(self, tmp_path: Path) -> None:
        """The old file opens with no view; RefreshView builds it; every answer is unchanged."""
        path = tmp_path / "old.sqlite"
        shutil.copyfile(DATA / "schema2.sqlite", path)
        expected = json.loads((DATA / "schema2.json").read_text(encoding="utf-8"))
        policy = Policy(
            sources=(
                Source("mis", SourceKind.MIS),
                Source("import", SourceKind.IMPORT, covers=frozenset({"given_name", "phones"})),
            )
        )
        store = SqliteStore(path)
        try:
            book = store.load()
            assert book.view_basis == ""
            assert not book.view
            at = datetime.fromisoformat("2026-11-25T13:00:00+00:00")
            result = apply(store, RefreshView(), policy=policy, at=at, by="office")
            assert result.report.status is Status.APPLIED
            again = store.load()
            assert again.view_basis == view_basis(policy)
            assert sorted(again.view) == sorted(build_view(again, policy))
            for cid in sorted(again.contacts):
                with _history_only():
                    history = contact_at(again, cid, policy=policy, at=at)
                assert contact_at(again, cid, policy=policy, at=at) == history, cid
            for part in ("contacts", "records"):  # the history as it was: no row changed
                assert plain(again)["data"][part] == expected["book"]["data"][part]  # type: ignore[index]
        finally:
            store.close()


def plain(value: object) -> object:
    """*value* as JSON data, as the fixture keeps it."""
    return json.loads(dumps(value))


def two_feeds() -> Policy:
    """The synthetic MIS, and an import that may hold the same people (rule 12)."""
    return Policy(
        sources=(*POLICY.sources, Source("import", SourceKind.IMPORT)), guard=POLICY.guard
    )


MIS_NIGHT0 = synthetic_school(2_000, seed=5)
IMPORTED = synthetic_school(2_000, seed=6, source="import")


@pytest.fixture(scope="module")
def fed_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A book of 2,000 MIS contacts and an import of 2,000 more, made once: copy it."""
    path = tmp_path_factory.mktemp("fed") / "book.db"
    store = SqliteStore(path)
    try:
        policy = two_feeds()
        apply(store, MIS_NIGHT0.snapshot(AT - timedelta(minutes=5)), policy=policy, at=AT, by="n")
        at = AT + timedelta(minutes=30)
        apply(store, IMPORTED.snapshot(at), policy=policy, at=at, by="office")
    finally:
        store.close()
    return path


@pytest.fixture
def structured_records(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (source, key) of each record row a lazy book structures, as the test runs."""
    seen: list[tuple[str, str]] = []
    real = _rows.structure_row

    def counting(text: str, kind: object) -> object:
        value = real(text, kind)
        if isinstance(value, RecordState):
            seen.append((value.source, value.key))
        return value

    monkeypatch.setattr(_rows, "structure_row", counting)
    return seen


class TestANightReadsWhatChanged:
    def test_a_1_percent_resync_structures_and_writes_only_what_changed(
        self, fed_book: Path, structured_records: list[tuple[str, str]], tmp_path: Path
    ) -> None:
        """A full MIS resync, 1% changed, of a lazy book of 4,000 reads and writes O(changed).

        It structures the MIS rows that changed or departed, each once, and
        (for possible duplicates, rule 12) the import's rows named as a
        changed or new MIS record is, found by the name index: nothing else.
        """
        path = tmp_path / "book.db"
        shutil.copyfile(fed_book, path)
        night = AT + timedelta(days=1)
        snapshot = MIS_NIGHT0.next_night(seed=7).snapshot(night - timedelta(minutes=5))
        before = {r.key: r.data for r in MIS_NIGHT0.records}
        tonight = {r.key: r.data for r in snapshot.records}
        moved = {k for k, d in tonight.items() if before.get(k) != d}
        departed = before.keys() - tonight.keys()
        named = {name_key(tonight[k]) for k in moved}
        import_named = {r.key for r in IMPORTED.records if name_key(r.data) in named}
        assert 30 <= len(moved | departed) <= 100  # 1% changed, 0.5% left and joined
        statements: list[int] = []
        store = SqliteStore(path, statement_hook=statements.append)
        try:
            result = apply(store, snapshot, policy=two_feeds(), at=night, by="nightly")
        finally:
            store.close()
        assert result.report.status is Status.APPLIED
        assert len(structured_records) == len(set(structured_records))  # each row once
        mis = {k for s, k in structured_records if s == "mis"}
        assert mis == (moved & before.keys()) | departed  # the new ones have no row to read
        assert {k for s, k in structured_records if s == "import"} == import_named
        # The rows of the records, contacts, journal entries and view entries (a
        # contact's row and its links) it changed, and a few more: never the book.
        assert len(statements) <= 8 * len(moved | departed) + 10, len(statements)
