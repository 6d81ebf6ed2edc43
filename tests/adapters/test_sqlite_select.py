"""A rule on a book loaded from SQLite reads the view's rows it matches, by the indexes.

Each answer is compared with the scan of the same view held in a dict and
with history alone, for random books and rules; the rows a lazy book
decodes are counted where it decodes one (``_view.decode``), never
timed; and SQLite's own query plan says each selection searches an index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_sqlite_lazy import AT, POLICY, book_of

from sourcetruth import (
    Book,
    Channel,
    ContactData,
    Email,
    Message,
    OverrideLifetime,
    Phone,
    Policy,
    Record,
    Relationship,
    Role,
    Rule,
    SendMode,
    SetOverride,
    Snapshot,
    SnapshotKind,
    Source,
    SourceKind,
    SourceTruthError,
    merge,
    plan,
    recipients,
)
from sourcetruth.adapters.stores import _view
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.audience import EffectiveCache
from sourcetruth.merge import Change
from sourcetruth.testing import strategies as sts
from sourcetruth.view import _history_only, view_is_current
from test_view import KINDS, MIS_KEYS, SETTINGS, STEPS, Run, outcome


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the view rows a lazy book decodes, one entry per row, as the test runs."""
    seen: list[str] = []
    real = _view.decode

    def counting(contact_id: str, text: str, stamps: Any = None) -> Any:
        seen.append(contact_id)
        return real(contact_id, text, stamps)

    monkeypatch.setattr(_view, "decode", counting)
    return seen


class StoredRun(Run):
    """A :class:`Run` whose every change is applied through a SqliteStore."""

    def __init__(self, policy: Policy, store: SqliteStore) -> None:
        super().__init__(policy)
        self.store = store

    def merge(self, change: Change, policy: Policy | None = None) -> None:
        try:
            result = apply(self.store, change, policy=policy or self.policy, at=self.now, by="test")
        except SourceTruthError:
            return
        self.book = result.book
        self.times.append(self.now)


def family(run: Run, data: st.DataObject) -> None:
    """A delta sync of pupils and guardians related to them (the view's steps rarely relate any)."""
    keys = data.draw(st.lists(MIS_KEYS, min_size=2, max_size=6, unique=True))
    split = data.draw(st.integers(1, len(keys) - 1))
    pupils = keys[:split]
    records = [Record(k, data.draw(sts.contact_data(role=Role.PUPIL))) for k in pupils]
    records += [
        Record(k, data.draw(sts.contact_data(role=Role.GUARDIAN, pupils=pupils)))
        for k in keys[split:]
    ]
    at = run.now - timedelta(minutes=data.draw(st.integers(0, 30)))
    run.merge(Snapshot("mis", at, tuple(records), SnapshotKind.DELTA))


#: The view's steps, and families twice as often as any.
STORED_STEPS = {**STEPS, "family": family}
STORED_KINDS = (*KINDS, "family", "family")


def scanned(book: Book) -> Book:
    """*book* with its view read whole into a dict: readers scan it."""
    return attrs.evolve(book, view=dict(book.view))


def three_ways(book: Book, read: Any) -> tuple[Any, Any, Any]:
    """*read* of the lazy *book* (by index), of its view in a dict (a scan), and of history."""
    by_index = outcome(lambda: read(book))
    by_scan = outcome(lambda: read(scanned(book)))
    with _history_only():
        from_history = outcome(lambda: read(book))
    return by_index, by_scan, from_history


@pytest.fixture(scope="class")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for a test's Hypothesis examples, each its own numbered file."""
    return tmp_path_factory.mktemp("select")


