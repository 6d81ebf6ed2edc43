"""Targeted behaviours of `merge`: guards on input, snapshots, overrides, erasure, reprs.

The MIS of the test school syncs nightly; each sync reads the MIS five minutes
before it applies (as in test_scenarios.py).
"""

from __future__ import annotations

import importlib
import typing
from datetime import datetime, timedelta

import attrs
import pytest

from school import full, guardian, london, mis_policy, school
from sourcetruth import (
    ADDRESS_BOOK,
    AddressBookRemove,
    AddressBookSave,
    Book,
    Channel,
    ClearOverride,
    ConfirmationMismatchError,
    ConfirmSync,
    ContactData,
    DepartureGuard,
    Email,
    EmptySnapshotError,
    Erase,
    GroupDefinition,
    Link,
    OverrideLifetime,
    OverrideOutcome,
    Phone,
    Policy,
    ProvenanceKind,
    Record,
    Report,
    Role,
    SetGroup,
    SetOverride,
    Snapshot,
    SnapshotKind,
    Source,
    SourceDataError,
    SourceKind,
    StaleSnapshotError,
    Status,
    UnknownContactError,
    Unlink,
    UsageError,
    contact_at,
    dumps,
    explain,
    merge,
    recipients,
)
from sourcetruth.report import combine

READ_AHEAD = timedelta(minutes=5)
NEW_EMAIL = ContactData(emails=(Email("g9.new@parent.test"),))


def sync(book: Book, policy: Policy, day: int, records: list[Record], source: str = "mis") -> Book:
    """The 02:00 sync of *day* (November 2026), which read the source at 01:55."""
    at = london(day, 2)
    result = merge(book, full(at - READ_AHEAD, records, source), policy=policy, at=at, by="nightly")
    assert result.report.status is Status.APPLIED
    return result.book


def monday(policy: Policy) -> Book:
    return sync(Book(), policy, 23, school())


def with_override(
    policy: Policy,
    lifetime: OverrideLifetime = OverrideLifetime.NEXT_SYNC,
    until: datetime | None = None,
) -> Book:
    """Monday's book with G9's email overridden at Monday 09:00."""
    change = SetOverride("mis:G9", "emails", NEW_EMAIL, lifetime=lifetime, until=until)
    result = merge(monday(policy), change, policy=policy, at=london(23, 9), by="office")
    assert [o.field for o in result.report.overrides_set] == ["emails"]
    return result.book


def emails_of(book: Book, cid: str, policy: Policy, at: datetime) -> tuple[str, ...]:
    return tuple(e.address for e in contact_at(book, cid, policy=policy, at=at).data.emails)


def two_feeds() -> Policy:
    """An MIS that does not cover emails, and an import that does."""
    mis_covers = {"given_name", "family_name", "role", "phones", "relationships"}
    mis_covers |= {"year_group", "registration_group"}
    return Policy(
        sources=(
            Source("mis", SourceKind.MIS, covers=frozenset(mis_covers)),
            Source(
                "import",
                SourceKind.IMPORT,
                covers=frozenset({"given_name", "family_name", "phones", "emails"}),
            ),
        )
    )


class TestInputChecks:
    def test_naive_datetime_is_a_usage_error(self) -> None:
        """`at` without a timezone is refused."""
        policy = mis_policy()
        snapshot = full(london(23, 1, 55), school())
        with pytest.raises(UsageError):
            merge(Book(), snapshot, policy=policy, at=datetime(2026, 11, 23, 2), by="nightly")

    def test_merge_before_the_books_last_merge_is_a_usage_error(self) -> None:
        """Merges go forward in time: one dated before the book's last is refused."""
        policy = mis_policy()
        book = monday(policy)
        save = AddressBookSave("address-book:la", ContactData("Lars", "Governor"))
        with pytest.raises(UsageError):
            merge(book, save, policy=policy, at=london(23, 1), by="office")
        # The same change after the last merge is fine.
        later = merge(book, save, policy=policy, at=london(23, 3), by="office")
        assert later.report.status is Status.APPLIED

    def test_snapshot_of_unknown_source_is_a_usage_error(self) -> None:
        """A snapshot from a source the policy does not name is refused."""
        policy = mis_policy()
        with pytest.raises(UsageError):
            merge(
                Book(),
                full(london(23, 1, 55), school(), source="other-mis"),
                policy=policy,
                at=london(23, 2),
                by="nightly",
            )

    def test_duplicate_record_keys_raise_source_data_error_naming_the_key(self) -> None:
        """Two records under one key: SourceDataError says which key, not the values."""
        policy = mis_policy()
        records = [*school(), guardian("G8", "P8", mobile="07700 900777", given="Hal")]
        with pytest.raises(SourceDataError) as caught:
            merge(Book(), full(london(23, 1, 55), records), policy=policy, at=london(23, 2), by="n")
        assert caught.value.key == "G8"
        assert "G8" in str(caught.value)
        assert "900777" not in str(caught.value)
        assert "900102" not in str(caught.value)

    def test_empty_full_snapshot_raises_and_leaves_book_unchanged(self) -> None:
        """An empty full snapshot is never read as 'everyone left'."""
        policy = mis_policy()
        book = monday(policy)
        before = dumps(book)
        with pytest.raises(EmptySnapshotError):
            merge(book, full(london(24, 1, 55), []), policy=policy, at=london(24, 2), by="n")
        assert dumps(book) == before
        assert not contact_at(book, "mis:G9", policy=policy, at=london(24, 3)).departed


