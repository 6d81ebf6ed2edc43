"""A large merge pauses the cyclic garbage collector, and leaves it as it found it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import sourcetruth._sync
from sourcetruth import Book, ContactData, Record, Snapshot, SourceDataError, merge
from sourcetruth._collector import LARGE, merge_paused
from sourcetruth.testing.synthetic import policy

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    """Each test starts with the collector on, and leaves it on."""
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def large_snapshot(records: int = LARGE) -> Snapshot:
    """A full snapshot of *records* records, each with a name and nothing else."""
    return Snapshot("mis", AT, [Record(f"K{i}", ContactData(f"N{i}")) for i in range(records)])


class TestMergePaused:
    def test_a_large_block_runs_paused_and_a_small_one_not(self) -> None:
        """Paused within a block for LARGE records, not for fewer; on again after either."""
        with merge_paused(LARGE):
            assert not gc.isenabled()
        assert gc.isenabled()
        with merge_paused(LARGE - 1):
            assert gc.isenabled()
        assert gc.isenabled()

    def test_a_block_that_raises_turns_the_collector_back_on(self) -> None:
        """The collector is on again after a block that raised."""
        with pytest.raises(ValueError, match="boom"), merge_paused(LARGE):
            raise ValueError("boom")
        assert gc.isenabled()

    def test_a_collector_the_caller_turned_off_stays_off(self) -> None:
        """The pause never turns on a collector that was off when it began."""
        gc.disable()
        with merge_paused(LARGE):
            assert not gc.isenabled()
        assert not gc.isenabled()

    def test_overlapping_pauses_end_with_the_last(self) -> None:
        """Two threads' pauses share one: the collector comes back when both have ended."""
        inside = threading.Barrier(2)
        first_done = threading.Event()
        seen: list[bool] = []

        def second() -> None:
            with merge_paused(LARGE):
                inside.wait()
                first_done.wait()
                seen.append(gc.isenabled())  # the first pause has ended; this one holds

        thread = threading.Thread(target=second)
        thread.start()
        with merge_paused(LARGE):
            inside.wait()
        first_done.set()
        thread.join()
        assert seen == [False]
        assert gc.isenabled()


class TestMerge:
    def test_a_large_snapshot_merges_paused_and_leaves_the_collector_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A snapshot of LARGE records is written with the collector paused, on after."""
        seen: list[bool] = []
        write = sourcetruth._sync._write

        def spying(*args: object) -> None:
            seen.append(gc.isenabled())
            write(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(sourcetruth._sync, "_write", spying)
        result = merge(Book(), large_snapshot(), policy=policy(), at=AT, by="nightly")
        assert len(result.book.contacts) == LARGE
        assert seen == [False]
        assert gc.isenabled()

    def test_a_merge_that_raises_leaves_the_collector_on(self) -> None:
        """A large snapshot refused (two records share a key) leaves the collector on."""
        records = [Record(f"K{i}", ContactData()) for i in range(LARGE)]
        snapshot = Snapshot("mis", AT, [*records, Record("K0", ContactData())])
        with pytest.raises(SourceDataError):
            merge(Book(), snapshot, policy=policy(), at=AT, by="nightly")
        assert gc.isenabled()
