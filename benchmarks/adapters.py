"""How much reading a source costs over bare splitting of the same bytes.

Run from the repository: ``python benchmarks/adapters.py [contacts] [runs]``.

For each built-in format it writes one synthetic school (fictional values:
Ofcom drama numbers, ``.test`` addresses) with the format's own writer, then
times, on the same files in the same run, the adapter's full read and a bare
baseline: decode the bytes and split them into rows (``csv.reader`` into
dicts keyed by id; for vCard, splitting into lines and cards). It prints each
as a ratio to its baseline, the medians of several runs. No time is asserted
anywhere: machines here are shared and noisy, so ratios are what to compare.
"""

from __future__ import annotations

import csv
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sourcetruth import ContactData, Email, Phone, PhoneType, Record, Relationship, Role, Snapshot
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


def main() -> None:
    contacts = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
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
