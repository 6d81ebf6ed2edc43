"""The synthetic school generator: deterministic, realistic in shape, fictional, and usable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from sourcetruth import (
    ADDRESS_BOOK,
    Book,
    ContactData,
    EmailType,
    Record,
    Relationship,
    Role,
    SourceKind,
    Status,
    comparable,
    merge,
    normalise_email,
    normalise_phone,
)
from sourcetruth.adapters.sources.base import address_book_saves
from sourcetruth.adapters.sources.oneroster import COVERS, OneRosterAdapter
from sourcetruth.adapters.sources.tabular import CsvImportAdapter
from sourcetruth.policy import DEFAULT_GUARD
from sourcetruth.testing.synthetic import (
    SIZES,
    School,
    policy,
    school,
    write_csv,
    write_oneroster,
)

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
YEARS = {"R", *(str(n) for n in range(1, 14))}
DOMAINS = {"parent.test", "school.test", "example.org"}


@pytest.fixture(scope="module")
def small() -> School:
    return school(3_000, seed=7)


def by_role(s: School) -> Counter[Role]:
    return Counter(r.data.role for r in s.records)


def contact_values(data: ContactData) -> tuple[object, object]:
    return comparable("phones", data.phones), comparable("emails", data.emails)


class TestDeterminism:
    def test_same_seed_same_records(self) -> None:
        """One seed gives an equal school, and one night seed an equal next night."""
        a, b = school(800, seed=3), school(800, seed=3)
        assert a == b
        assert a.next_night(seed=1) == b.next_night(seed=1)

    def test_different_seed_differs(self) -> None:
        """Another seed gives other records, for a school and for its next night alike."""
        assert school(800, seed=3).records != school(800, seed=4).records
        base = school(800, seed=3)
        assert base.next_night(seed=1).records != base.next_night(seed=2).records

    def test_same_across_hash_seeds(self) -> None:
        """The same records, in the same order, whatever PYTHONHASHSEED is."""
        code = (
            "import hashlib\n"
            "from datetime import UTC, datetime\n"
            "from sourcetruth import dumps\n"
            "from sourcetruth.testing.synthetic import school\n"
            "s = school(600, seed=5).next_night(seed=2, changed=0.05)\n"
            "snap = s.snapshot(datetime(2026, 1, 1, tzinfo=UTC))\n"
            "text = dumps(snap) + repr([r.key for r in s.address_book])\n"
            "print(hashlib.sha256(text.encode()).hexdigest())\n"
        )
        digests = {
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": seed},
            ).stdout
            for seed in ("0", "1", "12345")
        }
        assert len(digests) == 1


class TestShape:
    @pytest.mark.parametrize("contacts", [1, 2, 50, 300, 1_001, 3_000])
    def test_exactly_the_contacts_asked(self, contacts: int) -> None:
        """school(n) holds exactly n records, from a single contact to thousands."""
        assert len(school(contacts).records) == contacts

    def test_sizes(self) -> None:
        """SIZES are the S, M and L schools: 3,000, 100,000 and 1,000,000 contacts."""
        assert dict(SIZES) == {"S": 3_000, "M": 100_000, "L": 1_000_000}

    def test_roles_in_proportion(self, small: School) -> None:
        """A school of 3,000 holds every role, in a school's proportions.

        About 240 staff, 9 governors, 40-48% pupils and 44-52% guardians, and
        30 entries in the address book.
        """
        roles = by_role(small)
        assert set(roles) == {Role.PUPIL, Role.GUARDIAN, Role.STAFF, Role.GOVERNOR}
        assert abs(roles[Role.STAFF] - 240) <= 3
        assert roles[Role.GOVERNOR] == 9
        assert 0.40 <= roles[Role.PUPIL] / 3_000 <= 0.48
        assert 0.44 <= roles[Role.GUARDIAN] / 3_000 <= 0.52
        assert len(small.address_book) == 30

    def test_keys_sorted_unique_and_not_reused_by_the_address_book(self, small: School) -> None:
        """Record keys are sorted and unique; address-book keys are others, without a colon."""
        keys = [r.key for r in small.records]
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)
        assert not set(keys) & {r.key for r in small.address_book}
        assert all(":" not in r.key for r in small.address_book)

    def test_every_guardians_pupils_exist(self, small: School) -> None:
        """Only guardians have relationships, and every one leads to a pupil of the school.

        A guardian has 1 to 3 pupils, all at one priority from 1 to 3; a pupil
        has 1 to 3 guardians.
        """
        roles = {r.key: r.data.role for r in small.records}
        guardians_of: Counter[str] = Counter()
        for record in small.records:
            links = record.data.relationships
            if record.data.role is not Role.GUARDIAN:
                assert links == ()
                continue
            assert 1 <= len(links) <= 3
            assert len({rel.priority for rel in links}) == 1
            for rel in links:
                assert roles[rel.pupil] is Role.PUPIL
                assert 1 <= rel.priority <= 3
                guardians_of[rel.pupil] += 1
        pupils = [k for k, role in roles.items() if role is Role.PUPIL]
        assert all(1 <= guardians_of[p] <= 3 for p in pupils)

    def test_families_share_guardians_numbers_and_emails(self, small: School) -> None:
        """Families look real: siblings share guardians, households share numbers.

        Every priority from 1 to 3 is used, some guardians lack parental
        responsibility, over 100 home numbers are shared, and some emails too.
        """
        guardians = [r.data for r in small.records if r.data.role is Role.GUARDIAN]
        links = [rel for g in guardians for rel in g.relationships]
        assert sum(len(g.relationships) > 1 for g in guardians) > 100  # siblings
        assert {rel.priority for rel in links} == {1, 2, 3}
        assert sum(not rel.parental_responsibility for rel in links) > 10
        homes = Counter(p.number for g in guardians for p in g.phones if p.type.value == "home")
        assert sum(count > 1 for count in homes.values()) > 100  # households
        emails = Counter(e.address for g in guardians for e in g.emails)
        assert 10 < sum(count > 1 for count in emails.values()) < 200

    def test_pupils_in_year_and_registration_groups(self, small: School) -> None:
        """Pupils fill years R to 13, grouped by year plus one character; R to 2 have no email."""
        pupils = [r.data for r in small.records if r.data.role is Role.PUPIL]
        assert {p.year_group for p in pupils} == YEARS
        assert all(p.registration_group[:-1] == p.year_group for p in pupils)
        assert all(not p.emails for p in pupils if p.year_group in {"R", "1", "2"})

    def test_only_drama_numbers_and_test_domains(self, small: School) -> None:
        """Every number is an Ofcom drama number and every email at a test domain.

        The address book is held to this too, and holds only governors and others.
        """
        everyone = [*small.records, *small.address_book]
        for data in (r.data for r in everyone):
            for phone in data.phones:
                e164 = normalise_phone(phone.number).value
                assert e164 is not None
                assert e164[:-3] in ("+447700900", "+441632960")
            for email in data.emails:
                address = normalise_email(email.address).value
                assert address is not None
                assert address.rpartition("@")[2] in DOMAINS
        assert {r.data.role for r in small.address_book} == {Role.GOVERNOR, Role.OTHER}

    def test_policy(self) -> None:
        """policy() has one MIS source, covering what OneRoster reads, nightly at 02:00.

        The schedule is in Europe/London time, and the guard is the default one.
        """
        mis = policy("feed").source("feed")
        assert mis.kind is SourceKind.MIS
        assert mis.covers == COVERS
        assert mis.schedule is not None
        assert mis.schedule.timezone == "Europe/London"
        assert mis.schedule.rule == "FREQ=DAILY;BYHOUR=2;BYMINUTE=0"
        assert policy().guard == DEFAULT_GUARD


class TestNextNight:
    def test_fractions(self, small: School) -> None:
        """next_night() changes, removes and adds exactly the fractions asked.

        Leavers and joiners are pupils and their guardians; a guardian who
        stays only loses the links to pupils who left, and one who leaves had no
        pupil left.
        """
        night = small.next_night(seed=11, changed=0.04, leavers=0.02, joiners=0.03)
        before = {r.key: r.data for r in small.records}
        after = {r.key: r.data for r in night.records}
        pupils = by_role(small)[Role.PUPIL]
        left = [k for k in before if k not in after]
        joined = [k for k in after if k not in before]
        left_pupils = [k for k in left if before[k].role is Role.PUPIL]
        assert len(left_pupils) == round(0.02 * pupils)
        assert all(before[k].role in (Role.PUPIL, Role.GUARDIAN) for k in left)
        assert sum(after[k].role is Role.PUPIL for k in joined) == round(0.03 * pupils)
        assert all(after[k].role in (Role.PUPIL, Role.GUARDIAN) for k in joined)
        changed = [
            k
            for k in before.keys() & after.keys()
            if contact_values(before[k]) != contact_values(after[k])
        ]
        assert len(changed) == round(0.04 * len(small.records))
        relinked = [
            k
            for k in before.keys() & after.keys()
            if before[k].relationships != after[k].relationships
        ]
        # A guardian who stays lost the relationship to a pupil who left, and only that.
        gone = set(left_pupils)
        for key in relinked:
            kept = tuple(r for r in before[key].relationships if r.pupil not in gone)
            assert after[key].relationships == kept != ()
        # A guardian left only with their last pupil.
        for key in left:
            if before[key].role is Role.GUARDIAN:
                assert {r.pupil for r in before[key].relationships} <= gone

    def test_defaults_are_the_issues_night(self, small: School) -> None:
        """By default a night touches 1 to 3% of records and moves the size by under 30."""
        night = small.next_night(seed=2)
        assert abs(len(night.records) - len(small.records)) < 30
        before = {r.key: r for r in small.records}
        touched = [r for r in night.records if before.get(r.key) is not r]
        assert 0.01 * 3_000 <= len(touched) <= 0.03 * 3_000

    def test_unchanged_records_are_the_same_objects(self, small: School) -> None:
        """Records a night leaves alone, and the address book, are the same objects as before."""
        night = small.next_night(seed=5)
        before = {r.key: r for r in small.records}
        same = [r for r in night.records if r.key in before and r.data == before[r.key].data]
        assert len(same) > 0.95 * len(small.records)
        assert all(r is before[r.key] for r in same)
        assert night.address_book is small.address_book

    def test_sorted_keys_never_reused(self, small: School) -> None:
        """Joiners get keys never used before, and each night's keys stay sorted and unique."""
        first = small.next_night(seed=1, leavers=0.05, joiners=0.05)
        second = first.next_night(seed=2, leavers=0.05, joiners=0.05)
        seen = {r.key for r in (*small.records, *small.address_book)}
        new = {r.key for r in first.records} - seen
        newer = {r.key for r in second.records} - seen - new
        assert new
        assert newer
        assert not newer & ({r.key for r in small.records} | new)
        for night in (first, second):
            keys = [r.key for r in night.records]
            assert keys == sorted(keys)
            assert len(set(keys)) == len(keys)

    def test_changes_stay_fictional(self, small: School) -> None:
        """Changed numbers and emails are still drama numbers and test domains."""
        night = small.next_night(seed=3, changed=0.2)
        for record in night.records:
            for phone in record.data.phones:
                assert (normalise_phone(phone.number).value or "")[:-3] in (
                    "+447700900",
                    "+441632960",
                )
            for email in record.data.emails:
                assert (normalise_email(email.address).value or "").rpartition("@")[2] in DOMAINS

    def test_nothing_asked_nothing_changes(self, small: School) -> None:
        """A night with no changes, leavers or joiners keeps every record, object for object."""
        night = small.next_night(seed=9, changed=0, leavers=0, joiners=0)
        assert night.records == small.records
        assert all(a is b for a, b in zip(night.records, small.records, strict=True))

    def test_a_fraction_outside_zero_to_one_is_refused(self, small: School) -> None:
        """A fraction outside 0 to 1 is a ValueError naming the argument."""
        with pytest.raises(ValueError, match="changed"):
            small.next_night(seed=1, changed=1.5)


