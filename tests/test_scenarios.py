"""The eight scenarios of DESIGN.md, across the week of Monday 23 November 2026.

The MIS syncs nightly at 02:00 Europe/London; each sync reads the MIS five
minutes before it applies. Each runs in memory, and with every merge committed
to an SQLite and a PostgreSQL store and the book loaded back (``store_kind``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from school import LONDON, full, guardian, london, mis_policy, pupil, school
from sourcetruth import (
    ADDRESS_BOOK,
    AddressBookSave,
    Book,
    Channel,
    ConfirmSync,
    ContactData,
    Email,
    GroupDefinition,
    Link,
    OverrideOutcome,
    Phone,
    Policy,
    ProvenanceKind,
    Role,
    Rule,
    SetGroup,
    Source,
    SourceKind,
    Status,
    contact_at,
    explain,
    recipients,
    when_effective,
)
from stores import merge

pytestmark = pytest.mark.usefixtures("merges_through_store")

YEAR_9_PARENTS = Rule(year_groups=frozenset({"9"}), guardians_of=True)
YEAR_8_PARENTS = Rule(year_groups=frozenset({"8"}), guardians_of=True)
READ_AHEAD = timedelta(minutes=5)


def sync(book: Book, policy: Policy, day: int, records: list, source: str = "mis") -> Book:
    """The nightly 02:00 sync of *day*, which read the MIS at 01:55."""
    at = london(day, 2)
    result = merge(book, full(at - READ_AHEAD, records, source), policy=policy, at=at, by="nightly")
    assert result.report.status is Status.APPLIED
    return result.book


def monday_and_tuesday(policy: Policy) -> Book:
    book = sync(Book(), policy, 23, school())
    return sync(book, policy, 24, school())


def governors_book(policy: Policy) -> Book:
    """Monday and Tuesday's syncs, plus an external (LA) governor in the address book."""
    book = monday_and_tuesday(policy)
    la = ContactData(
        "Lars",
        "Governor",
        Role.GOVERNOR,
        phones=(Phone("07700 900301"),),
        emails=(Email("la.old@example.org"),),
    )
    return merge(
        book,
        AddressBookSave("address-book:la-governor", la),
        policy=policy,
        at=london(24, 9),
        by="office",
    ).book


class TestScenario1ChangeAtLunchtimeMessageSameAfternoon:
    def test_message_goes_to_old_number_and_audit_names_tuesday_sync(self) -> None:
        """A mobile changed in the MIS at Tue 12:30 is not in a message sent at 15:30."""
        policy = mis_policy()
        book = monday_and_tuesday(policy)
        send_at = london(24, 15, 30)
        result = recipients(book, YEAR_9_PARENTS, Channel.SMS, policy=policy, at=send_at)
        by_contact = {cid: r for r in result.recipients for cid in r.contact_ids}
        assert by_contact["mis:G9"].address == "+447700900101"
        prov = by_contact["mis:G9"].provenance[0]
        assert prov.kind is ProvenanceKind.SOURCE
        assert (prov.source, prov.record_key) == ("mis", "G9")
        assert prov.applied_at == london(24, 2)
        assert prov.read_at == london(24, 1, 55)
        # Wednesday's sync brings the new number; explain then names it as the later change.
        book = sync(book, policy, 25, school(guardian("G9", "P9", mobile="07700 900999")))
        why = explain(book, "mis:G9", "phones", policy=policy, at=send_at)
        assert why.effective_value == (Phone("07700 900101"),)
        assert why.later is not None
        assert why.later.applied_at == london(25, 2)
        assert when_effective(policy, "mis", london(24, 12, 30)) == london(25, 2)


class TestScenario2ChangeAtLunchtimeMessageNextMorning:
    def test_message_next_morning_goes_to_new_number(self) -> None:
        """A mobile changed Tue 12:30 is picked up by Wed 02:00 and used at Wed 08:30."""
        policy = mis_policy()
        book = monday_and_tuesday(policy)
        book = sync(book, policy, 25, school(guardian("G8", "P8", mobile="07700 900888")))
        result = recipients(book, YEAR_8_PARENTS, Channel.SMS, policy=policy, at=london(25, 8, 30))
        assert result.addresses == ("+447700900888",)
        assert result.recipients[0].provenance[0].applied_at == london(25, 2)


