"""The store contract: does a store keep the promises of :class:`~sourcetruth.protocols.Store`?

Subclass :class:`StoreContract` in your own test module and override
``open_store``; pytest then runs every check against your store::

    from sourcetruth.testing.stores import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def open_store(self, database):
            return lambda name: MyStore(database.dsn, book=name)

        @pytest.fixture
        def raw_bytes(self, database):
            return database.dump          # every byte the database holds, WAL included

``open_store(name)`` opens a handle on the store called *name*: empty the
first time a test opens it, and the same store each time after, so a check
can hold two handles on one store (two writers) or close one and open
another (a later run). ``raw_bytes()`` returns every byte every store of
the test holds; by default it reads every file under ``store_folder`` (the
database, its WAL or rollback journal, lock files, leftovers), so a store
whose bytes are not in local files (a database server) overrides it.
``interrupted_store(name, step)``, None by default, opens the store so that
its commit fails at its *step*-th write: when given, the atomicity check
interrupts a commit at every step in turn.

The checks: the protocol and an empty new store; round trip (a book read
back through a new handle is the book committed, to the byte, and answers
the same); a loaded book stays a value while others commit; conflict (two
writers from one base: the second gets :class:`ConflictError` and nothing
of it is written; the loser loads again and both changes are kept; writers
in threads lose no commit); atomic commit (a commit that fails part way
leaves the store exactly as it was, and the next commit goes through); the
journal (every run, held and unchanged ones too, in order, read back equal
to what was committed); erasure leaving no bytes (after an erasure none of
the person's names, numbers, addresses or key is in the raw bytes, while
the store is open and after it is closed, and the next sync keeps them out);
and the ``repr`` names no personal value. The contract is not collected by
itself: its name does not start with ``Test``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sourcetruth.adapters.sources.export import export_csv
from sourcetruth.adapters.stores.base import apply
from sourcetruth.changes import Erase, SetGroup, SetOverride
from sourcetruth.effective import contacts_at
from sourcetruth.exceptions import ConflictError
from sourcetruth.journal import Run, input_hash, run_of
from sourcetruth.merge import Change, merge
from sourcetruth.model import (
    Book,
    ContactData,
    GroupDefinition,
    Phone,
    Snapshot,
    SnapshotKind,
    SourceKind,
)
from sourcetruth.policy import DepartureGuard, Policy, Source
from sourcetruth.protocols import Store
from sourcetruth.report import MergeResult, Status
from sourcetruth.serialise import dumps
from sourcetruth.testing.conformance import _next_night, sample_school
from sourcetruth.testing.strategies import snapshots

__all__ = ["ERASED", "ERASED_VALUES", "InterruptedStore", "OpenStore", "StoreContract"]

#: The contract's ``open_store`` fixture: a store by name, empty at first, the same store after.
OpenStore = Callable[[str], Store]
#: The ``interrupted_store`` fixture: a store by name that fails at its commit's given step.
InterruptedStore = Callable[[str, int], Store]

_MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
_TUESDAY = _MONDAY + timedelta(days=1)
_WEDNESDAY = _TUESDAY + timedelta(days=1)

#: The contact the erasure check erases: a guardian of the sample school.
ERASED: str = "mis:G2001"
#: Every way the erased guardian's values could sit in a store's bytes.
ERASED_VALUES: tuple[str, ...] = (
    "G2001",
    "Gita",
    "7700900101",
    "7700 900101",
    "1632960101",
    "1632 960101",
    "gita@parent.test",
    "7700900111",
    "7700 900111",
    "7700900121",
    "7700 900121",
)
# Steps past this many are not tried: a commit of the sample is far shorter.
_MAX_STEPS = 2000
_EXAMPLES = itertools.count()


def _policy() -> Policy:
    # The guard would hold a small school's leaver; suppression needs a key.
    return Policy(
        sources=(Source("mis", SourceKind.MIS),),
        guard=DepartureGuard(enabled=False),
        suppression_key="the store contract's key, kept outside the store",
    )


def _monday_sync(store: Store, policy: Policy) -> Snapshot:
    """Apply the sample school to *store* as Monday's sync; the sample."""
    sample = sample_school(at=_MONDAY - timedelta(minutes=5))
    apply(store, sample, policy=policy, at=_MONDAY, by="store contract")
    return sample


