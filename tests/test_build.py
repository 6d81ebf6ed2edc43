"""The readers' fast builders give the very values the checked constructors give."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import (
    FIELDS,
    ContactData,
    ContactEntry,
    Email,
    EmailType,
    FieldChange,
    Membership,
    Phone,
    PhoneType,
    Provenance,
    ProvenanceKind,
    Record,
    RecordState,
    RecordVersion,
    Relationship,
    Role,
    dumps,
)
from sourcetruth._build import (
    contact_data,
    contact_entry,
    email,
    field_change,
    membership,
    only,
    only_fields,
    phone,
    record,
    record_state,
    record_version,
    relationship,
)
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


@given(sts.contact_data(), st.sampled_from(FIELDS), st.lists(st.booleans(), min_size=8, max_size=8))
def test_only_one_field_or_some(data: ContactData, name: str, keep: list[bool]) -> None:
    """only and only_fields equal ContactData.only of the same fields, and serialise as it."""
    same(only(data, name), data.only((name,)))
    assert dumps(only(data, name)) == dumps(data.only((name,)))
    names = tuple(n for n, kept in zip(FIELDS, keep, strict=True) if kept)
    fast = only_fields(data, tuple(keep))
    checked = data.only(names) if names else ContactData()
    same(fast, checked)
    assert dumps(fast) == dumps(checked)


@given(
    st.none() | sts.contact_data(),
    sts.aware_datetimes(),
    sts.aware_datetimes(),
    st.integers(0, 10**6),
    TEXT,
    TEXT,
    TEXT,
)
def test_a_record_its_contact_and_a_change(
    data: ContactData | None,
    applied: datetime,
    extracted: datetime,
    sync: int,
    by: str,
    key: str,
    field_name: str,
) -> None:
    """The merge's builders equal the checked constructors of the same (UTC) parts."""
    applied, extracted = applied.astimezone(UTC), extracted.astimezone(UTC)
    version = record_version(data, applied, extracted, sync, by)
    same(version, RecordVersion(data, applied, extracted, sync, by))
    same(
        record_state("mis", key, f"mis:{key}", (version,)),
        RecordState("mis", key, f"mis:{key}", [version]),
    )
    member = membership(f"mis:{key}", applied)
    same(member, Membership(f"mis:{key}", applied))
    same(contact_entry(f"mis:{key}", (member,)), ContactEntry(f"mis:{key}", [member]))
    after = ContactData() if data is None else data
    provenance = Provenance(
        ProvenanceKind.SOURCE, "mis", key, applied, extracted, applied, sync, by
    )
    same(
        field_change(key, field_name, None, after, None, provenance),
        FieldChange(key, field_name, None, after, None, provenance),
    )
    same(
        field_change(key, field_name, data, after, provenance, provenance),
        FieldChange(key, field_name, data, after, provenance, provenance),
    )


def test_what_is_built_stays_frozen() -> None:
    """A value the builders made is frozen like any other: no field can be assigned."""
    built = record("K1", contact_data("A", "B", Role.PUPIL, (), (), (), "9", ""))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.key = "K2"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.data.given_name = "C"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        phone("07700 900123", PhoneType.MOBILE).number = ""  # type: ignore[misc]
