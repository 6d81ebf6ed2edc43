"""A provider's night: many schools' books in one PostgreSQL database, synced on a Dask cluster.

Run from the repository (``pip install -e '.[dev]'`` brings Dask and psycopg)::

    .venv/bin/python benchmarks/provider_night.py --schools 200 --contacts 3000 \\
        --json provider-night.json

Each school is a synthetic one (:mod:`sourcetruth.testing.synthetic`, its
own seed) whose export is a zipped OneRoster bundle carried in its
:class:`~sourcetruth.app.distributed.SchoolJob` as bytes, and whose book is
``postgresql://.../DB?book=school-NNNN``: the workers share nothing but the
database. Night 1 is each school's initial sync into an empty book; night 2
a full resync with 1% of phones and emails changed, 0.5% of pupils leaving
and 0.5% joining (``School.next_night``).

Every night runs three ways, in this order, each on books of its own:

- ``postgres-cluster``: the jobs on a local Dask cluster (``--workers``
  processes, one thread each) into the PostgreSQL books;
- ``sqlite-cluster``: the same jobs on the same cluster into SQLite files
  (one per school, on this machine's disk): the baseline of the store;
- ``sqlite-local``: the same jobs one by one in this process
  (``run_many`` without a client) into SQLite files: the baseline of the
  cluster.

The results of the three must be equal (they are compared, and a
difference stops the run). A school's time on the cluster is its task's
time on its worker (Dask's task stream); one by one, its ``run_many`` call.
It prints, per night and way: the total wall time, schools per minute,
contacts per second, the median and 95th percentile of a school's time, and
ratios to the baselines. Then it profiles one school's two nights on each
store in this process: reading the export, opening the store, loading the
book, merging, committing, and the commit's statements, each a round trip
to the server, with the server's bare round trip (``SELECT 1``) measured
next to it.

Without ``--url`` it starts a throwaway server (``.ci/postgres start`` in a
temporary directory) and stops it at the end; with ``--url`` it uses that
database (a role that is no superuser; the password from ``PGPASSWORD`` or
``.pgpass``), in books named ``bench-RUN-school-NNNN`` so as not to meet
another run's. The server shares this machine's cores with the workers, as
it would not in production. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sourcetruth.adapters.sources.oneroster import OneRosterAdapter
from sourcetruth.adapters.stores import _rows
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.postgres import PostgresStore, book_url
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.app.distributed import SchoolJob, SchoolResult, run_many
from sourcetruth.journal import Run
from sourcetruth.report import MergeResult
from sourcetruth.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / ".ci" / "postgres"
NIGHT1 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
NIGHT2 = NIGHT1 + timedelta(days=1)
WAYS = ("postgres-cluster", "sqlite-cluster", "sqlite-local")
POLICY = synthetic.policy()


# -- the schools' exports -----------------------------------------------------------


def zipped_bundle(school: synthetic.School, at: datetime) -> bytes:
    """*school*'s MIS as a zipped OneRoster bundle, written in a folder gone on return."""
    with tempfile.TemporaryDirectory() as folder:
        synthetic.write_oneroster(school, Path(folder), extracted_at=at)
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(Path(folder).iterdir()):
                archive.write(file, file.name)
    return data.getvalue()


def exports_of(number: int, contacts: int) -> tuple[bytes, bytes]:
    """School *number*'s exports of night 1 and of night 2 (1% changed)."""
    first = synthetic.school(contacts, seed=number)
    second = first.next_night(seed=1_000_000 + number)
    return zipped_bundle(first, NIGHT1), zipped_bundle(second, NIGHT2)


def make_exports(schools: int, contacts: int, client: Any) -> list[tuple[bytes, bytes]]:
    """Every school's two exports, made on the cluster's workers."""
    futures = client.map(exports_of, range(schools), [contacts] * schools, pure=False)
    made: list[tuple[bytes, bytes]] = client.gather(futures)
    return made


# -- the server ---------------------------------------------------------------------


def start_server() -> tuple[str, Path]:
    """A throwaway server of this run's own: its test role's URL, and its directory."""
    directory = Path(tempfile.mkdtemp(prefix="st-bench-pg-", dir="/tmp"))
    done = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(directory)], check=False)
        sys.exit(f"could not start a PostgreSQL server: {done.stderr.strip()}")
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[1].startswith("SOURCETRUTH_TEST_POSTGRES="):
            return words[1].split("=", 1)[1], directory
    sys.exit("the server started but printed no URL")