def _tuesday_sync() -> Snapshot:
    """Tuesday's night: one change, one leaver, one joiner, and Gita's mobile changed."""
    night = _next_night(sample_school(at=_TUESDAY - timedelta(minutes=5)), _TUESDAY)
    records = []
    for record in night.records:
        if record.key == "G2001":
            phones = (Phone("07700 900121"), *record.data.phones[1:])
            record = attrs.evolve(record, data=attrs.evolve(record.data, phones=phones))
        records.append(record)
    return attrs.evolve(night, records=tuple(records))


def _an_override() -> SetOverride:
    return SetOverride(ERASED, "phones", ContactData(phones=(Phone("07700 900111"),)))


def _a_group(name: str) -> SetGroup:
    return SetGroup(GroupDefinition(name, members=frozenset({"mis:P1001"})))


class _Unwritable:
    """A value no store can write: every way of turning it into text or bytes raises."""

    def __str__(self) -> str:
        msg = "the store contract's unwritable value"
        raise RuntimeError(msg)

    __repr__ = __str__

    def __reduce__(self) -> Any:
        raise RuntimeError(str(self))


def _state(store: Store) -> tuple[str, tuple[Run, ...]]:
    return dumps(store.load()), store.journal()


def _leaks(data: bytes) -> list[str]:
    return sorted(value for value in ERASED_VALUES if value.encode("utf-8") in data)