class TestStaleAndRepeatedSnapshots:
    def test_snapshot_read_before_the_last_applied_is_stale(self) -> None:
        """A snapshot extracted before the last applied one for its source is refused."""
        policy = mis_policy()
        book = sync(monday(policy), policy, 24, school())
        old = full(london(23, 12), school(guardian("G9", "P9", mobile="07700 900555")))
        with pytest.raises(StaleSnapshotError):
            merge(book, old, policy=policy, at=london(24, 9), by="late upload")

    def test_same_snapshot_twice_is_no_change_and_same_book(self) -> None:
        """Applying a snapshot again changes nothing and returns the very same book."""
        policy = mis_policy()
        snapshot = full(london(23, 1, 55), school())
        book = merge(Book(), snapshot, policy=policy, at=london(23, 2), by="nightly").book
        again = merge(book, snapshot, policy=policy, at=london(23, 3), by="nightly")
        assert again.report.status is Status.NO_CHANGE
        assert again.book is book

    def test_same_records_in_another_order_is_no_change(self) -> None:
        """Order-blind: the same snapshot with its records reversed changes nothing."""
        policy = mis_policy()
        book = monday(policy)
        reordered = full(london(23, 1, 55), list(reversed(school())))
        again = merge(book, reordered, policy=policy, at=london(23, 3), by="nightly")
        assert again.report.status is Status.NO_CHANGE
        assert again.book is book

    def test_different_snapshot_with_same_extraction_time_is_stale(self) -> None:
        """Two different snapshots cannot both be 'the MIS at 01:55'."""
        policy = mis_policy()
        book = monday(policy)
        other = full(london(23, 1, 55), school(guardian("G9", "P9", mobile="07700 900555")))
        with pytest.raises(StaleSnapshotError):
            merge(book, other, policy=policy, at=london(23, 3), by="nightly")


class TestDeltaSnapshots:
    def test_delta_adds_changes_and_removes(self) -> None:
        """A delta adds P7, changes G8's phone and removes G9; the rest is untouched."""
        policy = mis_policy()
        book = monday(policy)
        added = Record("P7", ContactData("Zed", "Pupil", Role.PUPIL, year_group="7"))
        changed = guardian("G8", "P8", mobile="07700 900888", email="g8@parent.test", given="Hal")
        delta = Snapshot(
            "mis", london(24, 1, 55), (added, changed), kind=SnapshotKind.DELTA, removed=("G9",)
        )
        result = merge(book, delta, policy=policy, at=london(24, 2), by="nightly")
        report = result.report
        assert report.status is Status.APPLIED
        assert report.created == ("mis:P7",)
        assert [(c.contact_id, c.field) for c in report.changes if c.contact_id == "mis:G8"] == [
            ("mis:G8", "phones")
        ]
        assert report.departed == ("mis:G9",)
        at = london(24, 9)
        g9 = contact_at(result.book, "mis:G9", policy=policy, at=at)
        assert g9.departed
        assert g9.departed_at == london(24, 2)
        # Records the delta did not mention are neither departed nor changed.
        for cid in ("mis:S1", "mis:GOV", "mis:P9"):
            assert not contact_at(result.book, cid, policy=policy, at=at).departed
        sms = recipients(
            result.book, ("mis:G9", "mis:G8", "mis:S1"), Channel.SMS, policy=policy, at=at
        )
        assert sorted(sms.addresses) == ["+447700900201", "+447700900888"]
        assert [(u.contact_id, u.reason) for u in sms.unreachable] == [("mis:G9", "departed")]


