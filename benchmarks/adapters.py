"""How much reading a source costs over bare splitting of the same bytes.

Run from the repository: ``python benchmarks/adapters.py [contacts] [runs]``,
or ``python benchmarks/adapters.py 0 RUNS --files 100000,1000000`` for the large files
(the contacts argument is then unused).

For each built-in format it writes one synthetic school (fictional values:
Ofcom drama numbers, ``.test`` addresses) with the format's own writer, then
times, on the same files in the same run, the adapter's full read and a bare
baseline: decode the bytes and split them into rows (``csv.reader`` into
dicts keyed by id; for vCard, splitting into lines and cards). It prints each
as a ratio to its baseline, the medians of several runs. No time is asserted
anywhere: machines here are shared and noisy, so ratios are what to compare.

``--files SIZES`` measures reading large files instead: for each size, a
synthetic school (:mod:`sourcetruth.testing.synthetic`) written as one CSV
import of every contact and as a OneRoster 1.2 bundle. For each it prints the
adapter's read time as a ratio to ``csv.reader`` splitting the same file(s)
in the same run (CPU time, the medians of ``--runs``: wall time on a shared
machine measures the neighbours), and its peak memory (:mod:`tracemalloc`,
in a separate untimed read) as a multiple of the input's size.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sourcetruth import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
)
from sourcetruth.adapters.sources.oneroster import OneRosterAdapter, write_bundle
from sourcetruth.adapters.sources.sds import SdsAdapter, write_files
from sourcetruth.adapters.sources.tabular import (
    CsvImportAdapter,
    CsvMapping,
    EmailColumn,
    PhoneColumn,
    write_csv,
)
from sourcetruth.adapters.sources.vcard import VCardAdapter
from sourcetruth.testing.synthetic import school as synthetic_school
from sourcetruth.testing.synthetic import write_oneroster

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def school(contacts: int) -> Snapshot:
    """A school of about *contacts* people: pupils, each with one guardian, and staff."""
    records: list[Record] = []
    families = contacts // 2
    for n in range(families):
        pupil, parent = f"P{n:07d}", f"G{n:07d}"
        number = f"07700 900{n % 1000:03d}"
        records.append(
            Record(pupil, ContactData(f"Kid{n}", "Okafor", Role.PUPIL, year_group=str(7 + n % 5)))
        )
        records.append(
            Record(
                parent,
                ContactData(
                    f"Parent{n}",
                    "Okafor",
                    Role.GUARDIAN,
                    phones=(Phone(number, PhoneType.MOBILE),),
                    emails=(Email(f"parent{n}@parent.test"),),
                    relationships=(Relationship(pupil),),
                ),
            )
        )
    return Snapshot("mis", AT, records)


def rows(path: Path) -> dict[str, list[str]]:
    """The bare baseline for one CSV file: decode, split, key by the first cell."""
    reader = csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline=""))
    next(reader)
    return {row[0]: row for row in reader}


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(paths: list[Path]) -> int:
    """The floor: ``csv.reader`` splitting each file into rows, as a file opened for CSV."""
    count = 0
    for path in paths:
        with path.open(encoding="utf-8", newline="") as stream:
            for _ in csv.reader(stream):
                count += 1
    return count


def median_cpu(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: Every contact of a synthetic school as one CSV import: the nightly file of an MIS export.
FULL_MAPPING = CsvMapping(
    key="Id",
    given_name="First name",
    family_name="Last name",
    role="Type",
    phones=(PhoneColumn("Mobile", PhoneType.MOBILE), PhoneColumn("Home", PhoneType.HOME)),
    emails=(EmailColumn("Email", EmailType.HOME),),
    year_group="Year",
    registration_group="Form",
    guardian_of="Children",
)


def large_files(sizes: list[int], runs: int) -> None:
    """Each size's CSV import and OneRoster bundle: read time over splitting, peak over size."""
    print(f"large files, CPU time median of {runs} runs; peak by tracemalloc")
    print(
        f"{'format':<22} {'contacts':>10} {'MB':>6} {'read s':>8} {'split s':>8} "
        f"{'ratio':>6} {'peak/size':>10}"
    )
    for contacts in sizes:
        root = Path(tempfile.mkdtemp())
        people = synthetic_school(contacts, seed=1)
        snapshot = people.snapshot(AT)
        (root / "all.csv").write_text(
            write_csv(snapshot, FULL_MAPPING), encoding="utf-8", newline=""
        )
        write_oneroster(people, root / "oneroster", extracted_at=AT)
        del people, snapshot
        bundle = [root / "oneroster" / name for name in ("users.csv", "roles.csv")]
        cases: list[tuple[str, Callable[[], object], list[Path]]] = [
            (
                "CSV import",
                lambda root=root: CsvImportAdapter(root / "all.csv", FULL_MAPPING).read(
                    extracted_at=AT
                ),
                [root / "all.csv"],
            ),
            (
                "OneRoster 1.2 bundle",
                lambda root=root: OneRosterAdapter(root / "oneroster").read(extracted_at=AT),
                bundle,
            ),
        ]
        for name, read, files in cases:
            size = sum(path.stat().st_size for path in files)
            seconds = median_cpu(read, runs)
            floor = median_cpu(lambda files=files: split(files), runs)
            peak = peak_bytes(read)
            print(
                f"{name:<22} {contacts:>10,} {size / 1e6:>6.1f} {seconds:>8.2f} {floor:>8.2f} "
                f"{seconds / floor:>6.1f} {peak / size:>10.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contacts", nargs="?", type=int, default=20_000)
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--files", help="sizes of the large-file reads, comma-separated")
    args = parser.parse_args()
    if args.files:
        large_files([int(size) for size in args.files.split(",")], args.runs)
        return
    contacts, runs = args.contacts, args.runs
    snapshot = school(contacts)
    root = Path(tempfile.mkdtemp())
    mapping = CsvMapping(
        key="Id",
        given_name="First",
        family_name="Last",
        role="Type",
        phones=(PhoneColumn("Mobile"),),
        emails=(EmailColumn("Email", snapshot.records[1].data.emails[0].type),),
        guardian_of="Children",
    )
    (root / "oneroster").mkdir()
    write_bundle(snapshot, root / "oneroster")
    (root / "sds").mkdir()
    write_files(snapshot, root / "sds")
    (root / "import.csv").write_text(write_csv(snapshot, mapping), encoding="utf-8", newline="")
    vcard = VCardAdapter(root / "book.vcf")
    vcard.write_entries(snapshot.records)

    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "OneRoster 1.2 bundle",
            lambda: OneRosterAdapter(root / "oneroster").read(extracted_at=AT),
            lambda: (
                rows(root / "oneroster" / "users.csv"),
                rows(root / "oneroster" / "roles.csv"),
            ),
        ),
        (
            "SDS v2.1 files",
            lambda: SdsAdapter(root / "sds").read(extracted_at=AT),
            lambda: [
                rows(root / "sds" / n) for n in ("users.csv", "roles.csv", "relationships.csv")
            ],
        ),
        (
            "generic CSV import",
            lambda: CsvImportAdapter(root / "import.csv", mapping, source="mis").read(
                extracted_at=AT
            ),
            lambda: rows(root / "import.csv"),
        ),
        (
            "vCard 4.0 address book",
            vcard.read_entries,
            lambda: (root / "book.vcf").read_bytes().decode("utf-8").split("BEGIN:VCARD"),
        ),
    ]
    print(f"{len(snapshot.records):,} contacts, median of {runs} runs")
    print(f"{'format':<24} {'library s':>10} {'baseline s':>11} {'ratio':>7} {'contacts/s':>12}")
    for name, library, baseline in cases:
        lib = median_seconds(library, runs)
        base = median_seconds(baseline, runs)
        rate = len(snapshot.records) / lib
        print(f"{name:<24} {lib:>10.3f} {base:>11.3f} {lib / base:>7.1f} {rate:>12,.0f}")


if __name__ == "__main__":
    main()