class StoreContract:
    """The checks every store must pass; subclass it and override ``open_store``."""

    # -- fixtures the integrator overrides -------------------------------------------------

    @pytest.fixture
    def store_folder(self, tmp_path: Path) -> Path:
        """A folder of the test's own, for stores kept in files (empty at first)."""
        folder = tmp_path / "stores"
        folder.mkdir()
        return folder

    @pytest.fixture
    def open_store(self, store_folder: Path) -> OpenStore:
        """Return ``open(name) -> Store``: a new handle on the store *name*, empty at first.

        Names are lower-case letters, digits and ``-``. It is called from
        other threads too; each handle is used and closed in its own thread.
        """
        msg = "override the open_store fixture to open your store"
        raise NotImplementedError(msg)

    @pytest.fixture
    def raw_bytes(self, store_folder: Path) -> Callable[[], bytes]:
        """Return ``read() -> bytes``: every byte the test's stores hold.

        By default every file under ``store_folder``, hidden ones, SQLite's
        ``-wal``, ``-shm`` and ``-journal`` files, lock files and leftovers
        included. A store that keeps its bytes elsewhere (a database server)
        returns them itself: a dump of every table and log it writes.
        """

        def read() -> bytes:
            files = sorted(p for p in store_folder.rglob("*") if p.is_file())
            return b"\n".join(p.read_bytes() for p in files)

        return read

    @pytest.fixture
    def interrupted_store(self) -> InterruptedStore | None:
        """Return ``open(name, step) -> Store`` whose commit raises at its *step*-th write.

        None (the default) leaves the step-by-step atomicity check out; the
        check that a commit whose run cannot be written changes nothing runs
        whatever this is.
        """
        return None

    @pytest.fixture
    def policy(self) -> Policy:
        """The policy every check merges under: the sample's source, a suppression key."""
        return _policy()

    @pytest.fixture
    def opened(self, open_store: OpenStore) -> Iterator[Callable[[str], Store]]:
        """``open_store``, with every handle closed when the check ends."""
        handles: list[Store] = []

        def open_(name: str) -> Store:
            handle = open_store(name)
            handles.append(handle)
            return handle

        yield open_
        for handle in handles:
            handle.close()

    # -- the protocol ----------------------------------------------------------------------

    def test_keeps_the_protocol(self, opened: Callable[[str], Store]) -> None:
        """The store has every member of the protocol; a new store holds an empty book."""
        store = opened("new")
        assert isinstance(store, Store)
        assert dumps(store.load()) == dumps(Book())
        assert store.journal() == ()

    # -- round trip ------------------------------------------------------------------------

    def test_round_trip(self, opened: Callable[[str], Store], policy: Policy) -> None:
        """Each commit reads back through a new handle as the book committed, to the byte."""
        store = opened("book")
        changes: list[tuple[Change, datetime]] = [
            (sample_school(at=_MONDAY - timedelta(minutes=5)), _MONDAY),
            (_an_override(), _MONDAY + timedelta(hours=9)),
            (_a_group("trip"), _MONDAY + timedelta(hours=10)),
            (_tuesday_sync(), _TUESDAY),
        ]
        for change, at in changes:
            result = apply(store, change, policy=policy, at=at, by="store contract")
            assert result.report.status is Status.APPLIED
            again = opened("book")
            loaded = again.load()
            assert dumps(loaded) == dumps(result.book), "the book read back is not the book"
            later = at + timedelta(hours=1)
            assert export_csv(loaded, policy=policy, at=later) == export_csv(
                result.book, policy=policy, at=later
            )
            # The past too: the book keeps its history, the store must keep it whole.
            past = _MONDAY + timedelta(hours=1)
            assert list(contacts_at(loaded, policy=policy, at=past)) == list(
                contacts_at(result.book, policy=policy, at=past)
            )

    @settings(
        max_examples=12,
        deadline=None,
        # Each example opens a store of its own; each subclass is a store of its own.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        nights=st.lists(
            snapshots(max_size=6, kind=SnapshotKind.FULL, at=_MONDAY), min_size=1, max_size=3
        ),
    )
    def test_any_book_round_trips(
        self,
        opened: Callable[[str], Store],
        policy: Policy,
        nights: list[Snapshot],
    ) -> None:
        """Any run of nightly syncs commits and reads back, to the byte, after each."""
        name = f"property-{next(_EXAMPLES)}"  # a new store for each example
        store = opened(name)
        for day, night in enumerate(nights):
            at = _MONDAY + timedelta(days=day)
            night = attrs.evolve(night, extracted_at=at - timedelta(minutes=5))
            result = apply(store, night, policy=policy, at=at, by="store contract")
            assert dumps(opened(name).load()) == dumps(result.book)
        assert len(opened(name).journal()) == len(nights)

    def test_a_loaded_book_is_a_value(self, opened: Callable[[str], Store], policy: Policy) -> None:
        """A book loaded before another handle commits still reads as it was loaded."""
        store = opened("book")
        _monday_sync(store, policy)
        held = store.load()
        seen = dumps(held)
        apply(opened("book"), _tuesday_sync(), policy=policy, at=_TUESDAY, by="store contract")
        assert dumps(held) == seen, "a loaded book changed when another run committed"

    # -- conflict --------------------------------------------------------------------------

    def test_a_second_writer_from_the_same_base_conflicts(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """Two writers load one book; the second commit raises ConflictError and writes nothing."""
        setup = opened("book")
        _monday_sync(setup, policy)
        first, second = opened("book"), opened("book")
        base_a, base_b = first.load(), second.load()
        sync = _tuesday_sync()
        won = merge(base_a, sync, policy=policy, at=_TUESDAY, by="nightly")
        edit = _an_override()
        lost = merge(base_b, edit, policy=policy, at=_TUESDAY + timedelta(hours=1), by="office")
        first.commit(base_a, won, run_of(base_a, (sync,), won.report, at=_TUESDAY, by="nightly"))
        after = _state(opened("book"))
        late = run_of(base_b, (edit,), lost.report, at=_TUESDAY + timedelta(hours=1), by="office")
        with pytest.raises(ConflictError):
            second.commit(base_b, lost, late)
        assert _state(opened("book")) == after, "the losing commit wrote something"
        assert after[0] == dumps(won.book)

    def test_a_stale_book_conflicts_on_the_same_handle(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """A book loaded before a later commit of the same handle cannot be committed over it."""
        store = opened("book")
        _monday_sync(store, policy)
        stale = store.load()
        apply(store, _tuesday_sync(), policy=policy, at=_TUESDAY, by="store contract")
        before = _state(store)
        edit = _a_group("late")
        late = merge(stale, edit, policy=policy, at=_WEDNESDAY, by="office")
        with pytest.raises(ConflictError):
            store.commit(stale, late, run_of(stale, (edit,), late.report, at=_WEDNESDAY, by="o"))
        assert _state(opened("book")) == before

    def test_the_loser_merges_again_and_nothing_is_lost(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """After a conflict the loser loads and merges again: both writers' changes are kept."""
        store = opened("book")
        _monday_sync(store, policy)
        stale = store.load()
        apply(opened("book"), _a_group("first"), policy=policy, at=_TUESDAY, by="a")
        edit = _a_group("second")
        late = merge(stale, edit, policy=policy, at=_WEDNESDAY, by="b")
        with pytest.raises(ConflictError):
            store.commit(stale, late, run_of(stale, (edit,), late.report, at=_WEDNESDAY, by="b"))
        apply(store, edit, policy=policy, at=_WEDNESDAY, by="b")
        book = opened("book").load()
        assert {"first", "second"} <= set(book.groups)
        assert [run.by for run in opened("book").journal()] == ["store contract", "a", "b"]

    def test_writers_in_threads_lose_no_commit(
        self, opened: Callable[[str], Store], open_store: OpenStore, policy: Policy
    ) -> None:
        """Writers on their own handles, at once, retrying on conflict: every commit is kept."""
        _monday_sync(opened("book"), policy)
        writers, each = 3, 3
        errors: list[BaseException] = []

        def write(n: int) -> None:
            # Each writer opens, uses and closes its handle in its own thread.
            try:
                handle = open_store("book")
            except BaseException as error:  # reported by the main thread
                errors.append(error)
                return
            try:
                for i in range(each):
                    change = _a_group(f"w{n}-{i}")
                    for _ in range(500):
                        try:
                            apply(handle, change, policy=policy, at=_TUESDAY, by=f"w{n}")
                            break
                        except ConflictError:
                            continue
                    else:
                        msg = "a writer never got its commit in"
                        raise AssertionError(msg)
            except BaseException as error:  # reported by the main thread
                errors.append(error)
            finally:
                handle.close()

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        book = opened("book").load()
        wanted = {f"w{n}-{i}" for n in range(writers) for i in range(each)}
        assert wanted <= set(book.groups), "a commit was lost"
        assert len(opened("book").journal()) == 1 + writers * each
        assert book.seq == 1 + writers * each

    # -- atomic commit ---------------------------------------------------------------------

    def _monday_and_tuesday(self, store: Store, policy: Policy) -> tuple[Book, MergeResult, Run]:
        _monday_sync(store, policy)
        before = store.load()
        sync = _tuesday_sync()
        result = merge(before, sync, policy=policy, at=_TUESDAY, by="nightly")
        run = run_of(before, (sync,), result.report, at=_TUESDAY, by="nightly")
        return before, result, run

    def test_a_commit_that_fails_part_way_changes_nothing(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """A commit whose run cannot be written leaves book and journal as they were."""
        store = opened("book")
        before, result, run = self._monday_and_tuesday(store, policy)
        kept = _state(opened("book"))
        # The journal entry is written with the book: failing it must undo the book too.
        broken = attrs.evolve(run, by=cast(str, _Unwritable()))
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any failure will do
            store.commit(before, result, broken)
        assert not isinstance(caught.value, ConflictError), "a failed write is not a conflict"
        assert _state(opened("book")) == kept, "a failed commit changed the store"
        assert _state(store) == kept
        # Nothing stays locked or half done: the same handle commits the run now.
        store.commit(before, result, run)
        assert _state(opened("book")) == (dumps(result.book), (*kept[1], run))

    def test_a_commit_interrupted_at_any_step_changes_nothing(
        self,
        opened: Callable[[str], Store],
        interrupted_store: InterruptedStore | None,
        policy: Policy,
    ) -> None:
        """Stopped at each write of a commit in turn, the store is entirely as before."""
        if interrupted_store is None:
            pytest.skip("override interrupted_store to interrupt a commit at each step")
        before, result, run = self._monday_and_tuesday(opened("book"), policy)
        kept = _state(opened("book"))
        for step in range(1, _MAX_STEPS):
            store = interrupted_store("book", step)
            try:
                store.commit(before, result, run)
            except ConflictError:
                raise
            except Exception:  # the interruption, whatever it raises
                assert _state(opened("book")) == kept, f"interrupted at step {step}"
                continue
            finally:
                store.close()
            assert step > 1, "interrupted_store never interrupted the commit"
            assert _state(opened("book")) == (dumps(result.book), (*kept[1], run))
            return
        pytest.fail(f"a commit of the sample took more than {_MAX_STEPS} steps")

    # -- the journal -----------------------------------------------------------------------

    def test_the_journal_keeps_every_run_in_order(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """Every run, applied, unchanged or held, is read back equal and in commit order."""
        store = opened("book")
        sample = sample_school(at=_MONDAY - timedelta(minutes=5))
        nights: list[tuple[Change, datetime, Status]] = [
            (sample, _MONDAY, Status.APPLIED),
            (sample, _MONDAY + timedelta(hours=1), Status.NO_CHANGE),
            (_an_override(), _MONDAY + timedelta(hours=9), Status.APPLIED),
            (_tuesday_sync(), _TUESDAY, Status.APPLIED),
        ]
        runs: list[Run] = []
        for change, at, status in nights:
            before = store.load()
            result = merge(before, change, policy=policy, at=at, by="store contract")
            assert result.report.status is status
            run = run_of(before, (change,), result.report, at=at, by="store contract")
            store.commit(before, result, run)
            runs.append(run)
            assert opened("book").journal() == tuple(runs)
        assert runs[0].input_hash == input_hash(sample)
        assert runs[1].report.status is Status.NO_CHANGE
        # An unchanged merge is journalled, and the book stays the book.
        assert opened("book").load().seq == 3

    def test_a_held_merge_is_journalled_and_the_book_kept(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """A merge the departure guard holds is in the journal; the book is unchanged."""
        store = opened("book")
        sample = _monday_sync(store, policy)
        kept = dumps(store.load())
        guarded = attrs.evolve(policy, guard=DepartureGuard(max_fraction=0.1, min_count=1))
        emptied = attrs.evolve(sample, records=sample.records[:1], extracted_at=_TUESDAY)
        result = apply(store, emptied, policy=guarded, at=_TUESDAY, by="store contract")
        assert result.report.status is Status.HELD
        journal = opened("book").journal()
        assert [run.status for run in journal] == ["applied", "held"]
        assert journal[-1].report == result.report
        assert dumps(opened("book").load()) == kept

    # -- erasure ---------------------------------------------------------------------------

    def test_erasure_leaves_no_bytes(
        self, opened: Callable[[str], Store], raw_bytes: Callable[[], bytes], policy: Policy
    ) -> None:
        """After an erasure no name, number, address or key of the person is in the raw bytes."""
        store = opened("book")
        _monday_sync(store, policy)
        apply(store, _an_override(), policy=policy, at=_MONDAY + timedelta(hours=9), by="o")
        apply(store, _tuesday_sync(), policy=policy, at=_TUESDAY, by="store contract")
        present = _leaks(raw_bytes())
        assert "gita@parent.test" in present, "raw_bytes does not read what the store holds"
        assert "7700 900111" in present or "7700900111" in present
        erased = apply(store, Erase(ERASED), policy=policy, at=_WEDNESDAY, by="dpo")
        assert erased.report.erased == (ERASED,)
        del erased  # a book held here would be a reader of the old pages
        assert _leaks(raw_bytes()) == [], "the erased person is still in the store's bytes"
        journal = store.journal()
        assert len(journal) == 4, "an erasure redacts runs, it does not drop them"
        assert not [v for v in ERASED_VALUES if v in dumps(journal)]
        store.close()
        assert _leaks(raw_bytes()) == [], "closing the store brought the person back"
        reopened = opened("book")
        assert ERASED not in reopened.load().contacts
        tuesday = _tuesday_sync()
        again = attrs.evolve(tuesday, extracted_at=_WEDNESDAY + timedelta(hours=1))
        result = apply(reopened, again, policy=policy, at=_WEDNESDAY + timedelta(hours=2), by="n")
        assert result.report.suppressed == 1, "the next sync brought the erased person back"
        assert _leaks(raw_bytes()) == []

    # -- what it shows ---------------------------------------------------------------------

    def test_repr_names_no_personal_value(
        self, opened: Callable[[str], Store], policy: Policy
    ) -> None:
        """A store's repr, after commits, names none of the book's people."""
        store = opened("book")
        _monday_sync(store, policy)
        assert not [v for v in ERASED_VALUES if v in repr(store)]
