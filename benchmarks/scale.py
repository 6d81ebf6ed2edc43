"""What the library costs at scale, as ratios to bare baselines measured in the same run.

Run from the repository (``docs/performance.md`` has the latest results)::

    .venv/bin/python benchmarks/scale.py --sizes S,M --runs 3 --json benchmarks/results.json

For each size (S 3,000 contacts, M 100,000, L 1,000,000; see
:mod:`sourcetruth.testing.synthetic`) it starts two fresh subprocesses on the
same synthetic school: one times every operation, the library and its bare
baseline taking turns on the same data, the median of ``--runs``
each; the other, untimed, measures memory with :mod:`tracemalloc`. It prints
a table and writes it as JSON. No time is asserted anywhere: ratios are what
to compare, since machines are shared and noisy.

The operations, and their baselines (plain dicts keyed by source key, no
provenance, no normalisation):

1. ``initial``: the first full sync into an empty book (``merge``). Baseline:
   build the dict of tonight's records, compare with last night's (empty),
   list what is new; plus, as the issue's target says, normalising every
   phone number and email address once with the library's normalisers
   (caches cleared). The library's caches are cleared before each run too.
2. ``resync-same``: a full resync, nothing changed. Baseline: the dict,
   compared record by record with last night's, listing new, changed (and
   which fields) and gone keys.
3. ``resync-1%``: a full resync with 1% changed phones or emails, 0.5% of
   pupils leaving (and their guardians with no other pupil left) and 0.5%
   joining. Baseline as 2.
4. ``plan-guardians``: planning an email to every guardian (``plan`` with
   ``Rule(roles={GUARDIAN})``). Baseline: each guardian's first email address
   from the dict, deduplicated (raw text).
5. ``explain-1000``: ``explain`` of ``emails`` on 1,000 contacts at a past
   time (between the two nights). Baseline: for each, a bisect in that key's
   list of (time, data) versions and the field's value.
6. ``sqlite-load-commit``: loading the book from a ``SqliteStore`` and
   applying one resync (the 1% night) to it (``sourcetruth.adapters.stores.base.apply``:
   load, merge, commit with its journal entry). Baseline: ``sqlite3`` reads the
   same JSON rows and ``json.loads`` each, diffs tonight's dict with last
   night's, and writes the changed rows' JSON in one transaction (same
   ``journal_mode=WAL`` and ``synchronous=FULL``). Each run starts from
   its own copy of the same file.

Tonight's snapshots are fresh objects (a JSON round trip of the generator's
records), as an adapter reading tonight's file would give, so that unchanged
records compare by value and not by identity. The cyclic garbage collector
stays on, as in real use; each timed run starts after a ``gc.collect()``.

Memory: "peak MiB" is the :mod:`tracemalloc` peak of Python allocations made
during the operation, over what was allocated before it, measured in a
separate untimed run (SQLite's own page cache is not Python's and is not
counted); "book B/contact" is what a book loaded from the store holds, per
contact (tracemalloc, after the load's garbage is freed). The timing
process's ``ru_maxrss`` (the whole process: generator, snapshots, books) is
reported per size as well.

L runs only when the sizes measured before it in the same run suggest it
finishes in under ~15 minutes and fits in memory; otherwise the table says it
was skipped and why (``--force-l`` runs it anyway). ``--profile SIZE`` prints
the functions that dominate each operation (cProfile, by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import attrs

from sourcetruth import (
    FIELDS,
    Book,
    Channel,
    ContactData,
    Message,
    Record,
    Role,
    Rule,
    Snapshot,
    Status,
    dumps,
    explain,
    loads,
    merge,
    normalise_email,
    normalise_phone,
    plan,
)
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.policy import DepartureGuard, Policy
from sourcetruth.serialise import converter
from sourcetruth.testing.synthetic import SIZES, policy, school

NIGHT0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
NIGHT1 = NIGHT0 + timedelta(days=1)
PAST = NIGHT0 + timedelta(hours=12)  # what explain asks about: between the two nights
SEND = NIGHT1 + timedelta(hours=6)
EXPLAINED = 1_000

OPERATIONS = (
    ("initial", "1 initial full sync"),
    ("resync-same", "2 resync, nothing changed"),
    ("resync-1%", "3 resync, 1% changed"),
    ("plan-guardians", "4 plan email to guardians"),
    ("explain-1000", "5 explain 1,000 contacts"),
    ("sqlite-load-commit", "6 SQLite load + commit"),
)

# The targets, as a ratio to the baseline (op 1: to bare + normalising once).
TARGETS = {"initial": 2.0, "resync-same": 3.0, "resync-1%": 4.0, "plan-guardians": 3.0}

L_BUDGET_S = 15 * 60
L_MEMORY_BUDGET_MIB = 12 * 1024  # of a shared 24 GiB machine


def bench_policy(contacts: int) -> Policy:
    """The synthetic policy, with a departure guard sized for the school.

    The default guard (500 departures) would hold the 1% night of a school
    of a few hundred thousand; a local authority sets its own.
    """
    return attrs.evolve(policy(), guard=DepartureGuard(max_count=max(500, contacts // 50)))


# -- the bare baselines ------------------------------------------------------------------


def bare_sync(
    last: Mapping[str, ContactData], records: Iterable[Record]
) -> tuple[dict[str, ContactData], list[str], list[tuple[str, list[str]]], list[str]]:
    """Tonight as a dict by key; what is new, what changed (and which fields), what left."""
    tonight = {r.key: r.data for r in records}
    new: list[str] = []
    changed: list[tuple[str, list[str]]] = []
    for key, data in tonight.items():
        before = last.get(key)
        if before is None:
            new.append(key)
        elif before != data:
            changed.append((key, [f for f in FIELDS if getattr(before, f) != getattr(data, f)]))
    left = [key for key in last if key not in tonight]
    return tonight, new, changed, left


def normalise_all(records: Iterable[Record]) -> int:
    """Normalise every phone number and email address once, with the library's normalisers."""
    count = 0
    for record in records:
        for phone in record.data.phones:
            normalise_phone(phone.number, "GB")
            count += 1
        for email in record.data.emails:
            normalise_email(email.address)
            count += 1
    return count


