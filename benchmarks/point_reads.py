"""What reading or editing one contact costs as the book grows, against a raw ``sqlite3`` read.

Run from the repository::

    .venv/bin/python benchmarks/point_reads.py --sizes 3000,100000 --runs 8 --cli

For each size it builds a book folder (``BookFolder.create`` with the starter
settings, then the first full sync of a synthetic school of that many MIS
records, :mod:`sourcetruth.testing.synthetic`), kept under ``--folder`` so a
second run reuses it. Then, in the same process and taking turns run by run:

- ``show``: open the store, load the book, ``contact_at`` one contact, close;
- ``explain``: the same with ``explain`` of its ``phones``;
- ``override``: open, load, ``merge(SetOverride)`` and commit (with its run), close;
- ``raw``: ``sqlite3.connect``, ``SELECT`` that contact's record row, ``json.loads``, close;
- ``raw write``: the same read, then one row written and committed (``synchronous=FULL``):
  the floor of any durable edit, to read ``override`` against.

It prints each median and its ratio to ``raw`` (the target: 20x at 100,000),
and the :mod:`tracemalloc` peak of ``show`` (Python allocations only), which
should not grow with the book. With ``--cli`` it also runs ``sourcetruth show``,
``explain`` and ``override set`` under ``/usr/bin/time -v`` (wall and peak
RSS), and ``sourcetruth policy``, which loads no book: the command's fixed
cost. No time is asserted anywhere; machines are shared, ratios are what to read.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sourcetruth import ContactData, Policy, SetOverride, contact_at, explain, merge
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.journal import run_of
from sourcetruth.testing.synthetic import school

#: The first sync: two days ago, so that the commands' changes (at the clock's now) come after it.
AT = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


def build(folder: Path, contacts: int) -> tuple[Path, list[str]]:
    """A book folder of *contacts* synced MIS records (made once); some contact ids."""
    book = folder / f"book-{contacts}"
    ids_file = folder / f"ids-{contacts}.json"
    if not ids_file.exists():
        made = BookFolder.create(book, environ={})
        snapshot = school(contacts, seed=1).snapshot(AT - timedelta(minutes=5))
        result = made.apply(snapshot, at=AT, by="nightly")
        made.close()
        ids = [c for c in result.report.created if c.startswith("mis:")]
        ids_file.write_text(json.dumps(ids[:: max(1, len(ids) // 50)]), encoding="utf-8")
    return book, json.loads(ids_file.read_text(encoding="utf-8"))


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


class Operations:
    """Each operation on the book at *path*, for one contact id."""

    def __init__(self, path: Path, policy: Policy, latest: datetime) -> None:
        self.path = path
        self.policy = policy
        self.at = latest + timedelta(minutes=1)  # merges go forward: after the last, CLI runs too

    def show(self, cid: str) -> object:
        store = SqliteStore(self.path)
        try:
            return contact_at(store.load(), cid, policy=self.policy, at=self.at)
        finally:
            store.close()

    def explain(self, cid: str) -> object:
        store = SqliteStore(self.path)
        try:
            return explain(store.load(), cid, "phones", policy=self.policy, at=self.at)
        finally:
            store.close()

    def override(self, cid: str) -> object:
        self.at += timedelta(minutes=1)
        at = self.at
        store = SqliteStore(self.path)
        try:
            before = store.load()
            change = SetOverride(cid, "given_name", ContactData(given_name=f"E{at.minute}"))
            result = merge(before, change, policy=self.policy, at=at, by="bench")
            store.commit(before, result, run_of(before, (change,), result.report, at=at, by="b"))
            return result
        finally:
            store.close()

    def raw(self, cid: str) -> object:
        return raw_read(self.path, *cid.split(":", 1))

    def raw_write(self, cid: str) -> object:
        return raw_write(self.path, *cid.split(":", 1))


def raw_read(path: Path, source: str, key: str) -> object:
    """The bare read: a new connection, one record's row by its key, its JSON parsed."""
    db = sqlite3.connect(path)
    try:
        row = db.execute(
            "SELECT data FROM records WHERE source=? AND key=?", (source, key)
        ).fetchone()
        return json.loads(row[0])
    finally:
        db.close()


