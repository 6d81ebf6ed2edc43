"""The nightly resync from a CSV file, against a polars join-diff and a bare dict diff.

Run from the repository (polars is optional: ``pip install -e '.[bench]'``)::

    .venv/bin/python benchmarks/resync_peer.py --sizes 100k,1M --runs 3 --keep ~/peer-files \\
        --json benchmarks/results-peer.json

For each size (``tiny`` 500 contacts, ``3k``, ``100k``, ``1M``) it writes last
night's and tonight's MIS export of a synthetic school
(:mod:`sourcetruth.testing.synthetic`, seed 0 and ``next_night(seed=1)``: 1%
of phones and emails changed, 0.5% of pupils leaving, 0.5% joining) as CSV
files with the tabular adapter's own writer and one :class:`CsvMapping` of
every field (relationship priorities and parental responsibility are not in
it), and a SQLite book holding last night, synced from last night's file
through the same adapter. Then, each in a fresh process and ``--runs``
times (taking turns), it times:

- **polars**: ``scan_csv`` of both files (every column text, no type
  inference), anti-joins for the new and gone keys, an inner join and a
  per-column comparison for the changed rows and which columns changed;
- **bare**: the ``csv`` module reads both files into dicts of rows by key,
  and a loop lists new, changed (with their columns) and gone keys;
- **library**: :class:`CsvImportAdapter` reads tonight's file (a full
  snapshot of an MIS source), and
  :func:`sourcetruth.adapters.stores.base.apply` merges it into the book
  holding last night and commits it to its :class:`SqliteStore` (each run on
  a fresh copy of the book, made before the process starts).

The time is the work's own, measured in the child after its imports: wall,
and CPU (the process's over all its threads, so both of polars' count; on a
shared machine the CPU time is the steadier). The peak is the child's whole
``ru_maxrss`` (read with ``os.wait4``), with its RSS after the imports given
apart (polars alone is about 100 MiB of it). It prints
the medians, the ratios library/polars and library/bare, and how many new,
changed and gone keys each side found, which should agree. Nothing is
asserted about time.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.util
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _child import Ran, run, summary

from sourcetruth import EmailType, PhoneType, SourceKind
from sourcetruth.adapters.sources.tabular import (
    CsvImportAdapter,
    CsvMapping,
    EmailColumn,
    PhoneColumn,
)

SIZES = {"tiny": 500, "3k": 3_000, "100k": 100_000, "1M": 1_000_000}
RECIPE = "1"  # bump when the files or the book are written differently
SIDES = ("polars", "bare", "library")
SOURCE = "mis"
NIGHT0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
NIGHT1 = NIGHT0 + timedelta(days=1)
KEY = "Id"

#: Every field the synthetic school has, in the columns a school's export might use.
MAPPING = CsvMapping(
    key=KEY,
    given_name="First name",
    family_name="Last name",
    role="Type",
    phones=(PhoneColumn("Mobile", PhoneType.MOBILE), PhoneColumn("Home", PhoneType.HOME)),
    emails=(
        EmailColumn("Email", EmailType.HOME),
        EmailColumn("Work email", EmailType.WORK),
        EmailColumn("Other email", EmailType.OTHER),
    ),
    year_group="Year",
    registration_group="Reg",
    guardian_of="Children",
)


def maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 1024)


# -- the files and last night's book (in their own process) --------------------------------


def bench_policy(contacts: int) -> Any:
    """One MIS source covering what the mapping fills, and a guard sized for the school."""
    from sourcetruth.policy import DepartureGuard, Policy, Source
    from sourcetruth.testing.synthetic import NIGHTLY

    return Policy(
        sources=(Source(SOURCE, SourceKind.MIS, covers=MAPPING.covers, schedule=NIGHTLY),),
        guard=DepartureGuard(max_count=max(500, contacts // 50)),
    )


def adapter(path: Path) -> CsvImportAdapter:
    return CsvImportAdapter(path, MAPPING, source=SOURCE, kind=SourceKind.MIS)


def write_files(contacts: int, folder: Path) -> dict[str, Any]:
    from sourcetruth.adapters.sources.tabular import write_csv
    from sourcetruth.adapters.stores.base import apply
    from sourcetruth.adapters.stores.sqlite import SqliteStore
    from sourcetruth.testing.synthetic import school

    night0 = school(contacts, seed=0)
    night1 = night0.next_night(seed=1)
    for name, night, at in (("last.csv", night0, NIGHT0), ("tonight.csv", night1, NIGHT1)):
        text = write_csv(night.snapshot(at), MAPPING)
        (folder / name).write_text(text, encoding="utf-8", newline="")
    del night0, night1
    started = time.perf_counter()
    store = SqliteStore(folder / "book.sqlite")
    try:
        reading = adapter(folder / "last.csv").read(extracted_at=NIGHT0)
        apply(store, reading.snapshot, policy=bench_policy(contacts), at=NIGHT0, by="nightly")
    finally:
        store.close()
    return {"first_sync_s": time.perf_counter() - started}


def ready(label: str, keep: Path, rebuild: bool) -> Path:
    folder = keep / f"peer-{label}"
    marker = folder / "built.json"
    if not rebuild and marker.exists():
        built = json.loads(marker.read_text(encoding="utf-8"))
        if built.get("recipe") == RECIPE:
            print(f"{label}: reusing the files and book in {folder}", flush=True)
            return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"{label}: writing both nights' CSV files and last night's book", flush=True)
    done = run([sys.executable, __file__, "--write", os.fspath(folder), str(SIZES[label])])
    if done.code != 0:
        raise SystemExit(f"writing the files failed:\n{done.err}")
    built = {"recipe": RECIPE, "contacts": SIZES[label], **json.loads(done.out.splitlines()[-1])}
    marker.write_text(json.dumps(built, indent=2) + "\n", encoding="utf-8")
    return folder


# -- the three sides (each in its own process) ---------------------------------------------


def by_polars(folder: Path) -> dict[str, float]:
    import polars as pl

    last = pl.scan_csv(folder / "last.csv", infer_schema=False)
    tonight = pl.scan_csv(folder / "tonight.csv", infer_schema=False)
    columns = [c for c in tonight.collect_schema().names() if c != KEY]
    new = tonight.join(last, on=KEY, how="anti").select(KEY)
    gone = last.join(tonight, on=KEY, how="anti").select(KEY)
    both = tonight.join(last, on=KEY, how="inner", suffix="_last")
    which = [pl.col(c).ne_missing(pl.col(f"{c}_last")).alias(c) for c in columns]
    changed = both.select(KEY, *which).filter(pl.any_horizontal(columns))
    found_new, found_gone, found_changed = pl.collect_all([new, gone, changed])
    return {"new": found_new.height, "changed": found_changed.height, "gone": found_gone.height}


def bare_rows(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        return header, {row[0]: row for row in reader}


def by_bare(folder: Path) -> dict[str, float]:
    header, last = bare_rows(folder / "last.csv")
    _, tonight = bare_rows(folder / "tonight.csv")
    new: list[str] = []
    changed: list[tuple[str, list[str]]] = []
    for key, row in tonight.items():
        before = last.get(key)
        if before is None:
            new.append(key)
        elif before != row:
            changed.append(
                (key, [c for c, a, b in zip(header, before, row, strict=True) if a != b])
            )
    gone = [key for key in last if key not in tonight]
    return {"new": len(new), "changed": len(changed), "gone": len(gone)}


def by_library(folder: Path, book: Path) -> dict[str, float]:
    from sourcetruth import Status
    from sourcetruth.adapters.stores.base import apply
    from sourcetruth.adapters.stores.sqlite import SqliteStore

    contacts = json.loads((folder / "built.json").read_text(encoding="utf-8"))["contacts"]
    started = time.perf_counter()
    reading = adapter(folder / "tonight.csv").read(extracted_at=NIGHT1)
    read = time.perf_counter() - started
    store = SqliteStore(book)
    try:
        result = apply(
            store, reading.snapshot, policy=bench_policy(contacts), at=NIGHT1, by="nightly"
        )
    finally:
        store.close()
    report = result.report
    if report.status is not Status.APPLIED:
        raise SystemExit(f"the library's sync was {report.status.value}")
    changed = {c.contact_id for c in report.changes} - set(report.created) - set(report.departed)
    return {
        "new": len(report.created),
        "changed": len(changed),
        "gone": len(report.departed),
        "read_s": read,
    }


def side(name: str, folder: Path, book: Path | None) -> dict[str, Any]:
    if name == "polars":
        import polars  # noqa: F401  (imported before the clock starts, as the library is)
    elif name == "library":
        import sourcetruth.adapters.stores.sqlite  # noqa: F401
    gc.collect()
    imported = maxrss_mib()
    started = time.perf_counter()
    cpu = time.process_time()
    if name == "polars":
        counts = by_polars(folder)
    elif name == "bare":
        counts = by_bare(folder)
    else:
        assert book is not None
        counts = by_library(folder, book)
    work = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {"work_s": work, "cpu_s": cpu, "rss_after_imports_mib": imported, **counts}


def one_run(name: str, folder: Path, scratch: Path) -> tuple[Ran, dict[str, Any]]:
    argv = [sys.executable, __file__, "--side", name, os.fspath(folder)]
    book = scratch / "book.sqlite"
    if name == "library":
        for stale in scratch.glob("book.sqlite*"):
            stale.unlink()
        shutil.copyfile(folder / "book.sqlite", book)
        argv.append(os.fspath(book))
    ran = run(argv)
    if ran.code != 0:
        return ran, {"error": ran.first_error_line()}
    return ran, json.loads(ran.out.splitlines()[-1])


def measure(label: str, folder: Path, runs: int, sides: list[str]) -> dict[str, Any]:
    found: dict[str, list[tuple[Ran, dict[str, Any]]]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory(prefix="sourcetruth-peer-", dir=folder) as scratch:
        for n in range(runs):
            for name in sides:
                ran, said = one_run(name, folder, Path(scratch))
                found[name].append((ran, said))
                detail = said.get("error") or f"work {said['work_s']:.3f} s"
                print(
                    f"  {label} run {n + 1} {name}: {detail}, peak {ran.peak_mib:.0f} MiB",
                    flush=True,
                )
    rows: dict[str, Any] = {}
    for name, pairs in found.items():
        row = summary([ran for ran, _ in pairs])
        row.pop("said", None)
        good = [said for _, said in pairs if "error" not in said]
        if good:
            works = sorted(said["work_s"] for said in good)
            row["work_s"] = works[len(works) // 2]
            row["runs_work_s"] = [said["work_s"] for said in good]
            cpus = sorted(said["cpu_s"] for said in good)
            row["cpu_s"] = cpus[len(cpus) // 2]
            row["rss_after_imports_mib"] = good[0]["rss_after_imports_mib"]
            row.update({k: good[0][k] for k in ("new", "changed", "gone")})
            if name == "library":
                reads = sorted(said["read_s"] for said in good)
                row["adapter_read_s"] = reads[len(reads) // 2]
        rows[name] = row
    ratios = {
        f"library/{base}{suffix}": rows["library"][measure] / rows[base][measure]
        for measure, suffix in (("work_s", ""), ("cpu_s", " cpu"))
        for base in ("polars", "bare")
        if rows.get("library", {}).get(measure) and rows.get(base, {}).get(measure)
    }
    return {"size": label, "contacts": SIZES[label], "sides": rows, "ratios": ratios}


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| size | side | work s | cpu s | peak MiB | after imports MiB | new | changed | gone |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for name, row in result["sides"].items():
            if "work_s" not in row:
                lines.append(f"| {result['size']} | {name} | failed: {row.get('error')} |")
                continue
            lines.append(
                f"| {result['size']} | {name} | {row['work_s']:.3f} | {row['cpu_s']:.3f} | "
                f"{row['peak_mib']:.0f} | "
                f"{row['rss_after_imports_mib']:.0f} | {row['new']:,} | {row['changed']:,} | "
                f"{row['gone']:,} |"
            )
        ratios = ", ".join(f"{k} {v:.1f}x" for k, v in result["ratios"].items())
        read = result["sides"].get("library", {}).get("adapter_read_s")
        if read is not None:
            ratios += f" (the adapter's read: {read:.3f} s of the library's)"
        lines.append(f"| {result['size']} | ratios | {ratios} | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side; medians")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--keep", type=Path, help="keep the files and books here, and reuse them")
    parser.add_argument("--rebuild", action="store_true", help="write kept files anew")
    parser.add_argument("--prepare", action="store_true", help="only write the kept files")
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write:
        print(json.dumps(write_files(int(args.write[1]), Path(args.write[0]))))
        return
    if args.side:
        name, folder, *book = args.side
        print(json.dumps(side(name, Path(folder), Path(book[0]) if book else None)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; sizes are {', '.join(SIZES)}")
    sizes.sort(key=SIZES.__getitem__)
    sides = list(SIDES)
    skipped = None
    if importlib.util.find_spec("polars") is None:
        skipped = "polars is not installed (pip install -e '.[bench]'): its side is skipped"
        print(skipped, flush=True)
        sides.remove("polars")
    with tempfile.TemporaryDirectory(prefix="sourcetruth-peer-") as scratch:
        keep = args.keep.expanduser() if args.keep else Path(scratch)
        results = []
        for label in sizes:
            folder = ready(label, keep, args.rebuild)
            if args.prepare:
                continue
            print(f"{label} ({SIZES[label]:,} contacts): {args.runs} runs each", flush=True)
            results.append(measure(label, folder, args.runs, sides))
    if args.prepare:
        return
    print()
    print(f"medians of {args.runs} runs; work s measured in the child after its imports")
    print(table(results))
    if args.json is not None:
        document = {
            "command": " ".join(["python", "benchmarks/resync_peer.py", *sys.argv[1:]]),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "runs": args.runs,
            # Other work on a shared machine slows every row: read the ratios.
            "load_average_1_5_15": os.getloadavg(),
            "skipped": skipped,
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