class TestSelectionAnswersAsTheScan:
    """Issue 13: the index's answers are the scan's and history's, for any rule and time."""

    @SETTINGS
    @given(
        data=st.data(),
        policy=sts.policies(guard=sts.DEFAULT_GUARD),
        rules=st.lists(sts.rules(), min_size=1, max_size=4),
    )
    def test_recipients_and_plans_agree(
        self, folder: Path, data: st.DataObject, policy: Policy, rules: list[Rule]
    ) -> None:
        """Random books committed and loaded back: rules resolved by index, scan and history."""
        path = folder / f"{len(list(folder.iterdir()))}.sqlite"
        store = SqliteStore(path)
        try:
            run = StoredRun(policy, store)
            for _ in range(data.draw(st.integers(1, 8))):
                run.now += timedelta(minutes=data.draw(st.sampled_from((1, 30, 300, 1500, 4000))))
                STORED_STEPS[data.draw(st.sampled_from(STORED_KINDS))](run, data)
            book = store.load()
            if book.updated_at is None:
                return
            later = book.updated_at + timedelta(hours=data.draw(st.integers(0, 120)))
            past = data.draw(st.sampled_from(run.times)) - timedelta(minutes=1)
            for at in (book.updated_at, later, past):
                if at >= book.updated_at and view_is_current(book, policy, at):
                    assert EffectiveCache(book, policy, at).index is not None
                for rule in rules:
                    for channel in Channel:
                        ways = three_ways(
                            book,
                            lambda b, r=rule, c=channel, t=at: recipients(
                                b, r, c, policy=policy, at=t
                            ),
                        )
                        assert ways[0] == ways[1] == ways[2], (rule, channel, at)
                message = Message(
                    "m1",
                    "Subject",
                    "Body",
                    channels=(Channel.EMAIL, Channel.SMS),
                    mode=data.draw(st.sampled_from(SendMode)),
                    rules=tuple(rules),
                    contacts=tuple(sorted(book.contacts)[::3]),
                )
                ways = three_ways(book, lambda b, m=message, t=at: plan(b, m, policy=policy, at=t))
                assert ways[0] == ways[1] == ways[2], at
        finally:
            store.close()


PUPIL = ContactData("Pat", "Okafor", Role.PUPIL, year_group=" 9 ", registration_group="9B ")
GUARDIAN = ContactData(
    "Nina",
    "Okafor",
    Role.GUARDIAN,
    phones=(Phone("07700 900123"),),
    emails=(Email("nina@example.org"),),
    relationships=(Relationship("P1"),),
)
LEAVER = ContactData("Lee", "Adeyemi", Role.PUPIL, year_group="9", registration_group="9A")
MIS = Policy(sources=(Source("mis", SourceKind.MIS),))


class TestTheIndexSelects:
    """What the index gives: stripped groups, roles by value, the departed left out."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        """A book of a pupil in ' 9 ', her guardian, and a pupil of 9 who left."""
        opened = SqliteStore(tmp_path / "book.sqlite")
        first = Snapshot(
            "mis",
            AT,
            (Record("P1", PUPIL), Record("G1", GUARDIAN), Record("P2", LEAVER)),
        )
        apply(opened, first, policy=MIS, at=AT, by="nightly")
        second = Snapshot(
            "mis", AT + timedelta(days=1), (Record("P1", PUPIL), Record("G1", GUARDIAN))
        )
        apply(opened, second, policy=MIS, at=AT + timedelta(days=1), by="nightly")
        yield opened
        opened.close()

    def test_groups_stripped_roles_by_value_departed_left_out(self, store: SqliteStore) -> None:
        """select finds ' 9 ' under '9' and '9B' under '9B', by role value; never the leaver."""
        view = store.load().view
        assert isinstance(view, _view.ViewTable)
        assert set(view.select([Role.PUPIL], ["9"], [])) == {"mis:P1"}
        assert set(view.select([], [], ["9B"])) == {"mis:P1"}
        assert set(view.select([Role.GUARDIAN], [], [])) == {"mis:G1"}
        assert set(view.select([Role.STAFF], ["9"], [])) == set()
        assert set(view.naming([("mis", "P1")])) == {"mis:G1"}
        assert set(view.naming([("mis", "P2"), ("import", "P1")])) == set()

    def test_an_expired_override_is_answered_from_history(self, store: SqliteStore) -> None:
        """An override moves the pupil out of 9 until a time: past it, the index finds her."""
        at = AT + timedelta(days=2)
        edit = SetOverride(
            "mis:P1",
            "year_group",
            attrs.evolve(PUPIL, year_group="10"),
            OverrideLifetime.UNTIL,
            until=at + timedelta(hours=1),
        )
        apply(store, edit, policy=MIS, at=at, by="office")
        book = store.load()
        rule = Rule(year_groups=frozenset({"9"}), guardians_of=True)
        during = recipients(book, rule, Channel.SMS, policy=MIS, at=at)
        after = recipients(book, rule, Channel.SMS, policy=MIS, at=at + timedelta(hours=2))
        assert during.recipients == ()
        assert [r.contact_ids for r in after.recipients] == [("mis:G1",)]
        assert after == recipients(
            scanned(book), rule, Channel.SMS, policy=MIS, at=at + timedelta(hours=2)
        )

    def test_a_merged_book_selects_through_its_overlays(self, store: SqliteStore) -> None:
        """A book merged in memory over a loaded one finds what the merge changed too."""
        at = AT + timedelta(days=2)
        book = store.load()
        moved = Snapshot(
            "mis", at, (Record("P1", PUPIL), Record("G1", GUARDIAN), Record("P2", LEAVER))
        )
        after = merge(book, moved, policy=MIS, at=at, by="nightly").book
        assert EffectiveCache(after, MIS, at).index is not None
        rule = Rule(year_groups=frozenset({"9"}))
        found = recipients(after, rule, Channel.EMAIL, policy=MIS, at=at)
        assert {u.contact_id for u in found.unreachable} == {"mis:P1", "mis:P2"}
        assert found == recipients(scanned(after), rule, Channel.EMAIL, policy=MIS, at=at)

    @pytest.mark.parametrize(
        ("sql", "args", "index"),
        [
            (*_view.selection_sql([Role.PUPIL], ["9"], []), "current_by_year_group"),
            (*_view.records_sql([Role.PUPIL], ["9"], []), "current_by_year_group"),
            (*_view.selection_sql([Role.GUARDIAN], [], []), "current_by_role"),
            (*_view.selection_sql([], [], ["9B"]), "current_by_registration_group"),
            (_view.naming_sql(2), ("mis", "P1", "P2"), "current_links_by_pupil"),
            (_view.EXPIRING_SQL, (), "current_expiring"),
        ],
    )
    def test_each_query_searches_an_index(
        self, store: SqliteStore, sql: str, args: tuple[str, ...], index: str
    ) -> None:
        """SQLite's query plan of each selection names its index."""
        db = sqlite3.connect(store.path)
        try:
            steps = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        finally:
            db.close()
        assert any(index in step for step in steps), steps
        assert not any(step.startswith("SCAN current_links") for step in steps), steps