class TestScenario3AddressBookGovernorChangesEmail:
    def test_effective_at_once_and_untouched_by_sync(self) -> None:
        """The LA governor's new email works at 19:00 Thursday and survives Friday's sync."""
        policy = mis_policy()
        book = governors_book(policy)
        book = sync(book, policy, 25, school())
        book = sync(book, policy, 26, school())
        new = ContactData(emails=(Email("la.new@example.org"),))
        result = merge(
            book,
            AddressBookSave("address-book:la-governor", new, fields=frozenset({"emails"})),
            policy=policy,
            at=london(26, 18),
            by="office",
        )
        assert result.report.overrides_set == ()
        book = result.book
        evening = recipients(
            book, ("address-book:la-governor",), Channel.EMAIL, policy=policy, at=london(26, 19)
        )
        assert evening.addresses == ("la.new@example.org",)
        book = sync(book, policy, 27, school())
        friday = contact_at(book, "address-book:la-governor", policy=policy, at=london(27, 9))
        assert friday.data.emails == (Email("la.new@example.org"),)
        assert friday.provenance["emails"].source == ADDRESS_BOOK
        assert when_effective(policy, ADDRESS_BOOK, london(26, 18)) == london(26, 18)


def parent_governor_edits_email(policy: Policy) -> Book:
    book = governors_book(policy)
    book = sync(book, policy, 25, school())
    book = sync(book, policy, 26, school())
    edit = ContactData(emails=(Email("pg.new@parent.test"),))
    result = merge(
        book,
        AddressBookSave("mis:GOV", edit, fields=frozenset({"emails"})),
        policy=policy,
        at=london(26, 18),
        by="office",
    )
    assert [o.field for o in result.report.overrides_set] == ["emails"]
    return result.book


class TestScenario4ParentGovernorEditedOnlyLocally:
    def test_override_works_tonight_and_is_lost_at_friday_sync(self) -> None:
        """An MIS parent's email edited locally: used at 19:00, ended `lost` by Friday's sync."""
        policy = mis_policy()
        book = parent_governor_edits_email(policy)
        evening = recipients(book, ("mis:GOV",), Channel.EMAIL, policy=policy, at=london(26, 19))
        assert evening.addresses == ("pg.new@parent.test",)
        assert evening.recipients[0].provenance[0].kind is ProvenanceKind.OVERRIDE
        at = london(27, 2)
        result = merge(book, full(at - READ_AHEAD, school()), policy=policy, at=at, by="nightly")
        assert [(e.override.contact_id, e.outcome) for e in result.report.overrides_ended] == [
            ("mis:GOV", OverrideOutcome.LOST)
        ]
        assert result.report.lost == result.report.overrides_ended
        minutes = recipients(
            result.book, ("mis:GOV",), Channel.EMAIL, policy=policy, at=london(27, 9)
        )
        assert minutes.addresses == ("pg.old@parent.test",)


class TestScenario5ParentGovernorUpdatedAtSourceToo:
    def test_override_confirmed_and_new_address_stays(self) -> None:
        """The school also updated the MIS on Thursday: the override ends `confirmed`."""
        policy = mis_policy()
        book = parent_governor_edits_email(policy)
        updated = guardian(
            "GOV", "P9b", mobile="07700 900103", email="pg.new@parent.test", given="Paula"
        )
        at = london(27, 2)
        result = merge(
            book, full(at - READ_AHEAD, school(updated)), policy=policy, at=at, by="nightly"
        )
        assert [e.outcome for e in result.report.overrides_ended] == [OverrideOutcome.CONFIRMED]
        minutes = recipients(
            result.book, ("mis:GOV",), Channel.EMAIL, policy=policy, at=london(27, 9)
        )
        assert minutes.addresses == ("pg.new@parent.test",)
        assert minutes.recipients[0].provenance[0].kind is ProvenanceKind.SOURCE


class TestScenario6GovernorsGroupAcrossHomes:
    def test_reaches_all_three_on_email_and_sms(self) -> None:
        """Staff governor (MIS), parent governor (MIS), external governor (address book)."""
        policy = mis_policy()
        book = governors_book(policy)
        group = GroupDefinition(
            "Governors", members=frozenset({"mis:S1", "mis:GOV", "address-book:la-governor"})
        )
        book = merge(book, SetGroup(group), policy=policy, at=london(24, 10), by="office").book
        at = london(24, 11)
        email = recipients(book, "Governors", Channel.EMAIL, policy=policy, at=at)
        sms = recipients(book, "Governors", Channel.SMS, policy=policy, at=at)
        assert sorted(email.addresses) == [
            "la.old@example.org",
            "pg.old@parent.test",
            "s1@school.test",
        ]
        assert sorted(sms.addresses) == ["+447700900103", "+447700900201", "+447700900301"]
        assert email.unreachable == ()
        assert sms.unreachable == ()