class TestInTheLibrary:
    def test_merges_into_a_book_night_after_night(self) -> None:
        """A school and its next night merge into a book with every value normalised.

        The first sync creates everyone, the address book saves alongside, and
        the next night's report holds exactly its joiners, leavers and changed
        contacts.
        """
        s = school(1_000, seed=2)
        pol = policy()
        result = merge(Book(), s.snapshot(AT), policy=pol, at=AT, by="nightly")
        assert result.report.status is Status.APPLIED
        assert len(result.report.created) == 1_000
        assert result.report.unnormalised == ()
        book = result.book
        for entry in address_book_saves(s.address_book):
            book = merge(book, entry, policy=pol, at=AT, by="office").book
        assert len(book.records[ADDRESS_BOOK]) == len(s.address_book)

        night = s.next_night(seed=4, changed=0.02, leavers=0.01, joiners=0.01)
        later = AT + timedelta(days=1)
        again = merge(book, night.snapshot(later), policy=pol, at=later, by="nightly")
        report = again.report
        assert report.status is Status.APPLIED
        keys = {r.key for r in s.records}
        new_keys = {r.key for r in night.records}
        assert len(report.created) == len(new_keys - keys)
        assert len(report.departed) == len(keys - new_keys)
        emailed = {c.contact_id for c in report.changes if c.field in ("phones", "emails")}
        assert len(emailed - {f"mis:{k}" for k in new_keys - keys}) == 20
        assert report.unnormalised == ()

    def test_round_trips_through_oneroster(self, small: School, tmp_path: Path) -> None:
        """A school written as a OneRoster bundle reads back as OneRoster carries its records."""
        write_oneroster(small, tmp_path, extracted_at=AT)
        reading = OneRosterAdapter(tmp_path, source="mis").read(extracted_at=AT)
        assert reading.snapshot.extracted_at == AT
        assert {n.code for n in reading.notices} <= {"role-unknown"}  # governors
        assert reading.snapshot.records == tuple(as_oneroster(r) for r in small.records)

    def test_csv_import_of_the_guardians(self, small: School, tmp_path: Path) -> None:
        """write_csv's file and mapping import every guardian, links without details, no notice."""
        path = tmp_path / "guardians.csv"
        mapping = write_csv(small, path)
        reading = CsvImportAdapter(path, mapping, source="import").read(extracted_at=AT)
        guardians = [r for r in small.records if r.data.role is Role.GUARDIAN]
        assert reading.notices == ()
        assert reading.snapshot.records == tuple(
            Record(
                r.key,
                attrs.evolve(
                    r.data, relationships=[Relationship(x.pupil) for x in r.data.relationships]
                ),
            )
            for r in guardians
        )

    def test_the_generator_pulls_in_no_test_tools(self) -> None:
        """The generator imports neither Hypothesis nor pytest, and sourcetruth does not load it."""
        code = (
            "import json, sys\n"
            "import sourcetruth\n"
            "assert 'sourcetruth.testing.synthetic' not in sys.modules\n"
            "import sourcetruth.testing.synthetic\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        modules = set(json.loads(out))
        assert not {m for m in modules if m.split(".")[0] in ("hypothesis", "pytest")}


def as_oneroster(record: Record) -> Record:
    """*record* as a OneRoster bundle carries it (see ``write_bundle``)."""
    data = record.data
    return Record(
        record.key,
        ContactData(
            data.given_name,
            data.family_name,
            Role.OTHER if data.role is Role.GOVERNOR else data.role,
            phones=data.phones,
            emails=[attrs.evolve(e, type=EmailType.OTHER) for e in data.emails[:1]],
            relationships=[Relationship(r.pupil) for r in data.relationships],
            year_group=data.year_group,
        ),
    )