class TestDepartedAndReturned:
    def test_departed_record_that_reappears_returns(self) -> None:
        """G9 leaves on Tuesday and is back on Wednesday: reported returned, a recipient again."""
        policy = mis_policy()
        book = monday(policy)
        without_g9 = [r for r in school() if r.key != "G9"]
        book = sync(book, policy, 24, without_g9)
        assert contact_at(book, "mis:G9", policy=policy, at=london(24, 9)).departed
        gone = recipients(book, ("mis:G9",), Channel.SMS, policy=policy, at=london(24, 9))
        assert gone.addresses == ()
        at = london(25, 2)
        result = merge(book, full(at - READ_AHEAD, school()), policy=policy, at=at, by="nightly")
        assert result.report.returned == ("mis:G9",)
        back = contact_at(result.book, "mis:G9", policy=policy, at=london(25, 9))
        assert not back.departed
        assert back.departed_at is None
        sms = recipients(result.book, ("mis:G9",), Channel.SMS, policy=policy, at=london(25, 9))
        assert sms.addresses == ("+447700900101",)


def guarded() -> Policy:
    """A policy whose guard holds any sync departing more than one record."""
    return mis_policy(guard=DepartureGuard(max_count=1, max_fraction=1.0))


def held_sync(policy: Policy) -> tuple[Book, Snapshot, str]:
    """Monday's book and a Tuesday snapshot missing G8 and G9, which the guard holds."""
    book = monday(policy)
    snapshot = full(london(24, 1, 55), [r for r in school() if r.key not in ("G8", "G9")])
    result = merge(book, snapshot, policy=policy, at=london(24, 2), by="nightly")
    assert result.report.status is Status.HELD
    assert result.report.held is not None
    return book, snapshot, result.report.held.token


def saved_after_hold(policy: Policy) -> tuple[Book, Snapshot, str]:
    """The held sync of `held_sync`, then an unrelated address-book save at 02:30."""
    book, snapshot, token = held_sync(policy)
    saved = merge(
        book,
        AddressBookSave("address-book:cover", ContactData("Robin", "Hale")),
        policy=policy,
        at=london(24, 2, 30),
        by="office",
    ).book
    return saved, snapshot, token


class TestConfirmSync:
    def test_token_for_another_snapshot_is_a_usage_error(self) -> None:
        """A token binds to its snapshot: it cannot confirm a different one."""
        policy = guarded()
        book, _, token = held_sync(policy)
        other = full(london(24, 1, 56), [r for r in school() if r.key not in ("S1", "GOV")])
        with pytest.raises(UsageError):
            merge(book, ConfirmSync(other, token), policy=policy, at=london(24, 3), by="manager")

    def test_token_confirms_its_own_snapshot(self) -> None:
        """For contrast: the token applies exactly the snapshot it was given for."""
        policy = guarded()
        book, snapshot, token = held_sync(policy)
        result = merge(
            book, ConfirmSync(snapshot, token), policy=policy, at=london(24, 3), by="manager"
        )
        assert result.report.status is Status.APPLIED
        assert result.report.departed == ("mis:G8", "mis:G9")

    def test_held_token_no_longer_works_after_another_sync_of_that_source(self) -> None:
        """After another MIS sync, the held token describes an out-of-date book."""
        policy = guarded()
        book, snapshot, token = held_sync(policy)
        # An earlier-read but complete export is applied in the meantime.
        between = full(london(24, 1, 50), school())
        between_result = merge(book, between, policy=policy, at=london(24, 2, 30), by="rerun")
        assert between_result.report.status is Status.APPLIED
        with pytest.raises(UsageError):
            merge(
                between_result.book,
                ConfirmSync(snapshot, token),
                policy=policy,
                at=london(24, 3),
                by="manager",
            )

    def test_a_sync_of_another_source_in_between_refuses_the_token(self) -> None:
        """F13: the token binds the book as it was held; an import applied since refuses it."""
        policy = guarded()
        book, snapshot, token = held_sync(policy)
        row = guardian("row-1", mobile="07700 900401", email="una@example.org", given="Una")
        book = merge(
            book,
            full(london(24, 2, 10), [row], "import"),
            policy=policy,
            at=london(24, 2, 10),
            by="u",
        ).book
        with pytest.raises(ConfirmationMismatchError):
            merge(book, ConfirmSync(snapshot, token), policy=policy, at=london(24, 3), by="manager")

    def test_an_address_book_save_in_between_refuses_the_token(self) -> None:
        """F13: an unrelated address-book save after the hold refuses the token."""
        policy = guarded()
        saved, snapshot, token = saved_after_hold(policy)
        with pytest.raises(ConfirmationMismatchError, match="changed since the sync was held"):
            merge(
                saved, ConfirmSync(snapshot, token), policy=policy, at=london(24, 3), by="manager"
            )

    def test_a_hold_again_gives_a_token_for_the_book_as_it_now_is(self) -> None:
        """F13: after a change, syncing the same export again holds it with a token that applies."""
        policy = guarded()
        saved, snapshot, token = saved_after_hold(policy)
        again = merge(saved, snapshot, policy=policy, at=london(24, 2, 40), by="nightly").report
        assert again.held is not None
        assert again.held.token != token
        result = merge(
            saved,
            ConfirmSync(snapshot, again.held.token),
            policy=policy,
            at=london(24, 3),
            by="manager",
        )
        assert result.report.departed == ("mis:G8", "mis:G9")

    def test_the_token_is_the_same_on_every_run(self) -> None:
        """The token is a pure function of the snapshot and the book: two holds give one token."""
        policy = guarded()
        assert held_sync(policy)[2] == held_sync(policy)[2]


