"""The PostgreSQL store beside the SQLite store: the same book, the same operations, one run.

Run from the repository (``docs/performance.md``, "PostgreSQL beside SQLite", has the results)::

    .venv/bin/python benchmarks/postgres_store.py --sizes 100k --runs 5 --durable \
        --json benchmarks/results-postgres.json

With no ``--url`` it starts a throwaway cluster with ``.ci/postgres start`` (the
tests' server: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off)
and stops it at the end. ``--url`` names a database the role may make
databases from (``CREATEDB``); ``--admin-url`` a superuser's, which
``--durable`` needs to turn ``fsync``, ``synchronous_commit`` and
``full_page_writes`` on (``ALTER SYSTEM`` and a reload, reset afterwards) and
time the writes again as the SQLite store makes them (``synchronous=FULL``).

Each size runs in a fresh process. It builds the synthetic school of
``scale.py`` (``school(n, seed=0)``, its next night with 1% changed, fresh
snapshots), then syncs the first night into a new SQLite file and into a
new PostgreSQL database (one book, ``school``), each timed: the initial
sync is a benchmark of its own. Then, the stores and their raw baselines
taking turns run by run, medians of ``--runs``:

- ``read``: open the store, load the book, ``contact_at`` one guardian, close
  (``point_reads.py``'s ``show``); ``explain`` the same with ``explain`` of
  its ``phones``;
- ``raw read``: a new connection, the contact's record row by its key,
  ``json.loads``, close (``sqlite3``; ``psycopg``, its book given at connect);
- ``plan``: open, load, ``plan`` an email to every guardian (``scale.py``'s
  message), close; ``raw scan``: the view's guardian rows read and
  ``json.loads`` each, the floor of reading what the plan reads;
- ``resync 1%``: ``apply`` of the second night to a copy of the first
  night's book (a file copy; ``CREATE DATABASE ... TEMPLATE``), the copy's
  making not timed;
- ``commit``: open, load, ``merge`` one ``SetOverride``, commit with its
  run, close; ``raw write``: a new connection, read the record row, write
  one row, commit (the floor of a durable edit).

Wall and the client's CPU time are both kept: a PostgreSQL operation's wall
over its CPU is what it waited for the server (round trips and the server's
work). Statements and queries sent to PostgreSQL are counted. Memory:
``tracemalloc`` peaks of ``read`` and ``plan`` (untimed runs), the
process's peak RSS, and each store's size per contact. No time is asserted
anywhere; read the ratios within one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import point_reads
from scale import NIGHT0, NIGHT1, SEND, bench_policy, fresh

from sourcetruth import (
    Channel,
    ContactData,
    Message,
    Role,
    Rule,
    SetOverride,
    Status,
    contact_at,
    explain,
    merge,
    plan,
)
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.postgres import (
    BOOK_SETTING,
    SCHEMA,
    PostgresSnapshot,
    PostgresStore,
)
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.journal import run_of
from sourcetruth.testing.synthetic import school

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
BOOK = "school"
CLUSTER = Path(__file__).resolve().parents[1] / ".ci" / "postgres"
MESSAGE = Message(
    "postgres-benchmark",
    "A letter home",
    "Dear parent or carer",
    channels=(Channel.EMAIL,),
    rules=(Rule(roles=frozenset({Role.GUARDIAN})),),
)

#: Queries and statements sent to PostgreSQL by the store (reads and commits), for the record.
SENT = [0]


def _counting_query(original: Callable[..., Any]) -> Callable[..., Any]:
    def query(self: Any, db: Any, sql: str, args: tuple[Any, ...]) -> Any:
        SENT[0] += 1
        return original(self, db, sql, args)

    return query


PostgresSnapshot._query = _counting_query(PostgresSnapshot._query)  # type: ignore[method-assign]


def count_statement(_n: int) -> None:
    SENT[0] += 1


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall and CPU seconds of one call, and what it sent to PostgreSQL."""

    def __init__(self, work: Callable[[], object]) -> None:
        gc.collect()
        SENT[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        work()  # its result is let go: a loaded book holds a connection to its database
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu
        self.sent = SENT[0]
        self.store = ""


# -- the two stores, behind the same operations ---------------------------------------------


class Sqlite:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "book.sqlite"
        self.folder = folder

    def open(self) -> SqliteStore:
        return SqliteStore(self.path)

    def copy(self) -> Callable[[], SqliteStore]:
        target = self.folder / "copy.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.path, target)
        return lambda: SqliteStore(target)

    def raw_read(self, source: str, key: str) -> object:
        return point_reads.raw_read(self.path, source, key)

    def raw_write(self, source: str, key: str) -> object:
        return point_reads.raw_write(self.path, source, key)

    def raw_scan(self) -> int:
        db = sqlite3.connect(self.path)
        try:
            rows = db.execute("SELECT data FROM current WHERE role=?", (Role.GUARDIAN.value,))
            return sum(1 for (data,) in rows if json.loads(data))
        finally:
            db.close()

    def bytes_per_contact(self, contacts: int) -> float:
        return sum(p.stat().st_size for p in self.folder.glob("book.sqlite*")) / contacts


class Postgres:
    name = "postgres"

    def __init__(self, url: str, database: str) -> None:
        import psycopg
        from psycopg import sql

        self.psycopg, self.sql = psycopg, sql
        self.server = url
        self.database = database
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        self.url = _with_database(url, database)

    def open(self) -> PostgresStore:
        return PostgresStore(self.url, BOOK, statement_hook=count_statement)

    def copy(self) -> Callable[[], PostgresStore]:
        gc.collect()  # a loaded book's snapshot holds a connection, and a template must have none
        name = f"{self.database}_copy"
        with self.psycopg.connect(self.server, autocommit=True) as db:
            ident = self.sql.Identifier(name)
            db.execute(self.sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
            db.execute(
                self.sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    ident, self.sql.Identifier(self.database)
                )
            )
        url = _with_database(self.server, name)
        return lambda: PostgresStore(url, BOOK, statement_hook=count_statement)

    def _connect(self) -> Any:
        # The book is set at connect, so the raw read is one query after the connection.
        return self.psycopg.connect(
            self.url, options=f"-c {BOOK_SETTING}={BOOK} -c search_path={SCHEMA}"
        )

    def raw_read(self, source: str, key: str) -> object:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM records WHERE source=%s AND key=%s", (source, key)
            ).fetchone()
            return json.loads(row[0])

    def raw_write(self, source: str, key: str) -> object:
        with self._connect() as db:  # one transaction, committed on leaving
            row = db.execute(
                "SELECT data FROM records WHERE source=%s AND key=%s", (source, key)
            ).fetchone()
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('bench', %s) "
                "ON CONFLICT (book, name) DO UPDATE SET value=EXCLUDED.value",
                (row[0][:20],),
            )
            return row

    def raw_scan(self) -> int:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM current WHERE role=%s", (Role.GUARDIAN.value,))
            return sum(1 for (data,) in rows if json.loads(data))

    def bytes_per_contact(self, contacts: int) -> float:
        with self.psycopg.connect(self.server, autocommit=True) as db:
            size = db.execute("SELECT pg_database_size(%s)", (self.database,)).fetchone()[0]
        return float(size) / contacts


