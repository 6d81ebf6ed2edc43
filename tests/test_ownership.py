"""Who owns a field, links between feeds, expiry, and the edges found in review.

Each test names the rule of DESIGN.md it defends.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from school import full, guardian, london, pupil, school
from sourcetruth import (
    ADDRESS_BOOK,
    EXPIRY,
    FIELDS,
    AddressBookSave,
    Book,
    Channel,
    ContactData,
    DepartureGuard,
    Email,
    Erase,
    Link,
    OverrideLifetime,
    OverrideOutcome,
    Phone,
    Policy,
    ProvenanceKind,
    Record,
    Relationship,
    Role,
    Rule,
    SetOverride,
    Snapshot,
    Source,
    SourceKind,
    Unlink,
    UsageError,
    contact_at,
    dumps,
    explain,
    loads,
    merge,
    normalise_phone,
    recipients,
)
from sourcetruth.exceptions import SourceDataError

NO_EMAILS = frozenset(set(FIELDS) - {"emails"})
NO_RELATIONSHIPS = frozenset(set(FIELDS) - {"relationships"})


def feeds(mis_covers: frozenset[str], import_covers: frozenset[str]) -> Policy:
    return Policy(
        sources=(
            Source("mis", SourceKind.MIS, covers=mis_covers),
            Source("import", SourceKind.IMPORT, covers=import_covers),
        )
    )


def apply(book: Book, change: object, at: object, policy: Policy) -> Book:
    return merge(book, change, policy=policy, at=at, by="test").book  # type: ignore[arg-type]


def linked_gita(policy: Policy) -> Book:
    """Monday's MIS sync, an import row for Gita with her own email, linked at 10:00."""
    book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
    row = guardian("r1", mobile="07700 900101", email="gita.import@parent.test", given="Gita")
    book = apply(book, full(london(23, 9), [row], source="import"), london(23, 9), policy)
    return apply(book, Link("mis:G9", "import:r1"), london(23, 10), policy)