class TestScenario7SameParentInMisAndImport:
    def test_reported_not_merged_then_linked_with_mis_as_home(self) -> None:
        """Two feeds: a likely duplicate is reported; a person links them; the MIS wins."""
        policy = Policy(
            sources=(
                Source(
                    "mis",
                    SourceKind.MIS,
                    covers=frozenset(
                        {
                            "given_name",
                            "family_name",
                            "role",
                            "phones",
                            "relationships",
                            "year_group",
                            "registration_group",
                        }
                    ),
                ),
                Source(
                    "import",
                    SourceKind.IMPORT,
                    covers=frozenset({"given_name", "family_name", "phones", "emails"}),
                ),
            )
        )
        book = sync(Book(), policy, 23, school())
        imported = guardian("row-17", mobile="07700 900500", email="g9@parent.test", given="Gita")
        also_mis_phone = guardian(
            "row-17", mobile="07700 900101", email="g9@parent.test", given="Gita"
        )
        at = london(23, 10)
        result = merge(
            book, full(at, [also_mis_phone], source="import"), policy=policy, at=at, by="upload"
        )
        assert [(d.record, d.other) for d in result.report.duplicates] == [
            ("import:row-17", "mis:G9")
        ]
        book = result.book
        assert "import:row-17" in book.contacts
        assert "mis:G9" in book.contacts
        everyone = recipients(
            book, ("mis:G9", "import:row-17"), Channel.SMS, policy=policy, at=london(23, 11)
        )
        assert everyone.addresses == ("+447700900101",)
        assert everyone.recipients[0].contact_ids == ("import:row-17", "mis:G9")

        at = london(23, 12)
        book = merge(
            book, full(at, [imported], source="import"), policy=policy, at=at, by="upload"
        ).book
        book = merge(
            book, Link("import:row-17", "mis:G9"), policy=policy, at=london(23, 13), by="office"
        ).book
        parent = contact_at(book, "import:row-17", policy=policy, at=london(23, 14))
        assert parent.id == "mis:G9"
        assert parent.home == "mis:G9"
        assert parent.data.phones == (Phone("07700 900101"),)  # the MIS covers phones: it wins
        assert parent.data.emails == (Email("g9@parent.test"),)  # only the import has emails
        assert parent.provenance["emails"].source == "import"
        assert parent.provenance["phones"].source == "mis"


class TestScenario8TruncatedExport:
    def test_sync_is_held_nothing_departs_and_report_says_why(self) -> None:
        """40% of the records are missing: the sync is held until someone confirms it."""
        policy = mis_policy()
        extra = [pupil(f"X{i:02}", "7", "7A", given=f"Kid{i}") for i in range(13)]
        records = school() + extra  # 20 records
        book = sync(Book(), policy, 23, records)
        truncated = records[:12]  # 8 of 20 missing
        at = london(24, 2)
        snapshot = full(at - READ_AHEAD, truncated)
        result = merge(book, snapshot, policy=policy, at=at, by="nightly")
        assert result.report.status is Status.HELD
        assert result.book is book
        assert result.report.held is not None
        assert result.report.held.departures == 8
        assert result.report.held.population == 20
        assert "8 of 20" in result.report.held.reason
        for cid in result.report.held.departing:
            assert not contact_at(book, cid, policy=policy, at=at).departed
        # A confirmation applies exactly that snapshot.
        confirmed = merge(
            book,
            ConfirmSync(snapshot, result.report.held.token),
            policy=policy,
            at=at,
            by="data manager",
        )
        assert len(confirmed.report.departed) == 8
        assert all(
            contact_at(confirmed.book, cid, policy=policy, at=at).departed
            for cid in result.report.held.departing
        )


def test_times_are_london_wall_clock() -> None:
    """The fixtures' times are in Europe/London (GMT in November)."""
    assert london(24, 2).utcoffset() == timedelta(0)
    assert london(24, 2).tzinfo is LONDON