def clear_caches() -> None:
    normalise_phone.cache_clear()
    normalise_email.cache_clear()


def bare_guardian_emails(current: Mapping[str, ContactData]) -> dict[str, list[str]]:
    by_address: dict[str, list[str]] = {}
    for key, data in current.items():
        if data.role is Role.GUARDIAN and data.emails:
            by_address.setdefault(data.emails[0].address, []).append(key)
    return by_address


def bare_explain(
    history: Mapping[str, list[tuple[datetime, ContactData | None]]], keys: list[str], at: datetime
) -> list[object]:
    found: list[object] = []
    for key in keys:
        versions = history[key]
        i = bisect_right(versions, at, key=itemgetter(0))
        data = versions[i - 1][1] if i else None
        found.append(None if data is None else data.emails)
    return found


def bare_store(path: Path, last: Mapping[str, ContactData], records: Iterable[Record]) -> int:
    """Load the same JSON rows, diff tonight with last night, write the changed rows."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    rows = {
        (s, k): json.loads(d) for s, k, d in db.execute("SELECT source, key, data FROM records")
    }
    tonight, new, changed, left = bare_sync(last, records)
    db.execute("BEGIN IMMEDIATE")
    for key in [*new, *(k for k, _ in changed)]:
        text = json.dumps(converter.unstructure(tonight[key]), sort_keys=True)
        db.execute(
            "INSERT OR REPLACE INTO records (source, key, data) VALUES (?, ?, ?)",
            ("mis", key, text),
        )
    for key in left:
        db.execute("UPDATE records SET data=? WHERE source=? AND key=?", ("null", "mis", key))
    db.execute("COMMIT")
    db.close()
    return len(rows)


# -- one size, in its own process ----------------------------------------------------------


class Night:
    """A school, its two nights as fresh snapshots, and everything the operations need."""

    def __init__(self, size: str, folder: Path) -> None:
        started = time.perf_counter()
        self.contacts = SIZES[size]
        self.policy = bench_policy(self.contacts)
        night0 = school(self.contacts, seed=0)
        night1 = night0.next_night(seed=1)
        # Fresh objects, as an adapter gives: nothing shared with the generator or each other.
        self.first = fresh(night0.snapshot(NIGHT0))
        self.same = fresh(night0.snapshot(NIGHT1))
        self.changed = fresh(night1.snapshot(NIGHT1))
        del night0, night1
        self.book0 = self.sync(Book(), self.first)
        self.book1 = self.sync(self.book0, self.changed)
        self.last0 = {r.key: r.data for r in self.first.records}
        self.last1 = {r.key: r.data for r in self.changed.records}
        self.history: dict[str, list[tuple[datetime, ContactData | None]]] = {
            k: [(NIGHT0, d)] for k, d in self.last0.items()
        }
        for key, data in self.last1.items():
            if self.last0.get(key) != data:
                self.history.setdefault(key, []).append((NIGHT1, data))
        for key in self.last0.keys() - self.last1.keys():
            self.history[key].append((NIGHT1, None))
        both = sorted(self.last0.keys() & self.last1.keys())
        step = max(1, len(both) // EXPLAINED)
        self.explained = both[::step][:EXPLAINED]
        self.message = Message(
            "scale-benchmark",
            "A letter home",
            "Dear parent or carer",
            channels=(Channel.EMAIL,),
            rules=(Rule(roles=frozenset({Role.GUARDIAN})),),
        )
        self.folder = folder
        self.store0 = folder / "book0.sqlite"
        store = SqliteStore(self.store0)
        apply(store, self.first, policy=self.policy, at=NIGHT0, by="nightly")
        store.close()
        self.setup_s = time.perf_counter() - started

    def sync(self, book: Book, snapshot: Snapshot) -> Book:
        result = merge(book, snapshot, policy=self.policy, at=snapshot.extracted_at, by="nightly")
        if result.report.status is not Status.APPLIED:
            msg = f"the benchmark's sync was {result.report.status.value}"
            raise SystemExit(msg)
        return result.book

    def copy(self, name: str) -> Path:
        path = self.folder / name
        shutil.copyfile(self.store0, path)
        return path

    # The library's side of each operation, and its baseline. Each returns a callable
    # after the untimed preparation it needs.

    def library(self, op: str) -> Callable[[], object]:
        if op == "initial":
            clear_caches()
            return lambda: self.sync(Book(), self.first)
        if op == "resync-same":
            clear_caches()
            return lambda: self.sync(self.book0, self.same)
        if op == "resync-1%":
            clear_caches()
            return lambda: self.sync(self.book0, self.changed)
        if op == "plan-guardians":
            clear_caches()
            return lambda: plan(self.book1, self.message, policy=self.policy, at=SEND)
        if op == "explain-1000":
            clear_caches()
            return lambda: [
                explain(self.book1, f"mis:{k}", "emails", policy=self.policy, at=PAST)
                for k in self.explained
            ]
        if op == "sqlite-load-commit":
            clear_caches()
            path = self.copy("library.sqlite")

            def load_and_commit() -> object:
                store = SqliteStore(path)
                try:
                    return apply(store, self.changed, policy=self.policy, at=NIGHT1, by="nightly")
                finally:
                    store.close()

            return load_and_commit
        raise ValueError(op)

    def baseline(self, op: str) -> Callable[[], object]:
        if op == "initial":
            clear_caches()
            return lambda: (bare_sync({}, self.first.records), normalise_all(self.first.records))
        if op == "resync-same":
            return lambda: bare_sync(self.last0, self.same.records)
        if op == "resync-1%":
            return lambda: bare_sync(self.last0, self.changed.records)
        if op == "plan-guardians":
            return lambda: bare_guardian_emails(self.last1)
        if op == "explain-1000":
            return lambda: bare_explain(self.history, self.explained, PAST)
        if op == "sqlite-load-commit":
            path = self.copy("baseline.sqlite")
            return lambda: bare_store(path, self.last0, self.changed.records)
        raise ValueError(op)

    def bare_initial_parts(self) -> tuple[Callable[[], object], Callable[[], object]]:
        """Operation 1's baseline in its two parts, for the record."""
        return (lambda: bare_sync({}, self.first.records)), (
            lambda: normalise_all(self.first.records)
        )


