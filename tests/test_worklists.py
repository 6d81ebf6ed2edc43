"""Reports over the book: update at source, before the next sync, two feeds, data quality."""

from __future__ import annotations

from school import full, guardian, london, mis_policy, pupil, school
from sourcetruth import (
    Book,
    ContactData,
    Email,
    OverrideOutcome,
    Record,
    Role,
    merge,
)
from sourcetruth.worklists import before_next_sync, data_quality, two_feeds, update_at_source
from test_scenarios import READ_AHEAD, parent_governor_edits_email, sync

POLICY = mis_policy()


class TestUpdateAtSource:
    """The data manager's to-do list: lost edits, and edits still in force."""

    def test_an_edit_in_force_says_who_and_when_it_ends(self) -> None:
        """Thursday evening: the parent governor's email edit, by the office, ends Friday 02:00."""
        book = parent_governor_edits_email(POLICY)
        report = update_at_source(book, policy=POLICY, at=london(26, 19))
        assert report.lost == ()
        (edit,) = report.in_force
        assert (edit.override.contact_id, edit.override.field) == ("mis:GOV", "emails")
        assert edit.override.set_by == "office"
        assert edit.ends_at == london(27, 2)

    def test_a_lost_edit_is_listed_after_the_sync(self) -> None:
        """Friday's sync ends the edit as lost: it moves to the list of things to fix."""
        book = sync(parent_governor_edits_email(POLICY), POLICY, 27, school())
        report = update_at_source(book, policy=POLICY, at=london(27, 9))
        assert report.in_force == ()
        assert [(e.override.contact_id, e.outcome) for e in report.lost] == [
            ("mis:GOV", OverrideOutcome.LOST)
        ]
        later = update_at_source(book, policy=POLICY, at=london(27, 9), since=london(27, 3))
        assert later.lost == ()


class TestBeforeNextSync:
    """Which local edits tonight's sync would end."""

    def test_from_lifetimes_without_a_snapshot(self) -> None:
        """With no export at hand, the edits whose lifetime ends at that sync."""
        book = parent_governor_edits_email(POLICY)
        ahead = before_next_sync(book, "mis", policy=POLICY, at=london(26, 19))
        assert ahead.at == london(27, 2)
        assert [o.contact_id for o in ahead.ending] == ["mis:GOV"]
        assert ahead.outcomes == ()

    def test_from_a_dry_run_of_the_export(self) -> None:
        """With tonight's export, each edit's outcome is known before the sync runs."""
        book = parent_governor_edits_email(POLICY)
        updated = guardian("GOV", "P9b", mobile="07700 900103", email="pg.new@parent.test")
        export = full(london(27, 2) - READ_AHEAD, school(updated))
        ahead = before_next_sync(book, "mis", policy=POLICY, at=london(26, 23), snapshot=export)
        assert [e.outcome for e in ahead.outcomes] == [OverrideOutcome.CONFIRMED]


class TestTwoFeeds:
    """Rule 12: the same person in the MIS and an import is reported."""

    def test_a_parent_in_both(self) -> None:
        """The import repeats an MIS parent: reported, not merged."""
        book = sync(Book(), POLICY, 23, school())
        same = Record(
            "row-7",
            ContactData("Gita", "Parent", Role.GUARDIAN, emails=(Email("g9@parent.test"),)),
        )
        at = london(23, 9)
        book = merge(book, full(at, [same], "import"), policy=POLICY, at=at, by="import").book
        found = two_feeds(book, policy=POLICY)
        assert [{d.record, d.other} for d in found] == [{"import:row-7", "mis:G9"}]


class TestDataQuality:
    """Raw values, dangling links and unreachable guardians, named without their values."""

    def test_each_kind_of_problem(self) -> None:
        """A bad number, a link to nobody, and a guardian with no usable channel."""
        records = school(
            guardian("G9", "P9", mobile="07700 9001", email="g9@parent.test"),
            guardian("G8", "P404"),
        )
        book = sync(Book(), POLICY, 23, records)
        problems = data_quality(book, policy=POLICY, at=london(23, 9))
        found = {(p.contact_id, p.kind, p.field) for p in problems}
        assert ("mis:G9", "unnormalised", "phones") in found
        assert ("mis:G8", "dangling-link", "relationships") in found
        assert ("mis:G8", "unreachable", "phones") in found
        assert all("07700" not in p.detail for p in problems)

    def test_a_clean_school_has_none(self) -> None:
        """The test school's data is clean."""
        book = sync(Book(), POLICY, 23, school(pupil("P1", "7", "7A")))
        assert data_quality(book, policy=POLICY, at=london(23, 9)) == ()