def _with_database(url: str, database: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo("", **params)


# -- the operations ---------------------------------------------------------------------------


class Operations:
    """The library's operations on one store, for the size's nights."""

    def __init__(self, store: Sqlite | Postgres, night: Night) -> None:
        self.store = store
        self.night = night
        self.edits = 0

    def read(self, cid: str) -> object:
        opened = self.store.open()
        try:
            return contact_at(opened.load(), cid, policy=self.night.policy, at=SEND)
        finally:
            opened.close()

    def explain(self, cid: str) -> object:
        opened = self.store.open()
        try:
            return explain(opened.load(), cid, "phones", policy=self.night.policy, at=SEND)
        finally:
            opened.close()

    def plan(self) -> object:
        opened = self.store.open()
        try:
            return len(plan(opened.load(), MESSAGE, policy=self.night.policy, at=SEND).deliveries)
        finally:
            opened.close()

    def commit(self, cid: str) -> object:
        # Edits go forward in time from the first night, and stay before the second.
        self.edits += 1
        at = NIGHT0 + timedelta(hours=1, seconds=self.edits)
        opened = self.store.open()
        try:
            before = opened.load()
            change = SetOverride(cid, "given_name", ContactData(given_name=f"E{self.edits}"))
            result = merge(before, change, policy=self.night.policy, at=at, by="bench")
            opened.commit(before, result, run_of(before, (change,), result.report, at=at, by="b"))
            return result
        finally:
            opened.close()

    def resync(self, opener: Callable[[], Any]) -> object:
        opened = opener()
        try:
            result = apply(opened, self.night.changed, policy=self.night.policy, at=NIGHT1, by="n")
            if result.report.status is not Status.APPLIED:
                msg = f"the 1% night was {result.report.status.value}"
                raise SystemExit(msg)
            return result
        finally:
            opened.close()

    def initial(self) -> object:
        opened = self.store.open()
        try:
            result = apply(opened, self.night.first, policy=self.night.policy, at=NIGHT0, by="n")
            return result
        finally:
            opened.close()


class Night:
    """The size's two nights as fresh snapshots, as an adapter would hand them over."""

    def __init__(self, contacts: int) -> None:
        started = time.perf_counter()
        self.contacts = contacts
        self.policy = bench_policy(contacts)
        night0 = school(contacts, seed=0)
        self.first = fresh(night0.snapshot(NIGHT0))
        self.changed = fresh(night0.next_night(seed=1).snapshot(NIGHT1))
        del night0
        tonight = {r.key for r in self.changed.records}
        guardians = sorted(
            f"mis:{r.key}"
            for r in self.first.records
            if r.data.role is Role.GUARDIAN and r.key in tonight
        )
        self.ids = guardians[:: max(1, len(guardians) // 50)]
        self.setup_s = time.perf_counter() - started


def interleaved(runs: int, works: dict[str, Callable[[int], object]]) -> dict[str, dict[str, Any]]:
    """Each of *works* run *runs* times, taking turns (each goes first in turn); medians."""
    clocks: dict[str, list[Clock]] = {name: [] for name in works}
    names = list(works)
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            clocks[name].append(Clock(lambda w=works[name], r=run: w(r)))  # type: ignore[misc]
    return {
        name: {
            "wall_s": statistics.median(c.wall for c in found),
            "cpu_s": statistics.median(c.cpu for c in found),
            "sent": statistics.median(c.sent for c in found),
            "runs_wall_s": [c.wall for c in found],
        }
        for name, found in clocks.items()
    }


def peak_mib(work: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@contextmanager
def durable(admin_url: str | None) -> Iterator[None]:
    """The server with fsync, synchronous_commit and full_page_writes on, reset afterwards."""
    if admin_url is None:
        yield
        return
    import psycopg

    names = ("fsync", "synchronous_commit", "full_page_writes")
    with psycopg.connect(admin_url, autocommit=True) as db:
        for name in names:
            db.execute(f"ALTER SYSTEM SET {name} = on")
        db.execute("SELECT pg_reload_conf()")
        db.execute("CHECKPOINT")  # what was written without fsync is on disk before timing
    time.sleep(1)
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as db:
            for name in names:
                db.execute(f"ALTER SYSTEM RESET {name}")
            db.execute("SELECT pg_reload_conf()")


def server_settings(url: str) -> dict[str, str]:
    import psycopg

    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
    with psycopg.connect(url) as db:
        return {n: db.execute(f"SHOW {n}").fetchone()[0] for n in names}


def edit_works(
    stores: tuple[Sqlite, Postgres], ops: dict[str, Operations], ids: list[str]
) -> dict[str, Callable[[int], object]]:
    """The committed override and the raw write of each store, for :func:`interleaved`."""
    works: dict[str, Callable[[int], object]] = {}
    for store in stores:
        op = ops[store.name]
        works[f"commit {store.name}"] = lambda r, op=op: op.commit(ids[r % len(ids)])
        works[f"raw write {store.name}"] = lambda r, s=store: s.raw_write(
            *ids[r % len(ids)].split(":", 1)
        )
    return works


def memory_peaks(
    found: dict[str, Any], stores: tuple[Sqlite, Postgres], ops: dict[str, Operations], cid: str
) -> None:
    """The tracemalloc peaks of one read and one plan on each store (untimed)."""
    for store in stores:
        op = ops[store.name]
        found[f"read {store.name}"]["peak_mib"] = peak_mib(lambda op=op: op.read(cid))
        found[f"plan {store.name}"]["peak_mib"] = peak_mib(op.plan)


def measure_size(size: str, args: argparse.Namespace) -> dict[str, Any]:
    contacts = SIZES[size]
    found: dict[str, Any] = {"size": size, "contacts": contacts}
    night = Night(contacts)
    found["setup_s"] = night.setup_s
    print(f"{size}: nights built in {night.setup_s:.0f} s", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="pg-bench-", dir=args.folder) as folder:
        sqlite = Sqlite(Path(folder))
        postgres = Postgres(args.url, f"bench_{size.lower()}")
        found["server"] = server_settings(postgres.url)
        stores = (sqlite, postgres)
        ops = {store.name: Operations(store, night) for store in stores}

        # 1. The initial sync: once each (the book every other operation reads).
        for store in stores:
            clock = Clock(ops[store.name].initial)
            found[f"initial {store.name}"] = {
                "wall_s": clock.wall,
                "cpu_s": clock.cpu,
                "sent": clock.sent,
                "maxrss_mib": maxrss_mib(),
            }
            print(f"{size}: initial {store.name} {clock.wall:.1f} s", file=sys.stderr, flush=True)
            del clock
        for store in stores:
            found[f"bytes_per_contact {store.name}"] = store.bytes_per_contact(contacts)

        # 2. One contact, and the raw reads.
        ids = night.ids
        works: dict[str, Callable[[int], object]] = {}
        for store in stores:
            op = ops[store.name]
            works[f"read {store.name}"] = lambda r, op=op: op.read(ids[r % len(ids)])
            works[f"explain {store.name}"] = lambda r, op=op: op.explain(ids[r % len(ids)])
            works[f"raw read {store.name}"] = lambda r, s=store: s.raw_read(
                *ids[r % len(ids)].split(":", 1)
            )
        found.update(interleaved(args.runs, works))
        print(f"{size}: reads done", file=sys.stderr, flush=True)

        # 3. Planning every guardian, and the raw scan of what it reads.
        works = {}
        for store in stores:
            works[f"plan {store.name}"] = lambda _r, op=ops[store.name]: op.plan()
            works[f"raw scan {store.name}"] = lambda _r, s=store: s.raw_scan()
        found.update(interleaved(args.plan_runs or args.runs, works))
        print(f"{size}: plans done", file=sys.stderr, flush=True)

        # 4. The 1% night, each run on a fresh copy of the first night's book.
        copies: list[Clock] = []
        for run in range(args.resync_runs or args.runs):
            for store in stores if run % 2 == 0 else stores[::-1]:
                opener = store.copy()
                clock = Clock(lambda o=opener, op=ops[store.name]: op.resync(o))  # type: ignore[misc]
                clock.store = store.name
                copies.append(clock)
        for store in stores:
            mine = [c for c in copies if c.store == store.name]
            found[f"resync {store.name}"] = {
                "wall_s": statistics.median(c.wall for c in mine),
                "cpu_s": statistics.median(c.cpu for c in mine),
                "sent": statistics.median(c.sent for c in mine),
                "runs_wall_s": [c.wall for c in mine],
            }
        print(f"{size}: resyncs done", file=sys.stderr, flush=True)

        # 5. One override committed, and the raw write; then again on a durable server.
        found.update(interleaved(args.runs, edit_works(stores, ops, ids)))
        if args.durable:
            with durable(args.admin_url):
                found["durable_server"] = server_settings(postgres.url)
                for name, row in interleaved(args.runs, edit_works(stores, ops, ids)).items():
                    found[f"{name} (durable)"] = row
        print(f"{size}: commits done", file=sys.stderr, flush=True)

        # 6. Memory (untimed): one read and one plan under tracemalloc.
        if not args.no_peaks:
            memory_peaks(found, stores, ops, ids[0])
        found["maxrss_mib"] = maxrss_mib()
        gc.collect()
    return found


# -- the parent --------------------------------------------------------------------------------


@contextmanager
def throwaway_cluster() -> Iterator[tuple[str, str]]:
    """A cluster of ``.ci/postgres``: the test role's URL and the superuser's."""
    folder = Path(tempfile.mkdtemp(prefix="pgb-", dir="/tmp"))
    folder.rmdir()  # the script makes it, and wants it empty
    done = subprocess.run(
        [str(CLUSTER), "start", str(folder)], capture_output=True, text=True, check=True
    )
    found = dict(
        line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines() if line
    )
    try:
        yield (
            found["SOURCETRUTH_TEST_POSTGRES"].replace("\\?", "?"),
            found["SOURCETRUTH_TEST_POSTGRES_ADMIN"].replace("\\?", "?"),
        )
    finally:
        subprocess.run([str(CLUSTER), "stop", str(folder)], check=False)


def entry(found: dict[str, Any], op: str, store: str) -> dict[str, Any] | None:
    """The row of *op* on *store*: ``commit (durable)`` is ``commit postgres (durable)``."""
    base, _, tail = op.partition(" (")
    found_row: dict[str, Any] | None = found.get(f"{base} {store}" + (f" ({tail}" if tail else ""))
    return found_row


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    return f"{a['wall_s'] / b['wall_s']:.1f}x" if a and b else ""


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| operation | size | SQLite wall (CPU) | PostgreSQL wall (CPU) | PG / SQLite "
        "| SQLite / its raw | PG / its raw | PG sent |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    pairs = (
        ("initial", None),
        ("read", "raw read"),
        ("explain", "raw read"),
        ("plan", "raw scan"),
        ("resync", None),
        ("commit", "raw write"),
        ("commit (durable)", "raw write (durable)"),
        ("raw read", None),
        ("raw scan", None),
        ("raw write", None),
    )
    for found in results:
        for op, raw in pairs:
            lite, pg = entry(found, op, "sqlite"), entry(found, op, "postgres")
            if pg is None:
                continue
            raw_lite = entry(found, raw, "sqlite") if raw else None
            raw_pg = entry(found, raw, "postgres") if raw else None
            lines.append(
                f"| {op} | {found['size']} | "
                + (f"{lite['wall_s']:.4g} s ({lite['cpu_s']:.3g})" if lite else "")
                + f" | {pg['wall_s']:.4g} s ({pg['cpu_s']:.3g}) | {ratio(pg, lite)} | "
                f"{ratio(lite, raw_lite)} | {ratio(pg, raw_pg)} | {pg['sent']:,.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; medians")
    parser.add_argument("--plan-runs", type=int, help="runs of plan (default: --runs)")
    parser.add_argument("--resync-runs", type=int, help="runs of the 1%% night (default: --runs)")
    parser.add_argument("--url", help="the server (default: a throwaway .ci/postgres cluster)")
    parser.add_argument("--admin-url", help="a superuser's URL, for --durable")
    parser.add_argument("--durable", action="store_true", help="time the writes with fsync on too")
    parser.add_argument("--no-peaks", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--folder", help="where the SQLite files go (default: the temp dir)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure_size(args.worker, args)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; sizes are {', '.join(SIZES)}")
    with throwaway_cluster() if args.url is None else _given(args) as (url, admin):
        results = []
        for size in sizes:
            command = [sys.executable, __file__, *sys.argv[1:], "--worker", size, "--url", url]
            if admin:
                command += ["--admin-url", admin]
            started = time.perf_counter()
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
            found = json.loads(done.stdout.splitlines()[-1])
            found["worker_wall_s"] = time.perf_counter() - started
            results.append(found)
            print(table([found]), flush=True)
    print(table(results))
    if args.json is not None:
        document = {
            "command": " ".join(["python", "benchmarks/postgres_store.py", *sys.argv[1:]]),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


@contextmanager
def _given(args: argparse.Namespace) -> Iterator[tuple[str, str | None]]:
    yield args.url, args.admin_url


if __name__ == "__main__":
    main()
