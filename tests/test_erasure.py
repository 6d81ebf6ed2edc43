"""Erasure with suppression (rule 13): gone from the book, journal and file, and kept out.

Every store's files (PostgreSQL's: its database's files on the server's disk)
are searched for the erased person's values; the rule's own checks run in
memory and through each database store (``store_kind``).
"""

from __future__ import annotations

import attrs
import pytest

from school import full, guardian, london, mis_policy, school
from sourcetruth import (
    Book,
    ContactData,
    Erase,
    Link,
    Phone,
    SetOverride,
    Status,
    UnknownContactError,
    UsageError,
    contact_at,
    dumps,
)
from sourcetruth.adapters.stores.base import apply
from stores import Place, kinds, merge
from test_merge import TestErase

POLICY = attrs.evolve(mis_policy(), suppression_key="a secret kept outside the store")
MONDAY = full(london(23, 1, 55), school())


def erased_monday() -> Book:
    book = merge(Book(), MONDAY, policy=POLICY, at=london(23, 2), by="nightly").book
    return merge(book, Erase("mis:G9"), policy=POLICY, at=london(23, 12), by="dpo").book


@pytest.mark.parametrize(
    "store_kind", kinds("memory", "sqlite", "postgres"), indirect=True, scope="module"
)
@pytest.mark.usefixtures("merges_through_store")
class TestSuppression:
    """An erased person does not come back with the next sync."""

    def test_the_next_sync_skips_them_and_says_so(self) -> None:
        """Tuesday's export still holds G9: skipped, counted, not back."""
        book = erased_monday()
        tuesday = full(london(24, 1, 55), school())
        result = merge(book, tuesday, policy=POLICY, at=london(24, 2), by="nightly")
        assert result.report.suppressed == 1
        assert "mis:G9" not in result.book.contacts
        assert "mis:G9" not in result.report.created
        assert "G9" not in str(result.report.suppressed)

    def test_reapplying_the_last_snapshot_is_no_change(self) -> None:
        """Monday's export again after the erasure: nothing to do, not a stale-snapshot error."""
        result = merge(erased_monday(), MONDAY, policy=POLICY, at=london(23, 13), by="nightly")
        assert result.report.status is Status.NO_CHANGE
        assert result.report.suppressed == 1

    def test_without_suppression_the_next_sync_brings_them_back(self) -> None:
        """Erase(suppress=False) erases history but lets the source bring the person back."""
        book = merge(Book(), MONDAY, policy=POLICY, at=london(23, 2), by="nightly").book
        book = merge(
            book, Erase("mis:G9", suppress=False), policy=POLICY, at=london(23, 12), by="dpo"
        ).book
        result = merge(
            book, full(london(24, 1, 55), school()), policy=POLICY, at=london(24, 2), by="nightly"
        )
        assert result.report.created == ("mis:G9",)

    def test_the_book_holds_a_keyed_hash_not_the_key(self) -> None:
        """The suppression entry depends on the secret; the key itself is nowhere in it."""
        book = erased_monday()
        (digest,) = book.suppressed
        assert "G9" not in digest
        other = attrs.evolve(POLICY, suppression_key="another secret")
        tuesday = full(london(24, 1, 55), school())
        with pytest.raises(UsageError):  # another secret would recognise nobody: refused
            merge(book, tuesday, policy=other, at=london(24, 2), by="nightly")


def history(store) -> None:
    """A person with history in the store: syncs, overrides, an import linked in, a journal."""
    apply(store, full(london(23, 1, 55), school()), policy=POLICY, at=london(23, 2), by="nightly")
    edit = SetOverride("mis:G9", "phones", ContactData(phones=(Phone("07700 900111"),)))
    apply(store, edit, policy=POLICY, at=london(23, 9), by="office")
    changed = guardian("G9", "P9", mobile="07700 900121", email="g9@parent.test", given="Gita")
    apply(
        store,
        full(london(24, 1, 55), school(changed)),
        policy=POLICY,
        at=london(24, 2),
        by="nightly",
    )
    row = guardian("row-9", mobile="07700 900131", email="gita.home@example.org", given="Gita")
    apply(store, full(london(24, 8), [row], "import"), policy=POLICY, at=london(24, 8), by="u")
    apply(store, Link("import:row-9", "mis:G9"), policy=POLICY, at=london(24, 9), by="office")
    edit = SetOverride("mis:G9", "phones", ContactData(phones=(Phone("07700 900141"),)))
    apply(store, edit, policy=POLICY, at=london(24, 10), by="office")


STORE_KINDS = kinds("sqlite", "json", "postgres")


@pytest.mark.parametrize("store_kind", STORE_KINDS, indirect=True, scope="module")
class TestStoreErasure:
    """No contact value of an erased person can be found anywhere in the store's files."""

    def test_the_values_are_there_before(self, test_place: Place) -> None:
        """The fixture really puts the person's values into the file (so the check can fail)."""
        store = test_place.open("book")
        history(store)
        store.close()
        data = test_place.raw_bytes()
        assert [v for v in TestErase.SECRETS if v.encode() in data] != []
        assert b"7700 900141" in data
        assert b"G9" in test_place.store_bytes()

    def test_no_value_remains_after_erasure(self, test_place: Place) -> None:
        """After Erase the bytes of every file of the store hold none of the person's values."""
        store = test_place.open("book")
        history(store)
        result = apply(store, Erase("mis:G9"), policy=POLICY, at=london(24, 12), by="dpo")
        assert result.report.erased == ("mis:G9",)
        store.close()
        data = test_place.raw_bytes()
        assert [v for v in TestErase.SECRETS if v.encode() in data] == []
        assert b"G9" not in test_place.store_bytes()  # not even the key, in the journal or anywhere
        reopened = test_place.open("book")
        book = reopened.load()
        assert "mis:G9" not in book.contacts
        assert len(reopened.journal()) == 7
        with pytest.raises(UnknownContactError):
            contact_at(book, "mis:G9", policy=POLICY, at=london(24, 13))
        reopened.close()

    def test_the_next_sync_keeps_them_out_of_the_store(self, test_place: Place) -> None:
        """Wednesday's export still has G9: the store's book does not take them back."""
        store = test_place.open("book")
        history(store)
        apply(store, Erase("mis:G9"), policy=POLICY, at=london(24, 12), by="dpo")
        changed = guardian("G9", "P9", mobile="07700 900121", email="g9@parent.test", given="Gita")
        result = apply(
            store,
            full(london(25, 1, 55), school(changed)),
            policy=POLICY,
            at=london(25, 2),
            by="nightly",
        )
        assert result.report.suppressed == 1
        assert "mis:G9" not in store.load().contacts
        store.close()


@pytest.mark.parametrize("store_kind", STORE_KINDS, indirect=True, scope="module")
def test_erasing_a_sources_last_record_round_trips(test_place: Place) -> None:
    """Erasing the only import record leaves no empty source: the store gives the same bytes."""
    store = test_place.open("book")
    apply(store, MONDAY, policy=POLICY, at=london(23, 2), by="nightly")
    row = guardian("row-1", mobile="07700 900131", given="Ivy")
    apply(store, full(london(23, 8), [row], "import"), policy=POLICY, at=london(23, 8), by="u")
    result = apply(store, Erase("import:row-1"), policy=POLICY, at=london(23, 9), by="dpo")
    assert "import" not in result.book.records
    assert dumps(store.load()) == dumps(result.book)
    store.close()