def server_facts(url: str) -> dict[str, Any]:
    """The server's version, and its bare round trip (the median of 200 ``SELECT 1``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        version = db.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        trips = []
        for _ in range(200):
            start = time.perf_counter()
            db.execute("SELECT 1").fetchone()
            trips.append(time.perf_counter() - start)
    return {"version": version, "round_trip_ms": statistics.median(trips) * 1000}


# -- one night, three ways ----------------------------------------------------------


def jobs_for(way: str, night: int, exports: Sequence[tuple[bytes, bytes]], where: dict[str, Any]):
    """The night's jobs for *way*: the same exports, books of the way's own."""
    at = NIGHT1 if night == 1 else NIGHT2
    made = []
    for number, pair in enumerate(exports):
        name = f"school-{number:04d}"
        if way == "postgres-cluster":
            store = book_url(where["url"], f"{where['prefix']}{name}")
        else:
            store = str(where[way] / f"{name}.sqlite")
        made.append(SchoolJob(name, store, pair[night - 1], POLICY, at, extracted_at=at))
    return made


def run_night(way: str, todo: list[SchoolJob], client: Any) -> tuple[list[SchoolResult], dict]:
    """Run *todo* the way *way* says: the results, and the night's times."""
    from distributed import get_task_stream

    start = time.perf_counter()
    if way == "sqlite-local":
        per_school = []
        results = []
        for job in todo:
            begun = time.perf_counter()
            results.extend(run_many([job]))
            per_school.append(time.perf_counter() - begun)
    else:
        with get_task_stream(client=client) as stream:
            results = run_many(todo, client=client)
        per_school = [
            part["stop"] - part["start"]
            for task in stream.data
            for part in task["startstops"]
            if part["action"] == "compute"
        ]
    total = time.perf_counter() - start
    return results, {"total_s": total, "per_school_s": sorted(per_school)}


def summarise(times: dict[str, Any], schools: int, contacts: int) -> dict[str, Any]:
    per = times["per_school_s"]
    p95 = per[min(len(per) - 1, round(0.95 * (len(per) - 1)))]
    return {
        "total_s": round(times["total_s"], 2),
        "schools_per_min": round(schools / times["total_s"] * 60, 1),
        "contacts_per_s": round(schools * contacts / times["total_s"]),
        "median_school_s": round(statistics.median(per), 3),
        "p95_school_s": round(p95, 3),
    }


def one_night(
    night: int,
    exports: Sequence[tuple[bytes, bytes]],
    where: dict[str, Any],
    client: Any,
    args: Any,
) -> dict[str, Any]:
    """The night run every way, its results compared, its times summed up."""
    seen: dict[str, list[SchoolResult]] = {}
    rows: dict[str, Any] = {}
    for way in WAYS:
        todo = jobs_for(way, night, exports, where)
        results, times = run_night(way, todo, client)
        seen[way] = results
        failed = [r.error for r in results if r.failed]
        if failed:
            sys.exit(f"{way}, night {night}: {len(failed)} failed: {failed[0]}")
        rows[way] = summarise(times, args.schools, args.contacts)
        rows[way]["statuses"] = sorted({r.status for r in results})
        print(f"night {night} {way}: {rows[way]}", flush=True)
    if not seen[WAYS[0]] == seen[WAYS[1]] == seen[WAYS[2]]:
        sys.exit(f"night {night}: the three ways' results differ")
    base = rows["sqlite-local"]
    for way in WAYS:
        row = rows[way]
        row["total_vs_sqlite_local"] = round(row["total_s"] / base["total_s"], 2)
        row["school_vs_sqlite_local"] = round(row["median_school_s"] / base["median_school_s"], 2)
        row["total_vs_sqlite_cluster"] = round(
            row["total_s"] / rows["sqlite-cluster"]["total_s"], 2
        )
    return rows


# -- one school, profiled -----------------------------------------------------------


class TimedStore:
    """A store whose load and commit are timed, and whose commit's statements are counted."""

    def __init__(self, store: Any, counter: list[int]) -> None:
        self.store = store
        self.counter = counter
        self.load_s = 0.0
        self.commit_s = 0.0
        self.commit_cpu_s = 0.0

    def load(self) -> Any:
        start = time.perf_counter()
        book = self.store.load()
        self.load_s += time.perf_counter() - start
        return book

    def commit(self, before: Any, result: MergeResult, run: Run) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        self.store.commit(before, result, run)
        self.commit_s += time.perf_counter() - start
        self.commit_cpu_s += time.process_time() - cpu

    def journal(self) -> Any:
        return self.store.journal()

    def close(self) -> None:
        self.store.close()


class CountedReads:
    """Counts the queries of every loaded book's snapshot (each a round trip on a server)."""

    def __init__(self) -> None:
        self.count = 0
        self._kept: dict[str, Any] = {}

    def __enter__(self) -> CountedReads:
        for name in ("rows", "pairs", "one"):
            real = getattr(_rows.ConnectionSnapshot, name)
            self._kept[name] = real

            def counted(snapshot: Any, *args: Any, real: Any = real) -> Any:
                self.count += 1
                return real(snapshot, *args)

            setattr(_rows.ConnectionSnapshot, name, counted)
        return self

    def __exit__(self, *_: object) -> None:
        for name, real in self._kept.items():
            setattr(_rows.ConnectionSnapshot, name, real)