class TestOverrideUntil:
    UNTIL = london(23, 12)

    def test_in_force_before_its_time(self) -> None:
        """Before `until` the edited value is effective."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.UNTIL, self.UNTIL)
        assert emails_of(book, "mis:G9", policy, london(23, 11)) == ("g9.new@parent.test",)

    def test_query_after_until_no_longer_shows_it_even_before_any_merge(self) -> None:
        """At `until` the source's value is back, with no merge needed."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.UNTIL, self.UNTIL)
        assert emails_of(book, "mis:G9", policy, self.UNTIL) == ("g9@parent.test",)
        later = contact_at(book, "mis:G9", policy=policy, at=london(23, 13))
        assert later.data.emails == (Email("g9@parent.test"),)
        assert later.provenance["emails"].kind is ProvenanceKind.SOURCE
        assert later.overrides == ()

    def test_next_merge_after_until_ends_and_reports_it(self) -> None:
        """The first merge after `until`, of any kind, ends the override in its report."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.UNTIL, self.UNTIL)
        group = SetGroup(GroupDefinition("Office", members=frozenset({"mis:S1"})))
        result = merge(book, group, policy=policy, at=london(23, 15), by="office")
        ended = result.report.overrides_ended
        assert [(e.override.contact_id, e.override.field) for e in ended] == [("mis:G9", "emails")]
        assert ended[0].outcome is OverrideOutcome.LOST  # the MIS still has the old address
        assert result.book.overrides.get("mis:G9", ()) == ()

    def test_history_after_it_ended_still_stops_at_until(self) -> None:
        """Once ended by a later merge, the past still reads: edited before, source after until."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.UNTIL, self.UNTIL)
        group = SetGroup(GroupDefinition("Office", members=frozenset({"mis:S1"})))
        book = merge(book, group, policy=policy, at=london(23, 15), by="office").book
        assert emails_of(book, "mis:G9", policy, london(23, 11)) == ("g9.new@parent.test",)
        assert emails_of(book, "mis:G9", policy, london(23, 13)) == ("g9@parent.test",)

    def test_merge_before_until_keeps_it(self) -> None:
        """A merge before `until` that is not a sync of the MIS leaves it in force."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.UNTIL, self.UNTIL)
        group = SetGroup(GroupDefinition("Office", members=frozenset({"mis:S1"})))
        result = merge(book, group, policy=policy, at=london(23, 10), by="office")
        assert result.report.overrides_ended == ()
        assert [o.field for o in result.book.overrides["mis:G9"]] == ["emails"]


class TestOverrideSourceChange:
    def test_survives_a_sync_where_the_source_holds_the_old_value(self) -> None:
        """Tuesday's MIS still has the old address: the override is kept and reported kept."""
        policy = mis_policy()
        book = with_override(policy, OverrideLifetime.SOURCE_CHANGE)
        at = london(24, 2)
        result = merge(book, full(at - READ_AHEAD, school()), policy=policy, at=at, by="nightly")
        assert [(o.contact_id, o.field) for o in result.report.overrides_kept] == [
            ("mis:G9", "emails")
        ]
        assert result.report.overrides_ended == ()
        assert emails_of(result.book, "mis:G9", policy, london(24, 9)) == ("g9.new@parent.test",)

    def test_ends_superseded_when_the_source_changes_to_another_value(self) -> None:
        """Wednesday's MIS holds a third address: the override ends `superseded`."""
        policy = mis_policy()
        book = sync(with_override(policy, OverrideLifetime.SOURCE_CHANGE), policy, 24, school())
        third = guardian(
            "G9", "P9", mobile="07700 900101", email="g9.third@parent.test", given="Gita"
        )
        at = london(25, 2)
        result = merge(
            book, full(at - READ_AHEAD, school(third)), policy=policy, at=at, by="nightly"
        )
        assert [e.outcome for e in result.report.overrides_ended] == [OverrideOutcome.SUPERSEDED]
        assert result.report.overrides_kept == ()
        assert emails_of(result.book, "mis:G9", policy, london(25, 9)) == ("g9.third@parent.test",)

    def test_ends_confirmed_when_the_source_takes_the_edited_value(self) -> None:
        """Wednesday's MIS holds the edited address: the override ends `confirmed`."""
        policy = mis_policy()
        book = sync(with_override(policy, OverrideLifetime.SOURCE_CHANGE), policy, 24, school())
        same = guardian("G9", "P9", mobile="07700 900101", email="g9.new@parent.test", given="Gita")
        at = london(25, 2)
        result = merge(
            book, full(at - READ_AHEAD, school(same)), policy=policy, at=at, by="nightly"
        )
        assert [e.outcome for e in result.report.overrides_ended] == [OverrideOutcome.CONFIRMED]
        assert emails_of(result.book, "mis:G9", policy, london(25, 9)) == ("g9.new@parent.test",)