class TestEditsOverrideTheFeedThatSuppliesTheField:
    def test_saving_a_field_a_linked_import_supplies_overrides_the_import(self) -> None:
        """Rule 3: the edit works at once and the import's next sync ends it."""
        policy = feeds(NO_EMAILS, frozenset({"given_name", "family_name", "emails"}))
        book = linked_gita(policy)
        edit = AddressBookSave(
            "mis:G9", ContactData(emails=(Email("typed@parent.test"),)), frozenset({"emails"})
        )
        result = merge(book, edit, policy=policy, at=london(23, 11), by="office")
        [override] = result.report.overrides_set
        assert override.record == "import:r1"
        now = contact_at(result.book, "mis:G9", policy=policy, at=london(23, 11))
        assert now.data.emails == (Email("typed@parent.test"),)
        row = guardian("r1", mobile="07700 900101", email="gita.import@parent.test", given="Gita")
        again = merge(
            result.book,
            full(london(23, 12), [row], source="import"),
            policy=policy,
            at=london(23, 12),
            by="upload",
        )
        assert [e.outcome for e in again.report.overrides_ended] == [OverrideOutcome.LOST]

    def test_a_field_no_feed_supplies_is_a_local_value_and_cannot_be_overridden(self) -> None:
        """Rule 1: with nothing to override, the save is kept locally; SetOverride refuses."""
        policy = feeds(NO_EMAILS, frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        value = ContactData(emails=(Email("local@parent.test"),))
        result = merge(
            book,
            AddressBookSave("mis:G9", value, frozenset({"emails"})),
            policy=policy,
            at=london(23, 9),
            by="office",
        )
        assert result.report.overrides_set == ()
        now = contact_at(result.book, "mis:G9", policy=policy, at=london(23, 9))
        assert now.data.emails == (Email("local@parent.test"),)
        assert now.provenance["emails"].source == ADDRESS_BOOK
        assert now.home == "mis:G9"
        with pytest.raises(UsageError, match="no source supplies"):
            merge(
                result.book,
                SetOverride("mis:G9", "emails", value),
                policy=policy,
                at=london(23, 10),
                by="office",
            )

    def test_the_address_book_cannot_outrank_a_feed(self) -> None:
        """Rule 2: a local save never takes over a feed's contact, so the policy refuses it."""
        with pytest.raises(UsageError, match="last"):
            Policy(sources=(Source("mis", SourceKind.MIS),), precedence=(ADDRESS_BOOK, "mis"))
        Policy(sources=(Source("mis", SourceKind.MIS),), precedence=("mis", ADDRESS_BOOK))


class TestLinks:
    def test_link_refuses_two_records_of_one_source_in_one_person(self) -> None:
        """Rule 12: G8 cannot join a person who already has an MIS record (G9)."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name", "emails"}))
        book = linked_gita(policy)
        with pytest.raises(UsageError, match="one source cannot hold one person twice"):
            merge(book, Link("import:r1", "mis:G8"), policy=policy, at=london(23, 11), by="x")

    def test_unlink_of_an_unlinked_contact_with_a_local_record_is_refused(self) -> None:
        """Rule 2: a contact's local values are not a second person."""
        policy = feeds(frozenset(FIELDS) - {"year_group"}, frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        note = AddressBookSave("mis:G9", ContactData(year_group="9"), frozenset({"year_group"}))
        book = apply(book, note, london(23, 9), policy)
        with pytest.raises(UsageError, match="not linked"):
            merge(book, Unlink("mis:G9"), policy=policy, at=london(23, 10), by="x")
        with pytest.raises(UsageError, match="local record"):
            merge(book, Unlink("address-book:mis:G9"), policy=policy, at=london(23, 10), by="x")

    def test_unlink_keeps_the_local_record_with_the_contact(self) -> None:
        """Unlinking the import leaves the MIS contact its local values."""
        policy = feeds(frozenset(FIELDS) - {"year_group"}, frozenset({"given_name", "emails"}))
        book = linked_gita(policy)
        note = AddressBookSave("mis:G9", ContactData(year_group="9"), frozenset({"year_group"}))
        book = apply(book, note, london(23, 11), policy)
        result = merge(book, Unlink("import:r1"), policy=policy, at=london(23, 12), by="x")
        gita = contact_at(result.book, "mis:G9", policy=policy, at=london(23, 12))
        assert gita.data.year_group == "9"
        assert result.report.created == ()
        assert "address-book:mis:G9" not in result.book.contacts

    def test_a_rule_answers_the_past_as_it_was_after_a_link(self) -> None:
        """Rule 8: "parents of year 9" at 10:00 is the same before and after a later link."""
        policy = Policy(
            sources=(
                Source("mis", SourceKind.MIS),
                Source("import", SourceKind.IMPORT, covers=frozenset({"given_name"})),
            ),
            precedence=("import", "mis"),
        )
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        row = Snapshot("import", london(23, 9), [pupil("rp9", "9", "9B", given="Nina")])
        book = apply(book, row, london(23, 9), policy)
        rule = Rule(year_groups=frozenset({"9"}), guardians_of=True)
        before = recipients(book, rule, Channel.SMS, policy=policy, at=london(23, 10))
        book = apply(book, Link("mis:P9", "import:rp9"), london(23, 11), policy)
        after = recipients(book, rule, Channel.SMS, policy=policy, at=london(23, 10))
        assert len(before.addresses) == 2
        assert after == before

    def test_relationships_supplied_by_an_import_find_the_import_pupil(self) -> None:
        """Rule 11: a guardian's links are read in the source they came from."""
        policy = feeds(NO_RELATIONSHIPS, frozenset({"relationships"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        rows = [
            pupil("ip9", "9", "9B"),
            Record("ig9", ContactData(relationships=(Relationship("ip9"),))),
        ]
        book = apply(book, full(london(23, 9), rows, source="import"), london(23, 9), policy)
        book = apply(book, Link("mis:P9", "import:ip9"), london(23, 10), policy)
        book = apply(book, Link("mis:G9", "import:ig9"), london(23, 10), policy)
        rule = Rule(registration_groups=frozenset({"9B"}), guardians_of=True)
        found = recipients(book, rule, Channel.SMS, policy=policy, at=london(23, 11))
        assert found.addresses == ("+447700900101",)

    def test_erase_leaves_no_link_pointing_at_the_erased_person(self) -> None:
        """Rule 13: after unlink then erase, no redirect names the erased contact."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name", "emails"}))
        book = linked_gita(policy)
        book = apply(book, Unlink("import:r1"), london(23, 11), policy)
        book = apply(book, Erase("mis:G9"), london(23, 12), policy)
        assert all(r.into != "mis:G9" for entry in book.contacts.values() for r in entry.redirects)
        assert "mis:G9" not in dumps(book)


class TestExpiryAndDeparture:
    def test_an_expired_override_ends_at_its_own_time_in_no_sync(self) -> None:
        """Rule 3: expiry is not credited to whatever merge came next."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        value = ContactData(emails=(Email("brief@parent.test"),))
        book = apply(
            book,
            SetOverride("mis:G9", "emails", value, OverrideLifetime.UNTIL, london(23, 12)),
            london(23, 9),
            policy,
        )
        row = Snapshot("import", london(23, 13), [Record("r9", ContactData("Zed"))])
        result = merge(book, row, policy=policy, at=london(23, 13), by="uploader")
        [ended] = result.report.overrides_ended
        assert ended.ended_at == london(23, 12)
        assert ended.ended_by == EXPIRY
        assert ended.sync is None
        assert ended.outcome is OverrideOutcome.LOST

    def test_a_departed_contacts_values_name_the_last_sync_that_read_them(self) -> None:
        """Rule 8: not the sync that found the record missing."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        book = apply(book, full(london(24, 2), school()), london(24, 2), policy)
        rest = [r for r in school() if r.key != "G9"]
        book = apply(book, full(london(25, 2), rest), london(25, 2), policy)
        why = explain(book, "mis:G9", "emails", policy=policy, at=london(25, 9))
        assert contact_at(book, "mis:G9", policy=policy, at=london(25, 9)).departed
        assert why.provenance.applied_at == london(24, 2)
        assert why.provenance.sync == 2


class TestUnparseableLocalValuesAreReported:
    def test_an_override_value_that_does_not_normalise_is_reported(self) -> None:
        """Rule 10: kept raw and reported, whichever way it came in."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        value = ContactData(phones=(Phone("07700 900101"), Phone("0770")))
        result = merge(
            book, SetOverride("mis:G9", "phones", value), policy=policy, at=london(23, 9), by="x"
        )
        assert [(u.record, u.field, u.index) for u in result.report.unnormalised] == [
            ("mis:G9", "phones", 1)
        ]

    def test_a_local_value_that_does_not_normalise_is_reported(self) -> None:
        """Rule 10: a local email that is not an address is reported on its save."""
        policy = feeds(NO_EMAILS, frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        save = AddressBookSave(
            "mis:G9", ContactData(emails=(Email("bad@@"),)), frozenset({"emails"})
        )
        result = merge(book, save, policy=policy, at=london(23, 9), by="x")
        assert [(u.record, u.field) for u in result.report.unnormalised] == [
            ("address-book:mis:G9", "emails")
        ]


class TestInputValidation:
    def test_an_address_book_key_holds_no_colon(self) -> None:
        """Contact ids stay unambiguous: 'address-book:mis:G9' is a local record's id."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name"}))
        with pytest.raises(UsageError, match="no ':'"):
            merge(
                Book(),
                AddressBookSave("address-book:mis:G9", ContactData("A")),
                policy=policy,
                at=london(23, 9),
                by="x",
            )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_count": -1},
            {"min_count": -2},
            {"max_fraction": 1.5},
            {"max_fraction": float("nan")},
        ],
    )
    def test_a_guard_that_cannot_work_is_refused(self, kwargs: dict[str, float]) -> None:
        """Rule 6: a NaN or negative threshold would silently switch the guard off."""
        with pytest.raises(UsageError):
            DepartureGuard(**kwargs)  # type: ignore[arg-type]

    def test_a_rule_over_guardians_names_no_roles(self) -> None:
        """A guardians_of rule selects pupils; roles would be silently ignored."""
        with pytest.raises(UsageError):
            Rule(roles=frozenset({Role.STAFF}), guardians_of=True)

    def test_a_boolean_format_version_is_refused(self) -> None:
        """`true` is not a format version, though Python calls it an int."""
        text = dumps(Book()).replace('"version":1', '"version":true')
        with pytest.raises(SourceDataError):
            loads(text, Book)

    def test_a_record_with_no_data_is_a_type_error_not_an_attribute_error(self) -> None:
        """Adapters building model objects get a clear error at construction."""
        with pytest.raises(TypeError):
            Record("G9", None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ContactData(phones=("07700 900101",))  # type: ignore[arg-type]


class TestDeterministicShapes:
    def test_provenance_keys_follow_the_field_order(self) -> None:
        """Rule 7: code iterating provenance sees FIELDS order whatever the hash seed."""
        policy = feeds(frozenset(FIELDS), frozenset({"given_name"}))
        book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
        gita = contact_at(book, "mis:G9", policy=policy, at=london(23, 3))
        assert tuple(gita.provenance) == FIELDS
        assert gita.provenance["emails"].kind is ProvenanceKind.SOURCE

    def test_normalised_values_are_not_in_repr(self) -> None:
        """Rule 13: a normalised number is still a number."""
        assert "900101" not in repr(normalise_phone("07700 900101"))


def test_week_fixture_is_in_november() -> None:
    """The helpers' days are November 2026 (GMT), one day apart."""
    assert london(24, 2) - london(23, 2) == timedelta(days=1)


def test_a_local_save_after_a_link_shows_at_once() -> None:
    """Rule 2: the contact's own local record outranks one that a link brought in."""
    policy = feeds(frozenset(FIELDS) - {"year_group"}, frozenset({"given_name"}))
    book = apply(Book(), full(london(23, 2), school()), london(23, 2), policy)
    row = Snapshot("import", london(23, 8), [Record("r1", ContactData("Gita"))])
    book = apply(book, row, london(23, 8), policy)
    seven = AddressBookSave("import:r1", ContactData(year_group="7"), frozenset({"year_group"}))
    book = apply(book, seven, london(23, 9), policy)
    book = apply(book, Link("mis:G9", "import:r1"), london(23, 10), policy)
    nine = AddressBookSave("mis:G9", ContactData(year_group="9"), frozenset({"year_group"}))
    book = apply(book, nine, london(23, 11), policy)
    assert contact_at(book, "mis:G9", policy=policy, at=london(23, 11)).data.year_group == "9"
