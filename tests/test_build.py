"""The readers' fast builders give the very values the checked constructors give."""

from __future__ import annotations

import pickle

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import (
    FIELDS,
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    dumps,
)
from sourcetruth._build import contact_data, email, phone, record, relationship
from sourcetruth.testing import strategies as sts

TEXT = st.text(max_size=12)


def same(fast: object, checked: object) -> None:
    """*fast* equals *checked*, hashes, prints, serialises and pickles as it does."""
    assert type(fast) is type(checked)
    assert fast == checked
    assert hash(fast) == hash(checked)
    assert repr(fast) == repr(checked)
    assert attrs.asdict(fast) == attrs.asdict(checked)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(fast)) == checked


@given(TEXT, st.sampled_from(PhoneType), TEXT, st.sampled_from(EmailType), TEXT)
def test_phone_email_and_relationship(
    number: str, phone_type: PhoneType, address: str, email_type: EmailType, pupil: str
) -> None:
    """phone, email and relationship equal Phone, Email and Relationship of the same parts."""
    same(phone(number, phone_type), Phone(number, phone_type))
    same(email(address, email_type), Email(address, email_type))
    same(relationship(pupil), Relationship(pupil))


@given(sts.contact_data())
def test_contact_data(data: ContactData) -> None:
    """contact_data of a value's parts equals the checked ContactData, and serialises as it."""
    parts = [getattr(data, name) for name in FIELDS]
    fast = contact_data(*parts)
    same(fast, ContactData(*parts))
    assert dumps(fast) == dumps(data)


@given(
    TEXT,
    TEXT,
    TEXT,
    st.sampled_from(Role),
    st.lists(st.builds(Phone, TEXT, st.sampled_from(PhoneType)), max_size=3),
    st.lists(st.builds(Email, TEXT, st.sampled_from(EmailType)), max_size=3),
    st.lists(st.builds(Relationship, TEXT), max_size=3),
    st.none() | st.frozensets(st.sampled_from(FIELDS), min_size=1),
)
def test_records_of_random_parts(
    key: str,
    given_name: str,
    year: str,
    role: Role,
    phones: list[Phone],
    emails: list[Email],
    relationships: list[Relationship],
    fields: frozenset[str] | None,
) -> None:
    """record(contact_data(...)) of random parts equals Record(ContactData(...)) of them."""
    fast = record(
        key,
        contact_data(
            given_name, "", role, tuple(phones), tuple(emails), tuple(relationships), year, ""
        ),
        fields,
    )
    checked = Record(
        key,
        ContactData(
            given_name,
            role=role,
            phones=phones,
            emails=emails,
            relationships=relationships,
            year_group=year,
        ),
        fields,
    )
    same(fast, checked)


def test_what_is_built_stays_frozen() -> None:
    """A value the builders made is frozen like any other: no field can be assigned."""
    built = record("K1", contact_data("A", "B", Role.PUPIL, (), (), (), "9", ""))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.key = "K2"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.data.given_name = "C"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        phone("07700 900123", PhoneType.MOBILE).number = ""  # type: ignore[misc]
