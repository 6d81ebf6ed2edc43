"""A record's digest and name key: canonical, stable, and telling data apart.

The digest stands for a record's current data in a store, so that a sync
reads only the records whose digest differs: equal data must give one
digest, different data another, and a digest once written must never change
with the run, the machine or the Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

from sourcetruth import (
    FIELDS,
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Relationship,
    Role,
)
from sourcetruth._digest import (
    DEPARTED,
    digest_of_parts,
    email_part,
    name_key,
    name_part,
    phone_part,
    record_digest,
    relationship_part,
    text_part,
)
from sourcetruth._names import name_text, same_data
from sourcetruth.serialise import converter

texts = st.text(max_size=6)
phones = st.builds(Phone, texts, st.sampled_from(PhoneType))
emails = st.builds(Email, texts, st.sampled_from(EmailType))
relationships = st.builds(Relationship, texts, st.integers(-3, 3), st.booleans(), st.booleans())
#: Any data of the declared types, every field free (not only what a source says).
any_data = st.builds(
    ContactData,
    given_name=texts,
    family_name=texts,
    role=st.sampled_from(Role),
    phones=st.lists(phones, max_size=2).map(tuple),
    emails=st.lists(emails, max_size=2).map(tuple),
    relationships=st.lists(relationships, max_size=2).map(tuple),
    year_group=texts,
    registration_group=texts,
)

#: One fixed value, and its digest when this encoding was made: never to change silently.
PINNED = ContactData(
    "Zoë",
    " Ó Briain ",
    Role.GUARDIAN,
    phones=(Phone("07700 900123", PhoneType.HOME),),
    emails=(Email("zoe@example.org", EmailType.WORK),),
    relationships=(Relationship("P1", 2, False, True),),
    year_group="9",
    registration_group="9B",
)
PINNED_DIGEST = "3154d536978c69aed13c9d2e96cfd1e7"
DEPARTED_DIGEST = "9781e576fbd9086ba1e97c87f1bd1575"


class TestDigest:
    def test_a_fixed_value_keeps_its_digest(self) -> None:
        """The digest of one fixed value, and of departed, are what files already hold."""
        assert record_digest(PINNED) == PINNED_DIGEST
        assert record_digest(None) == DEPARTED == DEPARTED_DIGEST

    def test_the_digest_does_not_depend_on_the_hash_seed(self) -> None:
        """Two interpreters with different PYTHONHASHSEED give the pinned digest."""
        code = "from test_digest import PINNED, record_digest; print(record_digest(PINNED))"
        for seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), *sys.path])
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            assert out.stdout.strip() == PINNED_DIGEST

    @given(any_data)
    def test_equal_data_has_equal_digests(self, data: ContactData) -> None:
        """Equal data built apart (as a file read back builds it) gives one digest."""
        again = converter.structure(converter.unstructure(data), ContactData)
        assert again == data
        assert again is not data
        assert record_digest(again) == record_digest(data)

    @given(any_data, any_data, st.sampled_from(FIELDS))
    def test_a_difference_in_any_one_field_changes_the_digest(
        self, data: ContactData, other: ContactData, field: str
    ) -> None:
        """Data that differ in one field, whichever, have different digests."""
        changed = attrs.evolve(data, **{field: getattr(other, field)})
        assume(not same_data(changed, data))  # names in another Unicode form are the same
        assert record_digest(changed) != record_digest(data)

    @given(any_data)
    def test_no_data_digests_as_departed(self, data: ContactData) -> None:
        """Present data never has the digest of a departed record."""
        assert record_digest(data) != DEPARTED

    def test_every_field_is_in_the_digest(self) -> None:
        """A field added to ContactData is a field the digest must learn (this fails first)."""
        assert FIELDS == (
            "given_name",
            "family_name",
            "role",
            "phones",
            "emails",
            "relationships",
            "year_group",
            "registration_group",
        )


class TestParts:
    @given(any_data)
    def test_the_parts_make_the_text_of_the_whole(self, data: ContactData) -> None:
        """Digesting field by field gives the digest of the ascii() of the fields' tuple.

        That tuple's text (names in NFC) is what the digests in files were made of;
        a reader that digests a row from its cells' parts relies on the two
        being one.
        """
        whole = ascii(
            (
                name_text(data.given_name),
                name_text(data.family_name),
                data.role.value,
                [(p.number, p.type.value) for p in data.phones],
                [(e.address, e.type.value) for e in data.emails],
                [
                    (r.pupil, r.priority, r.parental_responsibility, r.receives_messages)
                    for r in data.relationships
                ],
                data.year_group,
                data.registration_group,
            )
        )
        expected = hashlib.blake2b(whole.encode("ascii"), digest_size=16).hexdigest()
        assert record_digest(data) == expected
        parts = digest_of_parts(
            name_part(data.given_name),
            name_part(data.family_name),
            text_part(data.role.value),
            ", ".join(phone_part(p.number, p.type) for p in data.phones),
            ", ".join(email_part(e.address, e.type) for e in data.emails),
            ", ".join(relationship_part(r) for r in data.relationships),
            text_part(data.year_group),
            text_part(data.registration_group),
        )
        assert parts == expected


class TestNameKey:
    @given(any_data, any_data)
    def test_name_keys_match_as_names_do(self, a: ContactData, b: ContactData) -> None:
        """Two names have one key exactly when they match trimmed and case-folded."""

        def name(d: ContactData) -> tuple[str, str]:
            return d.given_name.strip().casefold(), d.family_name.strip().casefold()

        assert (name_key(a) == name_key(b)) == (name(a) == name(b))
        assert (name_key(a) == "") == (not any(name(a)))

    def test_departed_has_no_name(self) -> None:
        """A departed record is found by no name."""
        assert name_key(None) == ""