def fresh(snapshot: Snapshot) -> Snapshot:
    return loads(dumps(snapshot), Snapshot)


def prepared(work: Callable[[], object]) -> Callable[[], object]:
    """*work*, after clearing the normalisers' caches."""
    clear_caches()
    return work


def timed(prepare: Callable[[], Callable[[], object]]) -> float:
    work = prepare()
    gc.collect()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def medians_interleaved(runs: int, *prepares: Callable[[], Callable[[], object]]) -> list[float]:
    """The median time of each of *prepares*, their runs taken in turn.

    On a shared machine a slow minute then slows a run of each, rather than
    every run of one: the ratios of the medians are what stay comparable.
    """
    times: list[list[float]] = [[] for _ in prepares]
    for _ in range(runs):
        for found, prepare in zip(times, prepares, strict=True):
            found.append(timed(prepare))
    return [statistics.median(found) for found in times]


def maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss / 1024


def time_size(size: str, runs: int) -> dict[str, Any]:
    start_rss = maxrss_mib()
    with tempfile.TemporaryDirectory(prefix="sourcetruth-scale-") as folder:
        night = Night(size, Path(folder))
        rows = []
        for op, _label in OPERATIONS:
            library_s, baseline_s = medians_interleaved(
                runs, partial(night.library, op), partial(night.baseline, op)
            )
            row: dict[str, Any] = {
                "operation": op,
                "size": size,
                "contacts": night.contacts,
                "library_s": library_s,
                "baseline_s": baseline_s,
                "ratio": library_s / baseline_s,
                "contacts_per_s": (EXPLAINED if op == "explain-1000" else night.contacts)
                / library_s,
            }
            if op == "initial":
                bare, floor = night.bare_initial_parts()
                row["bare_sync_s"], row["normalise_once_s"] = medians_interleaved(
                    runs, partial(prepared, bare), partial(prepared, floor)
                )
            rows.append(row)
            print(f"  {size} {op}: library {library_s:.3f}s baseline {baseline_s:.3f}s", flush=True)
        rss = maxrss_mib()
        book = book_memory(night)
    return {
        "size": size,
        "contacts": night.contacts,
        "setup_s": night.setup_s,
        "maxrss_mib": rss,
        "maxrss_growth_mib": rss - start_rss,
        "rows": rows,
        **book,
    }


