"""Partial records in a delta: a source that sends only some fields of a person."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from school import guardian, london, mis_policy, pupil, school
from sourcetruth import (
    FIELDS,
    Book,
    ContactData,
    Phone,
    Record,
    Snapshot,
    SnapshotKind,
    UsageError,
    contact_at,
    dumps,
    loads,
    merge,
)
from sourcetruth.testing import strategies as sts

POLICY = mis_policy()
MONDAY, TUESDAY = london(23, 2), london(24, 2)


def monday() -> Book:
    return merge(
        Book(), Snapshot("mis", MONDAY, school()), policy=POLICY, at=MONDAY, by="nightly"
    ).book


def delta(*records: Record) -> Snapshot:
    return Snapshot("mis", TUESDAY, records, kind=SnapshotKind.DELTA)


class TestPartialRecords:
    """A partial record changes the fields it names and keeps the rest."""

    def test_a_phone_change_keeps_the_links(self) -> None:
        """A guardian's new number arrives; the links the delta could not see stay."""
        book = monday()
        before = contact_at(book, "mis:G9", policy=POLICY, at=MONDAY)
        assert before.data.relationships
        change = ContactData(phones=(Phone("07700 900999"),))
        result = merge(
            book, delta(Record("G9", change, fields={"phones"})), policy=POLICY, at=TUESDAY, by="n"
        )
        after = contact_at(result.book, "mis:G9", policy=POLICY, at=TUESDAY)
        assert after.data.phones == (Phone("07700 900999"),)
        assert after.data.relationships == before.data.relationships
        assert after.data.given_name == before.data.given_name
        assert [c.field for c in result.report.changes] == ["phones"]

    def test_a_partial_record_of_someone_new_stands_whole(self) -> None:
        """Nothing is known to keep for a new person: the record's data is all there is."""
        data = ContactData(given_name="Ann", phones=(Phone("07700 900555"),))
        snapshot = delta(Record("NEW", data, fields={"given_name"}))
        result = merge(monday(), snapshot, policy=POLICY, at=TUESDAY, by="n")
        assert result.report.created == ("mis:NEW",)
        assert contact_at(result.book, "mis:NEW", policy=POLICY, at=TUESDAY).data == data

    def test_a_full_snapshot_holds_whole_records(self) -> None:
        """A full snapshot says everything about everyone: no partial records."""
        with pytest.raises(UsageError):
            Snapshot(
                "mis", MONDAY, [Record("P9", pupil("P9", "9", "9B").data, fields={"year_group"})]
            )

    @pytest.mark.parametrize("fields", [set(), {"phone"}, "phones"])
    def test_fields_are_checked(self, fields: set[str] | str) -> None:
        """An empty or unknown field list is a usage error."""
        with pytest.raises(UsageError):
            Record("P9", ContactData(), fields=fields)

    def test_partial_records_serialise(self) -> None:
        """A partial delta survives the JSON converter."""
        snapshot = delta(
            Record("G9", guardian("G9", "P9", mobile="07700 900101").data, fields={"phones"})
        )
        assert loads(dumps(snapshot), Snapshot) == snapshot


@settings(max_examples=budget.examples(30), deadline=None)
@given(
    record=sts.records(),
    update=sts.contact_data(),
    fields=st.sets(st.sampled_from(FIELDS), min_size=1),
)
def test_a_partial_record_is_the_whole_record_it_completes(record, update, fields) -> None:
    """Merging a partial record gives the book that the whole record it stands for gives."""
    base = merge(Book(), Snapshot("mis", MONDAY, [record]), policy=POLICY, at=MONDAY, by="n").book
    whole = attrs.evolve(record.data, **{f: getattr(update, f) for f in fields})
    by_part = merge(
        base, delta(Record(record.key, update, fields=fields)), policy=POLICY, at=TUESDAY, by="n"
    )
    by_whole = merge(base, delta(Record(record.key, whole)), policy=POLICY, at=TUESDAY, by="n")
    assert dumps(by_part.book) == dumps(by_whole.book)
    assert by_part.report == by_whole.report
