"""A snapshot handed digests first gives what the same snapshot fully built gives.

The CSV import hands the merge :class:`DigestedRecords` (each row's key and
the digest of its data, computed from its cells), and a sync into a store
that keeps digests builds only the records whose digest differs. Random
nights of one school (people changing, joining, leaving, rows the reader
rejects, a night read twice, a night with too many leavers) are read from
CSV and merged two ways, digest-first and fully built (the same records as a
tuple), each into its own SQLite book, and into a book in memory: every
report, book, journal entry and refusal must be the same.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import budget
from school import london
from sourcetruth import Book, DigestedRecords, PhoneType, Role, Snapshot, SnapshotKind, merge
from sourcetruth._digest import record_digest
from sourcetruth.adapters.sources.tabular import (
    CsvFormat,
    CsvMapping,
    EmailColumn,
    PhoneColumn,
    read_csv,
)
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.changes import ConfirmSync, Erase
from sourcetruth.exceptions import RejectedFileError, SourceTruthError
from sourcetruth.journal import input_hash
from sourcetruth.model import EmailType, SourceKind
from sourcetruth.policy import DepartureGuard, Policy, Source
from sourcetruth.report import Status
from sourcetruth.serialise import dumps
from sourcetruth.testing.synthetic import NIGHTLY

HEADER = ["Id", "First", "Last", "Type", "Mobile", "Home", "Email", "Work", "Year", "Children"]

MAPPING = CsvMapping(
    key="Id",
    given_name="First",
    family_name="Last",
    role="Type",
    phones=(PhoneColumn("Mobile"), PhoneColumn("Home", PhoneType.HOME)),
    emails=(EmailColumn("Email"), EmailColumn("Work", EmailType.WORK)),
    year_group="Year",
    guardian_of="Children",
    format=CsvFormat(max_reject_fraction=0.3),
)

POLICY = Policy(
    sources=(Source("mis", SourceKind.MIS, covers=MAPPING.covers, schedule=NIGHTLY),),
    guard=DepartureGuard(max_count=3, max_fraction=1.0),
)

PUPILS = [f"P{n}" for n in range(1, 7)]
GUARDIANS = [f"G{n}" for n in range(1, 6)]
NAMES = ["Ann", " Ann ", "Zoë", "Ó Briain", "Bo", ""]
MOBILES = ["07700 900001", "07700 900002", " 07700 900003", "", "4.47700900123E+11"]
HOMES = ["01632 960001", "01632 960002", ""]
EMAILS = ["ann@example.org", "bo@parent.test", " zoe@example.org ", ""]
ROLES = ["pupil", "Parent", "carer", "", "astronaut"]
HIS_ROLE = {True: "pupil", False: "parent"}


@st.composite
def rows(draw: st.DrawFn) -> list[list[str]]:
    """One night's rows: some of the school, with cells that change, and maybe a bad row."""
    keys = draw(st.lists(st.sampled_from(PUPILS + GUARDIANS), min_size=1, unique=True))
    found = []
    for key in sorted(keys):
        pupil = key.startswith("P")
        children = ";".join(draw(st.lists(st.sampled_from([*PUPILS, " P1 ", "P2;P2"]), max_size=3)))
        found.append(
            [
                key,
                draw(st.sampled_from(NAMES)),
                draw(st.sampled_from(NAMES)),
                draw(st.sampled_from(ROLES))
                if draw(st.booleans())
                else ("pupil" if pupil else "parent"),
                draw(st.sampled_from(MOBILES)),
                draw(st.sampled_from(HOMES)),
                draw(st.sampled_from(EMAILS)),
                draw(st.sampled_from(EMAILS)),
                draw(st.sampled_from(["7", "8", " 9", ""])) if pupil else "",
                "" if pupil else children,
            ]
        )
    if draw(st.booleans()):
        found.append(["", "No", "Key", "pupil", "", "", "", "", "", ""])  # a row the reader rejects
    return found