class TestClearAndRefusedOverrides:
    def test_clear_override_ends_it_cleared(self) -> None:
        """ClearOverride ends the edit at once, reported `cleared`; the source value is back."""
        policy = mis_policy()
        book = with_override(policy)
        result = merge(
            book, ClearOverride("mis:G9", "emails"), policy=policy, at=london(23, 10), by="office"
        )
        assert [e.outcome for e in result.report.overrides_ended] == [OverrideOutcome.CLEARED]
        assert emails_of(result.book, "mis:G9", policy, london(23, 11)) == ("g9@parent.test",)

    def test_override_of_an_address_book_contact_is_a_usage_error(self) -> None:
        """Address-book contacts are edited directly, never overridden."""
        policy = mis_policy()
        book = merge(
            monday(policy),
            AddressBookSave("address-book:la", ContactData("Lars", "Governor", Role.GOVERNOR)),
            policy=policy,
            at=london(23, 9),
            by="office",
        ).book
        with pytest.raises(UsageError):
            merge(
                book,
                SetOverride("address-book:la", "emails", NEW_EMAIL),
                policy=policy,
                at=london(23, 10),
                by="office",
            )

    def test_override_of_an_uncovered_field_is_a_usage_error(self) -> None:
        """The import does not cover year_group: there is no source value to override."""
        policy = mis_policy()
        row = guardian("row-1", mobile="07700 900401", given="Una")
        book = merge(
            Book(), full(london(23, 9), [row], "import"), policy=policy, at=london(23, 9), by="u"
        ).book
        with pytest.raises(UsageError):
            merge(
                book,
                SetOverride("import:row-1", "year_group", ContactData(year_group="9")),
                policy=policy,
                at=london(23, 10),
                by="office",
            )


LA = ContactData(
    "Lars",
    "Governor",
    Role.GOVERNOR,
    phones=(Phone("07700 900301"),),
    emails=(Email("la@example.org"),),
)


class TestAddressBookRemove:
    def test_remove_of_an_mis_contact_is_a_usage_error(self) -> None:
        """A contact whose home is the MIS is removed at the MIS, not in the address book."""
        policy = mis_policy()
        with pytest.raises(UsageError):
            merge(
                monday(policy),
                AddressBookRemove("mis:G9"),
                policy=policy,
                at=london(23, 9),
                by="office",
            )

    def test_remove_departs_and_a_later_save_restores(self) -> None:
        """Removed: departed, not a recipient. Saved again: back, and reported returned."""
        policy = mis_policy()
        cid = f"{ADDRESS_BOOK}:la"
        book = merge(Book(), AddressBookSave(cid, LA), policy=policy, at=london(23, 9), by="o").book
        removed = merge(book, AddressBookRemove(cid), policy=policy, at=london(23, 10), by="o")
        assert removed.report.departed == (cid,)
        book = removed.book
        assert contact_at(book, cid, policy=policy, at=london(23, 11)).departed
        assert (
            recipients(book, (cid,), Channel.EMAIL, policy=policy, at=london(23, 11)).addresses
            == ()
        )
        restored = merge(
            book,
            AddressBookSave(cid, ContactData(emails=(Email("la.new@example.org"),)), {"emails"}),
            policy=policy,
            at=london(23, 12),
            by="o",
        )
        assert restored.report.returned == (cid,)
        contact = contact_at(restored.book, cid, policy=policy, at=london(23, 13))
        assert not contact.departed
        assert contact.data.given_name == "Lars"
        email = recipients(restored.book, (cid,), Channel.EMAIL, policy=policy, at=london(23, 13))
        assert email.addresses == ("la.new@example.org",)


