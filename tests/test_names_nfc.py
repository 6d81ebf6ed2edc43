"""Names compare as text, not code points: NFC and NFD of one name are no change (issue 14)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

from school import full, guardian, london, mis_policy, school
from sourcetruth import Book, ContactData, Record, Role, merge
from sourcetruth._digest import name_key, record_digest
from sourcetruth._names import name_text, same_data
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.effective import comparable

COMPOSED = "Zoë Ó Briain-Łukasz"
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


def _named(key: str, given_name: str, family: str = "Ngũgĩ") -> Record:
    record = guardian(key, "P9", mobile="07700 900111", given=given_name)
    return attrs.evolve(record, data=attrs.evolve(record.data, family_name=family))


def test_the_two_spellings_differ_as_code_points() -> None:
    """The premise: the two forms are different strings that read the same."""
    assert COMPOSED != DECOMPOSED
    assert name_text(DECOMPOSED) == COMPOSED


class TestChangeDetection:
    def test_a_name_sent_again_in_nfd_is_no_change(self) -> None:
        """The MIS sends a name in NFC, then in NFD: no field change, no new version."""
        policy = mis_policy()
        first = school(_named("G9", COMPOSED))
        book = merge(Book(), full(london(23, 2), first), policy=policy, at=london(23, 2), by="n")
        again = school(_named("G9", DECOMPOSED, unicodedata.normalize("NFD", "Ngũgĩ")))
        result = merge(
            book.book, full(london(24, 2), again), policy=policy, at=london(24, 2), by="n"
        )
        assert result.report.changes == ()
        state = result.book.records["mis"]["G9"]
        assert len(state.versions) == 1
        assert state.current.data is not None
        assert state.current.data.given_name == COMPOSED  # the book keeps what it was sent

    def test_a_name_first_sent_in_nfd_is_kept_as_sent(self) -> None:
        """The stored value is the source's own: a first NFD name is stored in NFD."""
        policy = mis_policy()
        records = school(_named("G9", DECOMPOSED))
        book = merge(Book(), full(london(23, 2), records), policy=policy, at=london(23, 2), by="n")
        assert book.book.view["mis:G9"].data.given_name == DECOMPOSED

    def test_a_real_change_of_name_is_still_a_change(self) -> None:
        """For contrast: another name is reported."""
        policy = mis_policy()
        first = school(_named("G9", COMPOSED))
        book = merge(Book(), full(london(23, 2), first), policy=policy, at=london(23, 2), by="n")
        again = school(_named("G9", "Zoe Ó Briain-Łukasz"))
        result = merge(
            book.book, full(london(24, 2), again), policy=policy, at=london(24, 2), by="n"
        )
        assert [(c.contact_id, c.field) for c in result.report.changes] == [
            ("mis:G9", "given_name")
        ]

    def test_a_store_with_digests_sees_no_change(self, tmp_path: Path) -> None:
        """Through the SQLite store, which compares digests first, NFD is no change either."""
        policy = mis_policy()
        store = SqliteStore(tmp_path / "book.sqlite")
        try:
            snap = full(london(23, 2), school(_named("G9", COMPOSED)))
            apply(store, snap, policy=policy, at=london(23, 2), by="n")
            again = full(london(24, 2), school(_named("G9", DECOMPOSED)))
            result = apply(store, again, policy=policy, at=london(24, 2), by="n")
            assert result.report.changes == ()
            assert len(store.load().records["mis"]["G9"].versions) == 1
        finally:
            store.close()


class TestWhereNamesAreCompared:
    def test_digest_name_key_and_comparable_agree(self) -> None:
        """The digest, the duplicates' name key and the report's comparison read NFC."""
        a = ContactData(COMPOSED, "Ngũgĩ", Role.GUARDIAN)
        b = ContactData(DECOMPOSED, unicodedata.normalize("NFD", "Ngũgĩ"), Role.GUARDIAN)
        assert record_digest(a) == record_digest(b)
        assert name_key(a) == name_key(b)
        assert comparable("given_name", COMPOSED) == comparable("given_name", DECOMPOSED)
        assert same_data(a, b)


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(names, names, st.sampled_from(["NFD", "NFKC", "NFC"]))
def test_nfc_and_nfd_of_any_name_are_the_same_data(given_name: str, family: str, form: str) -> None:
    """Property: a name in NFD is the same name; NFKC (which changes letters) may not be."""
    data = ContactData(given_name, family, Role.PUPIL)
    other = ContactData(
        unicodedata.normalize(form, given_name), unicodedata.normalize(form, family), Role.PUPIL
    )
    canonical = unicodedata.normalize("NFC", given_name) == unicodedata.normalize(
        "NFC", other.given_name
    ) and unicodedata.normalize("NFC", family) == unicodedata.normalize("NFC", other.family_name)
    assert same_data(data, other) == canonical
    if canonical:
        assert record_digest(data) == record_digest(other)
        assert name_key(data) == name_key(other)


@given(names)
def test_a_merge_never_reports_a_name_changed_only_in_form(given_name: str) -> None:
    """Property: sending a name again in NFD gives no report of a change."""
    assume(given_name.strip())
    policy = mis_policy()
    first = school(_named("G9", given_name))
    book = merge(Book(), full(london(23, 2), first), policy=policy, at=london(23, 2), by="n")
    again = school(_named("G9", unicodedata.normalize("NFD", given_name)))
    result = merge(book.book, full(london(24, 2), again), policy=policy, at=london(24, 2), by="n")
    assert result.report.changes == ()
