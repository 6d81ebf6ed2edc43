"""The command line end to end, as a new user runs it: wall time and peak memory per command.

Run from the repository (``docs/performance.md`` has the latest results)::

    .venv/bin/python benchmarks/cli.py --sizes 3k,100k --runs 3 --keep ~/cli-books \\
        --json benchmarks/results-cli.json

For each size (``tiny`` 50 contacts, ``3k``, ``100k``, ``1M``) it builds a book
folder the way a new user does: ``sourcetruth init``, then ``sourcetruth sync
mis`` of a OneRoster bundle written with the library's own writer from a
synthetic school (:mod:`sourcetruth.testing.synthetic`, seed 0). The starter
policy is kept, but for its departure guard, raised to ``max(500, contacts /
50)`` as in ``benchmarks/scale.py``: the default of 500 would hold the 1%
night of a school past about 60,000 contacts. The next night of the same
school (``next_night(seed=1)``: 1% of phones and emails changed, 0.5% of
pupils leaving, 0.5% joining) is written as a second bundle.

Then each command runs in a fresh process, ``--runs`` times (the commands
taking turns), and the table gives the medians of the wall time, from
starting the process to its exit, and of its peak RSS (the child's own
``ru_maxrss``, read with ``os.wait4``):

- ``show ID`` and ``explain ID emails`` of a guardian present on both nights;
- ``override set ID phones NUMBER``, on a fresh copy of the folder each run
  (written out to disk before the command starts, untimed);
- ``send --guardians`` as a dry run (the default), output thrown away;
- ``sync mis`` of the next night's bundle, on a fresh copy of the folder each run;
- ``policy``: reads no book, so it is the command's fixed cost;
- a raw ``sqlite3`` point query of the same contact's row in ``book.sqlite``,
  in a fresh ``python -c`` process (``--raw-query`` sets the SQL, given the
  source and the key), and the same query in this process, without a new
  interpreter.

Built folders are kept under ``--keep DIR`` (a temporary folder without it),
one per size, with a ``built.json`` saying how. A kept folder is reused while
the benchmark's recipe and the store's schema are the same: the schema is
read from a book that ``sourcetruth init`` makes now, so a code change that
changes the schema rebuilds the folders. ``--rebuild`` rebuilds them anyway.
A rebuild keeps the bundles, which depend on the recipe only. Building 1M
takes many minutes (its initial sync is in the JSON); ``--prepare`` only
builds the kept folders.
No time is asserted anywhere: compare the commands with ``policy`` and the
raw query, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _child import Ran, run, summary

#: Contacts per size; ``tiny`` is for the test that runs this script.
SIZES = {"tiny": 50, "3k": 3_000, "100k": 100_000, "1M": 1_000_000}

#: Bump when the way a folder is built changes, so kept folders are rebuilt.
RECIPE = "1"

LONDON = ZoneInfo("Europe/London")
NIGHT0 = datetime(2026, 11, 23, 2, 0, tzinfo=LONDON)
NIGHT1 = NIGHT0 + timedelta(days=1)
READ = timedelta(minutes=30)  # each export is taken half an hour before its sync
LOOK_AT = NIGHT0 + timedelta(hours=7)  # the reading commands' time, between the nights
EDIT_AT = NIGHT0 + timedelta(hours=8)
NEW_NUMBER = "07700 900555"
SOURCE = "mis"
RAW_QUERY = "SELECT data FROM records WHERE source = ? AND key = ?"
USER = {"SOURCETRUTH_USER": "benchmark"}

COMMANDS = (
    ("show", "`show` one contact"),
    ("explain", "`explain` one field"),
    ("override-set", "`override set` one field"),
    ("send-guardians", "`send --guardians` (dry run)"),
    ("sync-1%", "`sync` of a 1%-changed night"),
    ("policy", "`policy` (no book load: the fixed cost)"),
    ("raw-sqlite3", "raw `sqlite3` point query, new process"),
)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def sourcetruth(*args: str) -> list[str]:
    """The command, as ``python -m sourcetruth`` of this interpreter: the same program."""
    return [sys.executable, "-m", "sourcetruth", *args]


def environ() -> dict[str, str]:
    return {**os.environ, **USER}


# -- building a folder --------------------------------------------------------------------


def write_exports(contacts: int, folder: Path) -> dict[str, Any]:
    """Both nights' bundles, and the contact the commands look at (runs in its own process)."""
    from sourcetruth import Role
    from sourcetruth.testing.synthetic import school, write_oneroster

    night0 = school(contacts, seed=0)
    night1 = night0.next_night(seed=1)
    write_oneroster(night0, folder / "night0", extracted_at=NIGHT0 - READ)
    write_oneroster(night1, folder / "night1", extracted_at=NIGHT1 - READ)
    tonight = {r.key for r in night1.records}
    guardians = [
        r.key
        for r in night0.records
        if r.data.role is Role.GUARDIAN and r.data.emails and r.key in tonight
    ]
    return {"contact_key": guardians[len(guardians) // 2], "records": len(night0.records)}


def schema_fingerprint() -> str:
    """What a new book's store looks like to this code: its tables and recorded schema."""
    with tempfile.TemporaryDirectory(prefix="sourcetruth-cli-schema-") as scratch:
        book = Path(scratch) / "book"
        done = run(sourcetruth("init", "--book", os.fspath(book)), environ=environ())
        if done.code != 0:
            raise SystemExit(f"sourcetruth init failed: {done.first_error_line()}")
        db = sqlite3.connect(book / "book.sqlite")
        try:
            tables = db.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()
            meta = db.execute("SELECT * FROM meta ORDER BY 1").fetchall()
        finally:
            db.close()
    text = json.dumps([tables, meta], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def set_guard(policy: Path, contacts: int) -> None:
    text = policy.read_text(encoding="utf-8")
    if "\nmax_count = 500\n" not in text:
        raise SystemExit("the starter policy has no 'max_count = 500' to raise")
    raised = text.replace("max_count = 500", f"max_count = {max(500, contacts // 50)}", 1)
    policy.write_text(raised, encoding="utf-8")


def exports_of(label: str, root: Path) -> dict[str, Any]:
    """Both nights' bundles under *root*: kept ones if written the same way, else new ones.

    The bundles depend on the recipe only, not on the library's store, so a
    rebuild for a new schema keeps them (writing 1M takes minutes).
    """
    exports = root / "exports"
    marker = exports / "written.json"
    if marker.exists():
        written: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        if written.get("recipe") == RECIPE:
            return written
    if exports.exists():
        shutil.rmtree(exports)
    print(f"{label}: writing both nights' OneRoster bundles", flush=True)
    argv = [sys.executable, __file__, "--write-exports", os.fspath(exports), str(SIZES[label])]
    done = run(argv)
    if done.code != 0:
        raise SystemExit(f"writing the exports failed:\n{done.err}")
    written = {"recipe": RECIPE, **json.loads(done.out.splitlines()[-1])}
    marker.write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    return written


def build(label: str, root: Path, fingerprint: str) -> dict[str, Any]:
    """Build *label*'s folder under *root*: the exports (unless kept), init, the first sync."""
    for stale in (root / "book", root / "built.json"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    root.mkdir(parents=True, exist_ok=True)
    contacts = SIZES[label]
    started = time.perf_counter()
    found = exports_of(label, root)
    exports = root / "exports"
    book = root / "book"
    done = run(sourcetruth("init", "--book", os.fspath(book)), environ=environ())
    if done.code != 0:
        raise SystemExit(f"sourcetruth init failed: {done.first_error_line()}")
    set_guard(book / "policy.toml", contacts)
    print(f"{label}: the first sync (sourcetruth sync {SOURCE} ...)", flush=True)
    first = run(sync_args(book, exports / "night0", NIGHT0), environ=environ(), keep_output=False)
    if first.code != 0:
        raise SystemExit(f"the first sync failed: {first.first_error_line()}")
    built = {
        "recipe": RECIPE,
        "schema": fingerprint,
        "commit": git_commit(),
        "contacts": contacts,
        "contact_id": f"{SOURCE}:{found['contact_key']}",
        "contact_key": found["contact_key"],
        "initial_sync": {"wall_s": first.wall_s, "peak_mib": first.peak_mib},
        "book_bytes": (book / "book.sqlite").stat().st_size,
        "build_s": time.perf_counter() - started,
    }
    (root / "built.json").write_text(json.dumps(built, indent=2) + "\n", encoding="utf-8")
    return built


def ready(label: str, keep: Path, fingerprint: str, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """*label*'s folder: the kept one if it was built the same way, else a new one."""
    root = keep / label
    marker = root / "built.json"
    if not rebuild and marker.exists():
        built: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        if built.get("recipe") == RECIPE and built.get("schema") == fingerprint:
            print(f"{label}: reusing the folder built at commit {built.get('commit')}", flush=True)
            return root, built
        print(f"{label}: the kept folder was built differently (schema or recipe); rebuilding")
    return root, build(label, root, fingerprint)


def sync_args(book: Path, export: Path, night: datetime) -> list[str]:
    return sourcetruth(
        "sync",
        SOURCE,
        os.fspath(export),
        "--book",
        os.fspath(book),
        "--at",
        stamp(night),
        "--extracted-at",
        stamp(night - READ),
    )


# -- the commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One row of the table: the argv for a book folder, and whether it changes the folder."""

    name: str
    argv: Callable[[Path], list[str]]
    changes_book: bool = False


def commands(root: Path, built: dict[str, Any], raw_query: str) -> list[Command]:
    contact = built["contact_id"]
    look = ("--at", stamp(LOOK_AT))
    raw = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
        "row = db.execute(sys.argv[2], sys.argv[3:]).fetchone()\n"
        "sys.exit(0 if row is not None else 'no such row')\n"
    )
    return [
        Command("show", lambda b: sourcetruth("show", contact, "--book", os.fspath(b), *look)),
        Command(
            "explain",
            lambda b: sourcetruth("explain", contact, "emails", "--book", os.fspath(b), *look),
        ),
        Command(
            "override-set",
            lambda b: sourcetruth(
                "override",
                "set",
                contact,
                "phones",
                NEW_NUMBER,
                "--book",
                os.fspath(b),
                "--at",
                stamp(EDIT_AT),
            ),
            changes_book=True,
        ),
        Command(
            "send-guardians",
            lambda b: sourcetruth(
                "send",
                "--guardians",
                "--id",
                "benchmark-letter",
                "--subject",
                "A letter home",
                "--body",
                "Dear parent or carer",
                "--book",
                os.fspath(b),
                *look,
            ),
        ),
        Command(
            "sync-1%",
            lambda b: sync_args(b, root / "exports" / "night1", NIGHT1),
            changes_book=True,
        ),
        Command("policy", lambda b: sourcetruth("policy", "--book", os.fspath(b), *look)),
        Command(
            "raw-sqlite3",
            lambda b: [
                sys.executable,
                "-c",
                raw,
                os.fspath(b / "book.sqlite"),
                raw_query,
                SOURCE,
                built["contact_key"],
            ],
        ),
    ]


def one_run(command: Command, book: Path, scratch: Path) -> Ran:
    """*command* on *book*, or on a fresh copy of it (not timed) when it changes the book."""
    if not command.changes_book:
        return run(command.argv(book), environ=environ())
    copy = scratch / "book"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(book, copy)
    # The copy's pages are written out now, untimed: else the command's own
    # durable commit (an fsync) would pay for writing the whole copied file,
    # which at 1M is most of an edit's time and no part of a real one.
    os.sync()
    try:
        return run(command.argv(copy), environ=environ())
    finally:
        shutil.rmtree(copy)


def raw_in_process(path: Path, raw_query: str, key: str, runs: int) -> dict[str, Any]:
    """The same point query without a new interpreter: connect, query, close."""
    times = []
    for _ in range(max(runs, 5)):
        started = time.perf_counter()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute(raw_query, (SOURCE, key)).fetchone()
        finally:
            db.close()
        times.append(time.perf_counter() - started)
    return {"wall_s": statistics.median(times), "runs_wall_s": times}


def measure(
    label: str, root: Path, built: dict[str, Any], runs: int, raw_query: str
) -> dict[str, Any]:
    book = root / "book"
    found: dict[str, list[Ran]] = {}
    with tempfile.TemporaryDirectory(prefix="sourcetruth-cli-run-", dir=root) as scratch:
        for n in range(runs):
            for command in commands(root, built, raw_query):
                ran = one_run(command, book, Path(scratch))
                found.setdefault(command.name, []).append(ran)
                result = "" if ran.code == 0 else f"  FAILED: {ran.first_error_line()}"
                print(
                    f"  {label} run {n + 1} {command.name}: {ran.wall_s:.3f} s, "
                    f"{ran.peak_mib:.0f} MiB{result}",
                    flush=True,
                )
    rows = {name: summary(ran) for name, ran in found.items()}
    try:
        rows["raw-in-process"] = raw_in_process(
            book / "book.sqlite", raw_query, built["contact_key"], runs
        )
    except sqlite3.Error as error:
        rows["raw-in-process"] = {"error": str(error)}
    return {
        "size": label,
        "contacts": built["contacts"],
        "built_at_commit": built.get("commit"),
        "initial_sync": built["initial_sync"],
        "book_bytes_per_contact": built["book_bytes"] / built["contacts"],
        "commands": rows,
    }


# -- the report ---------------------------------------------------------------------------


def cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if "error" in row:
        return "failed"
    if "peak_mib" not in row:
        return f"{row['wall_s'] * 1000:.2f} ms"
    return f"{row['wall_s']:.2f} s, {row['peak_mib']:.0f} MiB"


def table(results: list[dict[str, Any]]) -> str:
    labels = [*COMMANDS, ("raw-in-process", "the same query in-process (no new interpreter)")]
    head = ["command", *(f"{r['size']} ({r['contacts']:,})" for r in results)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(results)]
    for name, label in labels:
        cells = [cell(r["commands"].get(name)) for r in results]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    first = [
        f"{r['initial_sync']['wall_s']:.2f} s, {r['initial_sync']['peak_mib']:.0f} MiB"
        for r in results
    ]
    lines.append(
        "| " + " | ".join(["initial `sync` (building the folder, one run)", *first]) + " |"
    )
    sizes = [f"{r['book_bytes_per_contact']:,.0f} B" for r in results]
    lines.append("| " + " | ".join(["`book.sqlite` per contact after it", *sizes]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="3k,100k", help=f"comma-separated, of {', '.join(SIZES)}"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each command; medians")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--keep", type=Path, help="keep built folders here, and reuse them")
    parser.add_argument("--rebuild", action="store_true", help="rebuild kept folders anyway")
    parser.add_argument("--prepare", action="store_true", help="only build the kept folders")
    parser.add_argument("--raw-query", default=RAW_QUERY, help="the raw point query's SQL")
    parser.add_argument("--write-exports", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write_exports:
        folder, contacts = args.write_exports
        print(json.dumps(write_exports(int(contacts), Path(folder))))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; sizes are {', '.join(SIZES)}")
    sizes.sort(key=SIZES.__getitem__)
    fingerprint = schema_fingerprint()
    with tempfile.TemporaryDirectory(prefix="sourcetruth-cli-") as scratch:
        keep = args.keep.expanduser() if args.keep else Path(scratch)
        results = []
        for label in sizes:
            root, built = ready(label, keep, fingerprint, args.rebuild)
            if args.prepare:
                continue
            print(f"{label} ({built['contacts']:,} contacts): {args.runs} runs each", flush=True)
            results.append(measure(label, root, built, args.runs, args.raw_query))
    if args.prepare:
        return
    print()
    print(f"medians of {args.runs} runs; wall s from start to exit, peak RSS of the process")
    print(table(results))
    if args.json is not None:
        document = {
            "command": " ".join(["python", "benchmarks/cli.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "runs": args.runs,
            # Other work on a shared machine slows every row: read the ratios.
            "load_average_1_5_15": os.getloadavg(),
            "raw_query": args.raw_query,
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