class TestErase:
    def _book(self) -> tuple[Policy, Book]:
        """G9 with history: a changed phone, an ended and a live override, a linked import
        record, membership of a group."""
        policy = two_feeds()
        book = sync(Book(), policy, 23, school())
        book = merge(
            book,
            SetOverride("mis:G9", "phones", ContactData(phones=(Phone("07700 900111"),))),
            policy=policy,
            at=london(23, 9),
            by="office",
        ).book
        changed = guardian("G9", "P9", mobile="07700 900121", email="g9@parent.test", given="Gita")
        book = sync(book, policy, 24, school(changed))
        row = guardian("row-9", mobile="07700 900131", email="gita.home@example.org", given="Gita")
        book = merge(
            book, full(london(24, 8), [row], "import"), policy=policy, at=london(24, 8), by="u"
        ).book
        book = merge(
            book, Link("import:row-9", "mis:G9"), policy=policy, at=london(24, 9), by="office"
        ).book
        book = merge(
            book,
            SetOverride("mis:G9", "phones", ContactData(phones=(Phone("07700 900141"),))),
            policy=policy,
            at=london(24, 10),
            by="office",
        ).book
        group = GroupDefinition("Contacts", members=frozenset({"mis:G9", "mis:G8", "mis:S1"}))
        book = merge(book, SetGroup(group), policy=policy, at=london(24, 11), by="office").book
        return policy, book

    SECRETS = (
        "Gita",
        "7700900101",
        "7700 900101",
        "7700900111",
        "7700 900111",
        "7700900121",
        "7700 900121",
        "7700900131",
        "7700 900131",
        "7700900141",
        "7700 900141",
        "g9@parent.test",
        "gita.home@example.org",
    )

    def test_the_fixture_really_holds_the_values(self) -> None:
        """Before erasure the serialised book holds every one of G9's values."""
        _, book = self._book()
        text = dumps(book)
        for value in ("Gita", "7700 900101", "7700 900111", "7700 900121", "7700 900131"):
            assert value in text
        for value in ("7700 900141", "g9@parent.test", "gita.home@example.org"):
            assert value in text

    def test_no_value_of_the_person_remains_in_the_book(self) -> None:
        """After Erase no phone, email or name of theirs occurs in the serialised book."""
        policy, book = self._book()
        result = merge(book, Erase("mis:G9"), policy=policy, at=london(24, 12), by="dpo")
        assert result.report.erased == ("mis:G9",)
        text = dumps(result.book)
        assert [value for value in self.SECRETS if value in text] == []
        report_text = dumps(result.report)
        assert [value for value in self.SECRETS if value in report_text] == []

    def test_gone_from_contacts_and_group_members(self) -> None:
        """The contact and its linked record are gone; the group keeps only the others."""
        policy, book = self._book()
        book = merge(book, Erase("mis:G9"), policy=policy, at=london(24, 12), by="dpo").book
        assert "mis:G9" not in book.contacts
        assert "import:row-9" not in book.contacts
        assert "G9" not in book.records["mis"]
        assert "row-9" not in book.records.get("import", {})
        for versions in book.groups.values():
            for version in versions:
                assert version.group is not None
                assert "mis:G9" not in version.group.members
        members = book.groups["Contacts"][-1].group
        assert members is not None
        assert members.members == frozenset({"mis:G8", "mis:S1"})
        with pytest.raises(UnknownContactError):
            contact_at(book, "mis:G9", policy=policy, at=london(24, 13))
        sms = recipients(book, "Contacts", Channel.SMS, policy=policy, at=london(24, 13))
        assert sorted(sms.addresses) == ["+447700900102", "+447700900201"]