def profile_school(
    exports: tuple[bytes, bytes], opener: Callable[[Callable[[int], None]], Any]
) -> list[dict[str, Any]]:
    """One school's two nights in this process, phase by phase."""
    rows = []
    for night, data in enumerate(exports, start=1):
        at = NIGHT1 if night == 1 else NIGHT2
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "export.zip")
            path.write_bytes(data)
            start = time.perf_counter()
            reading = OneRosterAdapter(path, source="mis").read(extracted_at=at)
            read_s = time.perf_counter() - start
        counter = [0]

        def count(n: int, counter: list[int] = counter) -> None:
            counter[0] = max(counter[0], n)

        start = time.perf_counter()
        store = TimedStore(opener(count), counter)
        open_s = time.perf_counter() - start
        start = time.perf_counter()
        with CountedReads() as reads:
            result = apply(store, reading.snapshot, policy=POLICY, at=at, by="benchmark")
        apply_s = time.perf_counter() - start
        store.close()
        rows.append(
            {
                "night": night,
                "status": result.report.status.value,
                "read_s": round(read_s, 3),
                "open_s": round(open_s, 3),
                "load_s": round(store.load_s, 3),
                "merge_s": round(apply_s - store.load_s - store.commit_s, 3),
                "commit_s": round(store.commit_s, 3),
                "commit_cpu_s": round(store.commit_cpu_s, 3),
                "statements": counter[0],
                "reads": reads.count,
            }
        )
    return rows


# -- the run ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--schools", type=int, default=200, help="schools (default 200)")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts a school (3000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)

    import distributed

    server_dir = None
    url = args.url
    if url is None:
        url, server_dir = start_server()
    scratch = Path(tempfile.mkdtemp(prefix="st-bench-night-"))
    where: dict[str, Any] = {"url": url, "prefix": f"bench-{secrets.token_hex(3)}-"}
    for way in WAYS[1:]:
        where[way] = scratch / way
        where[way].mkdir()
    out: dict[str, Any] = {
        "schools": args.schools,
        "contacts": args.contacts,
        "workers": args.workers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "nights": {},
    }
    try:
        out["server"] = server_facts(url)
        cluster = distributed.LocalCluster(
            n_workers=args.workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
            silence_logs=40,
        )
        with cluster, distributed.Client(cluster) as client:
            start = time.perf_counter()
            exports = make_exports(args.schools, args.contacts, client)
            sizes = sorted(len(pair[0]) for pair in exports)
            print(
                f"{args.schools} schools of {args.contacts} contacts: exports made in "
                f"{time.perf_counter() - start:.0f} s (a night-1 zip is "
                f"{statistics.median(sizes) / 1024:.0f} KiB)",
                flush=True,
            )
            out["export_kib"] = round(statistics.median(sizes) / 1024)
            for night in (1, 2):
                out["nights"][str(night)] = one_night(night, exports, where, client, args)
        profile_book = f"{where['prefix']}profile"
        out["profile"] = {
            "postgres": profile_school(
                exports[0],
                lambda hook: PostgresStore(url, profile_book, statement_hook=hook),
            ),
            "sqlite": profile_school(
                exports[0],
                lambda hook: SqliteStore(scratch / "profile.sqlite", statement_hook=hook),
            ),
        }
    finally:
        if server_dir is not None:
            subprocess.run([str(CLUSTER_SCRIPT), "stop", str(server_dir)], check=False)
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


def report(out: dict[str, Any]) -> None:
    print()
    print(
        f"{out['schools']} schools x {out['contacts']} contacts, {out['workers']} workers, "
        f"PostgreSQL {out['server']['version']} (round trip "
        f"{out['server']['round_trip_ms']:.3f} ms), {out['machine']['cpus']} CPUs"
    )
    print()
    print(
        "| night | way | total s | schools/min | contacts/s | school median s | school p95 s "
        "| total / sqlite-local | school / sqlite-local |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for night, rows in out["nights"].items():
        for way, row in rows.items():
            print(
                f"| {night} | {way} | {row['total_s']} | {row['schools_per_min']} "
                f"| {row['contacts_per_s']} | {row['median_school_s']} | {row['p95_school_s']} "
                f"| {row['total_vs_sqlite_local']} | {row['school_vs_sqlite_local']} |"
            )
    print()
    print("One school in this process (seconds):")
    print()
    print(
        "| store | night | read export | open | load | merge | commit (CPU) "
        "| book reads | commit statements |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for store, rows in out["profile"].items():
        for row in rows:
            print(
                f"| {store} | {row['night']} | {row['read_s']} | {row['open_s']} "
                f"| {row['load_s']} | {row['merge_s']} | {row['commit_s']} "
                f"({row['commit_cpu_s']}) | {row['reads']} | {row['statements']} |"
            )


if __name__ == "__main__":
    sys.exit(main())