def text_of(night: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(night)
    return out.getvalue()


def built(snapshot: Snapshot) -> Snapshot:
    """The same snapshot, its records built (a tuple)."""
    return attrs.evolve(snapshot, records=tuple(snapshot.records))


class _Path:
    """One way of merging: into a SQLite book or a book in memory, digest-first or built."""

    def __init__(self, folder: Path | None, *, digested: bool) -> None:
        self.digested = digested
        self.store = None if folder is None else SqliteStore(folder / "book.sqlite")
        self.book = Book()
        self.reports: list[object] = []

    def run(self, change: Snapshot | ConfirmSync, at: datetime) -> object:
        """The report of merging *change*, or the type and message of its refusal."""
        if not self.digested:
            if isinstance(change, ConfirmSync):
                change = ConfirmSync(built(change.snapshot), change.token)
            else:
                change = built(change)
        try:
            if self.store is None:
                result = merge(self.book, change, policy=POLICY, at=at, by="night")
                self.book = result.book
            else:
                result = apply(self.store, change, policy=POLICY, at=at, by="night")
        except SourceTruthError as error:
            return (type(error).__name__, str(error))
        return result.report

    def state(self) -> str:
        book = self.book if self.store is None else self.store.load()
        return dumps(book)


def read(night: list[list[str]], at: datetime) -> Snapshot | tuple[str, str]:
    """The night's snapshot as the CSV import reads it, or the reader's refusal."""
    try:
        reading = read_csv(text_of(night), MAPPING, file="mis.csv", source="mis", extracted_at=at)
    except RejectedFileError as error:
        return (type(error).__name__, str(error))
    return reading.snapshot


@settings(
    max_examples=budget.examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(rows(), min_size=1, max_size=5), st.data())
def test_digest_first_and_fully_built_give_the_same_books(
    nights: list[list[list[str]]], data: st.DataObject
) -> None:
    """Every night's report, book and journal are the same, digest-first or built."""
    with tempfile.TemporaryDirectory(prefix="sourcetruth-digest-first-") as scratch:
        folders = [Path(scratch) / name for name in ("digested", "built")]
        for folder in folders:
            folder.mkdir()
        paths = [
            _Path(folders[0], digested=True),
            _Path(folders[1], digested=False),
            _Path(None, digested=True),
            _Path(None, digested=False),
        ]
        try:
            at = london(2, 2)
            for night in nights:
                at += timedelta(days=1)
                snapshot = read(night, at)
                if isinstance(snapshot, tuple):
                    continue  # refused by the reader before any merge: nothing to compare
                assert isinstance(snapshot.records, DigestedRecords)
                changes: list[Snapshot | ConfirmSync] = [snapshot]
                if data.draw(st.booleans()):
                    changes.append(snapshot)  # the same snapshot again: nothing to do (rule 5)
                if data.draw(st.booleans()):
                    # Another snapshot with the same extraction time: refused (rule 5).
                    other = read(data.draw(rows()), at)
                    if not isinstance(other, tuple):
                        changes.append(other)
                for change in changes:
                    reports = [path.run(change, at + timedelta(hours=1)) for path in paths]
                    assert all(report == reports[0] for report in reports[1:])
                    event(str(getattr(reports[0], "status", reports[0])).split(":")[0])
                    held = getattr(reports[0], "held", None)
                    if held is not None:
                        # Rule 6: the token is the same however the snapshot was read.
                        confirm = ConfirmSync(change, held.token)  # type: ignore[arg-type]
                        reports = [path.run(confirm, at + timedelta(hours=1)) for path in paths]
                        assert all(report == reports[0] for report in reports[1:])
                        assert getattr(reports[0], "status", None) is Status.APPLIED
                states = [path.state() for path in paths]
                assert all(state == states[0] for state in states[1:])
            journals = [path.store.journal() for path in paths[:2] if path.store is not None]
            assert journals[0] == journals[1]
        finally:
            for path in paths:
                if path.store is not None:
                    path.store.close()


class TestDigestedRecords:
    def test_a_reading_hashes_as_its_built_records_do(self) -> None:
        """The journal's input hash of a CSV reading is that of the same records built."""
        night = [["P1", "Ann", "Lee", "pupil", "07700 900001", "", "", "", "7", ""]]
        snapshot = read(night, london(3, 2))
        assert isinstance(snapshot, Snapshot)
        assert input_hash(snapshot) == input_hash(built(snapshot))
        assert snapshot == built(snapshot)
        assert built(snapshot) == snapshot

    def test_a_digest_that_is_not_its_records_is_refused(self, tmp_path: Path) -> None:
        """A reader's wrong digest is caught when the merge builds the record, not applied."""
        first = read([["P1", "Ann", "", "pupil", "", "", "", "", "7", ""]], london(3, 2))
        second = read([["P1", "Bo", "", "pupil", "", "", "", "", "7", ""]], london(4, 2))
        assert isinstance(first, Snapshot)
        assert isinstance(second, Snapshot)
        records = second.records
        assert isinstance(records, DigestedRecords)
        lying = DigestedRecords(records.keys, [record_digest(None)], records.record)
        store = SqliteStore(tmp_path / "book.sqlite")
        try:
            apply(store, first, policy=POLICY, at=london(3, 3), by="night")
            with pytest.raises(SourceTruthError, match="digest"):
                apply(
                    store,
                    attrs.evolve(second, records=lying),
                    policy=POLICY,
                    at=london(4, 3),
                    by="night",
                )
        finally:
            store.close()

    def test_a_reader_that_builds_another_key_is_refused(self) -> None:
        """A record built for one key under another is an error, never applied."""
        snapshot = read([["P1", "Ann", "", "pupil", "", "", "", "", "7", ""]], london(3, 2))
        assert isinstance(snapshot, Snapshot)
        records = snapshot.records
        assert isinstance(records, DigestedRecords)
        wrong = DigestedRecords(["P2"], records.digests, records.record)
        with pytest.raises(SourceTruthError, match="whole record of its key"):
            list(wrong)

    def test_rejected_rows_make_a_delta_of_digested_records(self) -> None:
        """A night with a rejected row is a delta, as before, and still handed digests first."""
        night = [
            ["P1", "Ann", "", "pupil", "", "", "", "", "7", ""],
            ["P2", "Bo", "", "pupil", "4.47700900123E+11", "", "", "", "7", ""],
            ["P3", "Cy", "", "pupil", "", "", "", "", "7", ""],
            ["P4", "Di", "", "pupil", "", "", "", "", "7", ""],
        ]
        snapshot = read(night, london(3, 2))
        assert isinstance(snapshot, Snapshot)
        assert snapshot.kind is SnapshotKind.DELTA
        assert isinstance(snapshot.records, DigestedRecords)
        assert [r.key for r in snapshot.records] == ["P1", "P3", "P4"]
        assert [r.data.role for r in snapshot.records] == [Role.PUPIL] * 3

    def test_an_erased_person_stays_out_whichever_the_path(self, tmp_path: Path) -> None:
        """Rule 13: a night that still lists an erased person skips them, digest-first too."""
        night = [
            ["P1", "Ann", "", "pupil", "", "", "", "", "7", ""],
            ["P2", "Bo", "", "pupil", "", "", "", "", "7", ""],
        ]
        policy = attrs.evolve(POLICY, suppression_key="a test key")
        found = []
        for digested in (True, False):
            store = SqliteStore(tmp_path / f"{digested}.sqlite")
            try:
                first = read(night, london(3, 2))
                assert isinstance(first, Snapshot)
                apply(store, first, policy=policy, at=london(3, 3), by="night")
                apply(store, Erase("mis:P1"), policy=policy, at=london(3, 4), by="office")
                again = read(night, london(4, 2))
                assert isinstance(again, Snapshot)
                change = again if digested else built(again)
                result = apply(store, change, policy=policy, at=london(4, 3), by="night")
                found.append((result.report, dumps(store.load())))
            finally:
                store.close()
        assert found[0] == found[1]
        assert found[0][0].suppressed == 1
        assert "mis:P1" not in found[0][1]