def raw_write(path: Path, source: str, key: str) -> object:
    """The bare write: a new connection, read one row and write one, committed durably."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        row = db.execute(
            "SELECT data FROM records WHERE source=? AND key=?", (source, key)
        ).fetchone()
        db.execute("INSERT OR REPLACE INTO meta VALUES ('bench', ?)", (row[0][:20],))
        db.execute("COMMIT")
        return row
    finally:
        db.close()


def measure(book: Path, ids: list[str], runs: int) -> dict[str, float]:
    """Medians of each operation on the book in folder *book*, taking turns run by run."""
    with BookFolder.open(book, environ={}) as folder:
        policy = folder.settings.policy
        latest = folder.load().updated_at or AT
    ops = Operations(book / "book.sqlite", policy, latest)
    operations: dict[str, Callable[[str], object]] = {
        "show": ops.show,
        "explain": ops.explain,
        "override": ops.override,
        "raw": ops.raw,
        "raw write": ops.raw_write,
    }
    names = list(operations)
    times: dict[str, list[float]] = {name: [] for name in operations}
    for run in range(runs):
        cid = ids[run % len(ids)]
        # Each takes its turn first: the first to open the file after a commit recreates its WAL.
        for name in names[run % len(names) :] + names[: run % len(names)]:
            operation = operations[name]
            times[name].append(timed(lambda op=operation, c=cid: op(c)))  # type: ignore[misc]
    medians = {name: statistics.median(values) for name, values in times.items()}
    tracemalloc.start()
    ops.show(ids[-1])
    medians["show_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return medians


def cli(book: Path, cid: str, runs: int) -> dict[str, tuple[float, float]]:
    """Median wall seconds and peak RSS MiB of each command, under /usr/bin/time -v."""
    commands = {
        "policy": ["policy"],
        "show": ["show", cid],
        "explain": ["explain", cid, "phones"],
        "override set": ["override", "set", cid, "given_name", "Edited", "--by", "bench"],
    }
    with BookFolder.open(book, environ={}) as folder:
        at = max(folder.load().updated_at or AT, datetime.now(UTC))
    found: dict[str, tuple[float, float]] = {}
    for name, args in commands.items():
        walls, rss = [], []
        for _ in range(runs):
            at += timedelta(seconds=1)  # an edit goes after the book's latest change
            when = ["--at", at.isoformat()] if name == "override set" else []
            ran = subprocess.run(
                [
                    "/usr/bin/time",
                    "-v",
                    sys.executable,
                    "-m",
                    "sourcetruth",
                    "--book",
                    str(book),
                    *args,
                    *when,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if ran.returncode != 0:
                msg = f"sourcetruth {name} failed: {ran.stderr[-400:]}"
                raise RuntimeError(msg)
            walls.append(_clock(ran.stderr))
            rss.append(
                int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", ran.stderr)[1]) / 1024
            )  # type: ignore[index]
        found[name] = (statistics.median(walls), statistics.median(rss))
    return found


def _clock(text: str) -> float:
    found = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    assert found is not None, text
    seconds = 0.0
    for part in found[1].split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3000,100000", help="comma-separated contact counts")
    parser.add_argument("--runs", type=int, default=8, help="runs per measurement; medians")
    parser.add_argument("--folder", type=Path, help="where the books are kept (default: temp)")
    parser.add_argument("--cli", action="store_true", help="measure the commands as well")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="point-reads-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"books in {folder}")
    for size in (int(s) for s in args.sizes.split(",")):
        book, ids = build(folder, size)
        # The commands first: they change the book at the clock's time, and the
        # library's edits below go on from the book's latest change, minutes later.
        commands = cli(book, ids[0], args.runs) if args.cli else {}
        found = measure(book, ids, args.runs)
        raw = found["raw"]
        print(f"\n{size:,} contacts (raw sqlite3 point read: {raw * 1000:.2f} ms)")
        for name in ("show", "explain", "override"):
            print(f"  {name:<9} {found[name] * 1000:8.2f} ms  {found[name] / raw:6.1f}x raw")
        write = found["raw write"]
        print(
            f"  raw write (one row, synchronous=FULL) {write * 1000:.2f} ms: "
            f"override is {found['override'] / write:.1f}x it"
        )
        print(f"  show's tracemalloc peak: {found['show_peak_mib']:.2f} MiB")
        for name, (wall, rss) in commands.items():
            print(f"  CLI {name:<13} {wall:6.2f} s  {rss:7.1f} MiB peak RSS")


if __name__ == "__main__":
    main()