class TestLinkAndUnlink:
    def _linked(self, policy: Policy) -> Book:
        """G9 in the MIS and row-17 in the import, linked at Monday 10:00."""
        book = sync(Book(), policy, 23, school())
        row = guardian("row-17", mobile="07700 900500", email="g9.home@example.org", given="Gita")
        book = merge(
            book, full(london(23, 9), [row], "import"), policy=policy, at=london(23, 9), by="u"
        ).book
        return merge(
            book, Link("import:row-17", "mis:G9"), policy=policy, at=london(23, 10), by="office"
        ).book

    def test_unlink_after_link_gives_back_two_contacts(self) -> None:
        """Linked, one contact with the MIS as home; unlinked, two again, each with its own data."""
        policy = two_feeds()
        book = self._linked(policy)
        linked = contact_at(book, "import:row-17", policy=policy, at=london(23, 11))
        assert linked.id == "mis:G9"
        assert linked.data.emails == (Email("g9.home@example.org"),)
        result = merge(book, Unlink("import:row-17"), policy=policy, at=london(23, 12), by="office")
        assert result.report.status is Status.APPLIED
        book = result.book
        at = london(23, 13)
        mis = contact_at(book, "mis:G9", policy=policy, at=at)
        imported = contact_at(book, "import:row-17", policy=policy, at=at)
        assert mis.id == "mis:G9"
        assert mis.home == "mis:G9"
        assert imported.id == "import:row-17"
        assert imported.home == "import:row-17"
        assert mis.data.phones == (Phone("07700 900101"),)
        assert mis.data.emails == ()  # the MIS does not cover emails; only the import had one
        assert imported.data.phones == (Phone("07700 900500"),)
        assert imported.data.emails == (Email("g9.home@example.org"),)

    def test_unlink_keeps_the_linked_past(self) -> None:
        """Asked about 11:00, while they were linked, both ids still answer as one contact."""
        policy = two_feeds()
        book = self._linked(policy)
        before = contact_at(book, "import:row-17", policy=policy, at=london(23, 11))
        book = merge(
            book, Unlink("import:row-17"), policy=policy, at=london(23, 12), by="office"
        ).book
        then = london(23, 11)
        assert contact_at(book, "mis:G9", policy=policy, at=then).data.emails == (
            Email("g9.home@example.org"),
        )
        after = contact_at(book, "import:row-17", policy=policy, at=then)
        assert after.id == before.id == "mis:G9"
        assert after.data == before.data


class TestExplainThePast:
    def test_explain_lists_overrides_with_their_outcomes(self) -> None:
        """At a past time, explain shows the value then and every override that touched it."""
        policy = mis_policy()
        book = with_override(policy)  # Monday 09:00, NEXT_SYNC
        book = sync(book, policy, 24, school())  # ends it `lost`
        second = ContactData(emails=(Email("g9.second@parent.test"),))
        book = merge(
            book,
            SetOverride("mis:G9", "emails", second),
            policy=policy,
            at=london(24, 10),
            by="office",
        ).book
        book = merge(
            book, ClearOverride("mis:G9", "emails"), policy=policy, at=london(24, 11), by="office"
        ).book

        monday_evening = explain(book, "mis:G9", "emails", policy=policy, at=london(23, 19))
        assert monday_evening.effective_value == (Email("g9.new@parent.test"),)
        assert monday_evening.provenance.kind is ProvenanceKind.OVERRIDE
        assert monday_evening.provenance.by == "office"
        assert [
            (ev.override.edited_value, ev.ended.outcome if ev.ended else None)
            for ev in monday_evening.overrides
        ] == [((Email("g9.new@parent.test"),), OverrideOutcome.LOST)]

        tuesday_noon = explain(book, "mis:G9", "emails", policy=policy, at=london(24, 12))
        assert tuesday_noon.effective_value == (Email("g9@parent.test"),)
        assert tuesday_noon.provenance.kind is ProvenanceKind.SOURCE
        assert [ev.ended.outcome if ev.ended else None for ev in tuesday_noon.overrides] == [
            OverrideOutcome.LOST,
            OverrideOutcome.CLEARED,
        ]

    def test_explain_of_another_field_lists_no_overrides(self) -> None:
        """Overrides of emails do not show when explaining phones."""
        policy = mis_policy()
        book = with_override(policy)
        why = explain(book, "mis:G9", "phones", policy=policy, at=london(23, 19))
        assert why.overrides == ()
        assert why.provenance.kind is ProvenanceKind.SOURCE


class TestUnknownContacts:
    def test_contact_at_before_the_contact_existed(self) -> None:
        """An address-book contact saved at 10:00 does not exist at 09:00."""
        policy = mis_policy()
        cid = f"{ADDRESS_BOOK}:la"
        book = merge(
            monday(policy), AddressBookSave(cid, LA), policy=policy, at=london(23, 10), by="o"
        ).book
        assert contact_at(book, cid, policy=policy, at=london(23, 10)).data.given_name == "Lars"
        with pytest.raises(UnknownContactError):
            contact_at(book, cid, policy=policy, at=london(23, 9))

    def test_mis_contact_before_its_first_sync(self) -> None:
        """A contact first synced Monday 02:00 is unknown on Sunday."""
        policy = mis_policy()
        with pytest.raises(UnknownContactError):
            contact_at(monday(policy), "mis:G9", policy=policy, at=london(22, 12))