def book_memory(night: Night) -> dict[str, float]:
    """What a book loaded from the SQLite store holds, per contact (tracemalloc, untimed).

    Measured last, after every timing: only the load's own allocations are
    traced, so what the process already holds does not count.
    """
    gc.collect()
    tracemalloc.start()
    store = SqliteStore(night.store0)
    try:
        book = store.load()
        load_peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        store.close()
        tracemalloc.stop()
    assert len(book.contacts) == night.contacts
    return {
        "book_bytes_per_contact": held / night.contacts,
        "book_load_peak_bytes_per_contact": load_peak / night.contacts,
    }


def memory_size(size: str) -> dict[str, Any]:
    """Per-operation tracemalloc peaks (untimed)."""
    with tempfile.TemporaryDirectory(prefix="sourcetruth-scale-") as folder:
        night = Night(size, Path(folder))
        tracemalloc.start()
        peaks: dict[str, float] = {}
        for op, _label in OPERATIONS:
            work = night.library(op)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = work()
            peaks[op] = (tracemalloc.get_traced_memory()[1] - before) / 2**20
            del result
        tracemalloc.stop()
    return {"peak_mib": peaks}


def profile_size(size: str, top: int) -> None:
    """Where each operation spends its time (cProfile, cumulative)."""
    with tempfile.TemporaryDirectory(prefix="sourcetruth-scale-") as folder:
        night = Night(size, Path(folder))
        for op, _label in OPERATIONS:
            work = night.library(op)
            gc.collect()
            profiler = cProfile.Profile()
            profiler.runcall(work)
            print(f"\n== {size} {op}: top {top} by cumulative time ==")
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(top)


# -- the parent: one subprocess per size and kind of measurement ---------------------------