@pytest.fixture(scope="module")
def book_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synced book of 2,000 contacts."""
    path = tmp_path_factory.mktemp("two-thousand") / "book.sqlite"
    book_of(path, 2_000)
    return path


class TestReadsWhatMatches:
    """A rule on a lazily loaded book of 2,000 decodes about the rows it matches."""

    @pytest.fixture
    def book(self, book_path: Path) -> Iterator[Book]:
        """The book, loaded lazily."""
        store = SqliteStore(book_path)
        yield store.load()
        store.close()

    def test_parents_of_one_year(self, book: Book, decoded: list[str]) -> None:
        """Planning for parents of year 9 decodes only the guardians naming its pupils.

        The pupils' records are read by SQLite out of their rows; no pupil is decoded.
        """
        at = AT + timedelta(hours=1)
        rule = Rule(year_groups=frozenset({"9"}), guardians_of=True)
        message = Message("m1", "Subject", "Body", channels=(Channel.EMAIL,), rules=(rule,))
        done = plan(book, message, policy=POLICY, at=at)
        pupils = {cid for cid in decoded if book.view[cid].data.role is Role.PUPIL}
        reached = {cid for d in done.deliveries for cid in d.contact_ids}
        reached |= {u.contact_id for _, u in done.unreachable}
        assert not pupils
        assert reached
        # Every guardian decoded names a year 9 pupil (a few do not receive messages).
        assert len(decoded) <= 2 * len(reached) + 10, len(decoded)
        assert len(decoded) < 2_000 // 10
        assert done == plan(scanned(book), message, policy=POLICY, at=at)

    def test_selected_records_are_the_decoded_entries_records(self, book: Book) -> None:
        """What SQLite reads out of the rows is what decoding the rows gives, row by row."""
        view = book.view
        assert isinstance(view, _view.ViewTable)
        for selectors in (([Role.PUPIL], ["9"], []), ([], [], []), ([Role.GUARDIAN], [], [])):
            records, check = view.selected_records(*selectors)
            entries = view.select(*selectors)
            assert records
            assert set(records) | set(check) == set(entries)
            for cid, found in records.items():
                assert tuple(found) == entries[cid].records, cid

    def test_one_year_group(self, book: Book, decoded: list[str]) -> None:
        """Recipients of year 9 decode year 9's rows only."""
        at = AT + timedelta(hours=1)
        rule = Rule(year_groups=frozenset({"9"}))
        found = recipients(book, rule, Channel.EMAIL, policy=POLICY, at=at)
        named = {cid for r in found.recipients for cid in r.contact_ids}
        named |= {u.contact_id for u in found.unreachable}
        assert named == set(decoded)
        assert 0 < len(decoded) < 2_000 // 10
        assert found == recipients(scanned(book), rule, Channel.EMAIL, policy=POLICY, at=at)

    def test_everyone_is_still_a_scan(self, book: Book, decoded: list[str]) -> None:
        """A rule that selects by nothing reads every row, once (the index would not help)."""
        recipients(book, Rule(), Channel.EMAIL, policy=POLICY, at=AT + timedelta(hours=1))
        assert len(decoded) == len(set(decoded)) == len(book.view)