class TestReprsHidePersonalValues:
    VALUES = (
        "Gita",
        "Parent",
        "07700 900101",
        "7700900101",
        "g9@parent.test",
        "g9.new@parent.test",
        "07700 900999",
        "7700900999",
    )

    def _assert_clean(self, text: str) -> None:
        assert [value for value in self.VALUES if value in text] == []

    def test_value_objects(self) -> None:
        """Phone, Email and ContactData reprs name fields, not values."""
        data = ContactData(
            "Gita",
            "Parent",
            Role.GUARDIAN,
            phones=(Phone("07700 900101"),),
            emails=(Email("g9@parent.test"),),
        )
        for obj in (Phone("07700 900101"), Email("g9@parent.test"), data, data.phones):
            self._assert_clean(repr(obj))
            self._assert_clean(str(obj))
        assert "Phone" in repr(Phone("07700 900101"))

    def test_contact_and_report(self) -> None:
        """A Contact and a Report full of changes and overrides keep values out of repr."""
        policy = mis_policy()
        book = with_override(policy)
        changed = guardian("G9", "P9", mobile="07700 900999", email="g9@parent.test", given="Gita")
        at = london(24, 2)
        result = merge(
            book, full(at - READ_AHEAD, school(changed)), policy=policy, at=at, by="nightly"
        )
        report = result.report
        assert report.changes
        assert report.overrides_ended
        self._assert_clean(repr(report))
        contact = contact_at(result.book, "mis:G9", policy=policy, at=london(24, 9))
        self._assert_clean(repr(contact))
        for item in (*report.changes, *report.overrides_ended):
            self._assert_clean(repr(item))
        set_report = merge(
            result.book,
            SetOverride("mis:G9", "emails", NEW_EMAIL),
            policy=policy,
            at=london(24, 9),
            by="office",
        ).report
        self._assert_clean(repr(set_report))
        self._assert_clean(repr(set_report.overrides_set))
        self._assert_clean(repr(explain(result.book, "mis:G9", "phones", policy=policy, at=at)))


class TestEditsThatChangeNothing:
    def test_saving_the_same_address_book_values_again_is_no_change(self) -> None:
        """Rule 5: a repeated save returns the same book and says so."""
        policy = mis_policy()
        data = ContactData("Lars", "Berg", Role.GOVERNOR, emails=(Email("lars@example.org"),))
        first = merge(
            Book(),
            AddressBookSave("address-book:lars", data),
            policy=policy,
            at=london(23, 9),
            by="office",
        )
        assert first.report.status is Status.APPLIED
        again = merge(
            first.book,
            AddressBookSave("address-book:lars", data),
            policy=policy,
            at=london(23, 10),
            by="office",
        )
        assert again.report.status is Status.NO_CHANGE
        assert again.book is first.book

    def test_setting_the_same_group_again_is_no_change(self) -> None:
        """Rule 5: a group set twice to one definition keeps one version."""
        policy = mis_policy()
        book = sync(Book(), policy, 23, school())
        group = GroupDefinition("Governors", members=frozenset({"mis:S1"}))
        book = merge(book, SetGroup(group), policy=policy, at=london(23, 9), by="x").book
        again = merge(book, SetGroup(group), policy=policy, at=london(23, 10), by="x")
        assert again.report.status is Status.NO_CHANGE
        assert len(again.book.groups["Governors"]) == 1

    def test_a_sync_with_nothing_new_still_counts_as_a_sync(self) -> None:
        """Rule 8: an unchanged nightly sync confirms the values, so it is recorded."""
        policy = mis_policy()
        book = sync(Book(), policy, 23, school())
        result = merge(
            book, full(london(24, 2), school()), policy=policy, at=london(24, 2), by="nightly"
        )
        assert result.report.status is Status.APPLIED
        assert result.report.changes == ()
        assert len(result.book.syncs["mis"]) == 2


class TestRulesAsTables:
    def test_merge_applies_every_kind_of_change_and_no_other(self) -> None:
        """The table of kinds of change holds exactly the types of `Change`."""
        module = importlib.import_module("sourcetruth.merge")  # the module, not the function
        assert set(module._KINDS) == set(typing.get_args(module.Change))

    def test_every_list_of_a_report_is_combined(self) -> None:
        """`combine` joins every list a Report holds: the report's table names them all."""
        lists = [a.name for a in attrs.fields(Report) if a.default == ()]
        one = Report(Status.APPLIED, "x", london(23, 9), "x", **dict.fromkeys(lists, ("a",)))
        two = Report(Status.APPLIED, "x", london(23, 9), "x", **dict.fromkeys(lists, ("b",)))
        combined = combine([one, two])
        assert {name: getattr(combined, name) for name in lists} == dict.fromkeys(lists, ("a", "b"))