def worker(size: str, mode: str, runs: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", size, "--mode", mode, "--runs", str(runs)]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    for line in lines[:-1]:
        print(line)
    found: dict[str, Any] = json.loads(lines[-1])
    found["wall_s"] = time.perf_counter() - started
    return found


def l_is_feasible(measured: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    if not measured:
        return False, "no smaller size was measured in this run to estimate it from"
    size = max(measured, key=lambda s: SIZES[s])
    factor = SIZES["L"] / SIZES[size]
    wall = sum(part["wall_s"] for part in measured[size]["parts"])
    estimate = wall * factor
    memory = measured[size]["timing"]["maxrss_mib"] * factor
    if estimate > L_BUDGET_S:
        return False, (
            f"estimated {estimate / 60:.0f} min from {size} ({wall:.0f} s x {factor:.0f}), "
            f"over the {L_BUDGET_S // 60} min budget"
        )
    if memory > L_MEMORY_BUDGET_MIB:
        return False, (
            f"estimated peak RSS {memory / 1024:.1f} GiB from {size}, over the "
            f"{L_MEMORY_BUDGET_MIB // 1024} GiB budget of a shared machine"
        )
    return True, f"estimated {estimate / 60:.0f} min from {size}"


def table(results: list[dict[str, Any]], memory: Mapping[str, Mapping[str, Any]]) -> str:
    head = (
        f"{'operation':<28} {'size':>4} {'library s':>10} {'baseline s':>11} {'ratio':>7} "
        f"{'target':>7} {'contacts/s':>11} {'peak MiB':>9}"
    )
    lines = [head, "-" * len(head)]
    labels = dict(OPERATIONS)
    for row in results:
        target = TARGETS.get(row["operation"])
        peak = memory.get(row["size"], {}).get("peak_mib", {}).get(row["operation"])
        lines.append(
            f"{labels[row['operation']]:<28} {row['size']:>4} {row['library_s']:>10.3f} "
            f"{row['baseline_s']:>11.3f} {row['ratio']:>7.1f} "
            f"{'' if target is None else f'<={target:g}':>7} {row['contacts_per_s']:>11,.0f} "
            f"{'' if peak is None else f'{peak:.1f}':>9}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S,M", help="comma-separated, of S, M, L (default S,M)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; medians")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--force-l", action="store_true", help="run L without the estimate")
    parser.add_argument("--runs-l", type=int, help="runs per measurement at L (default: --runs)")
    parser.add_argument(
        "--peaks-l",
        action="store_true",
        help="also measure each operation's peak memory at L (a second L-sized process)",
    )
    parser.add_argument("--profile", metavar="SIZE", help="profile every operation and stop")
    parser.add_argument("--top", type=int, default=20, help="functions a profile shows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.mode == "time":
            print(json.dumps(time_size(args.worker, args.runs)))
        else:
            print(json.dumps(memory_size(args.worker)))
        return
    if args.profile:
        profile_size(args.profile, args.top)
        return

    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; sizes are {', '.join(SIZES)}")
    sizes.sort(key=lambda s: SIZES[s])
    measured: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for size in sizes:
        if size == "L" and not args.force_l:
            feasible, why = l_is_feasible(measured)
            if not feasible:
                skipped[size] = why
                print(f"L skipped: {why}", flush=True)
                continue
            print(f"L: {why}", flush=True)
        runs = args.runs_l if size == "L" and args.runs_l else args.runs
        print(f"{size} ({SIZES[size]:,} contacts): timing, {runs} runs each", flush=True)
        timing = worker(size, "time", runs)
        parts = [timing]
        memory: dict[str, Any] = {}
        if size != "L" or args.peaks_l:
            print(f"{size}: peak memory per operation (tracemalloc, untimed)", flush=True)
            memory = worker(size, "memory", 1)
            parts.append(memory)
        measured[size] = {"timing": timing, "memory": memory, "parts": parts, "runs": runs}

    results = [row for size in measured for row in measured[size]["timing"]["rows"]]
    memory_by_size = {size: measured[size]["memory"] for size in measured}
    print()
    runs_by_size = ", ".join(f"{size} {found['runs']}" for size, found in measured.items())
    print(f"medians of runs ({runs_by_size}); peak MiB: tracemalloc, separate untimed run")
    print(table(results, memory_by_size))
    print()
    for size, found in measured.items():
        timing, memory = found["timing"], found["memory"]
        first = next(r for r in timing["rows"] if r["operation"] == "initial")
        print(
            f"{size}: book {timing['book_bytes_per_contact']:,.0f} B/contact loaded from SQLite "
            f"(load peak {timing['book_load_peak_bytes_per_contact']:,.0f} B/contact); "
            f"timing process max RSS {timing['maxrss_mib']:,.0f} MiB; "
            f"op 1 baseline = bare {first['bare_sync_s']:.3f}s + "
            f"normalising once {first['normalise_once_s']:.3f}s"
        )
    for size, why in skipped.items():
        print(f"{size}: skipped: {why}")
    if args.json is not None:
        document = {
            "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]]),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "runs": {size: found["runs"] for size, found in measured.items()},
            "results": results,
            "sizes": {
                size: {
                    "contacts": SIZES[size],
                    "setup_s": found["timing"]["setup_s"],
                    "maxrss_mib": found["timing"]["maxrss_mib"],
                    "book_bytes_per_contact": found["timing"]["book_bytes_per_contact"],
                    "book_load_peak_bytes_per_contact": found["timing"][
                        "book_load_peak_bytes_per_contact"
                    ],
                    **{k: v for k, v in found["memory"].items() if k != "wall_s"},
                    "timing_wall_s": found["timing"]["wall_s"],
                    "memory_wall_s": found["memory"].get("wall_s"),
                }
                for size, found in measured.items()
            },
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
