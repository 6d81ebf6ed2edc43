"""ContactData.only: the copy the merge and the planner make without validating again."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import FIELDS, ContactData, UsageError, dumps, loads
from sourcetruth.testing import strategies as sts


@given(sts.contact_data(), st.sets(st.sampled_from(FIELDS)))
def test_only_is_the_validated_copy(data: ContactData, names: set[str]) -> None:
    """only() equals, hashes and serialises as the copy the checked constructor makes."""
    kept = data.only(frozenset(names))
    checked = ContactData(**{name: getattr(data, name) for name in names})
    assert kept == checked
    assert hash(kept) == hash(checked)
    assert dumps(kept) == dumps(checked)
    assert loads(dumps(kept), ContactData) == checked
    for name in FIELDS:
        assert getattr(kept, name) == (
            getattr(data, name) if name in names else getattr(ContactData(), name)
        )


@given(sts.contact_data())
def test_only_of_every_field_is_the_value_itself(data: ContactData) -> None:
    """only() of every field, as a tuple or a frozenset, returns the very same object."""
    assert data.only(FIELDS) is data
    assert data.only(frozenset(FIELDS)) is data


@given(sts.contact_data())
def test_only_stays_frozen(data: ContactData) -> None:
    """The copy only() makes is frozen like any ContactData: no field can be assigned."""
    kept = data.only(("phones",))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        kept.phones = ()  # type: ignore[misc]


def test_fields_are_the_attributes_of_contact_data() -> None:
    """The unchecked copy sets exactly FIELDS: they must be ContactData's attributes, in order."""
    assert tuple(a.name for a in attrs.fields(ContactData)) == FIELDS


@pytest.mark.parametrize("names", [(*FIELDS, "nope"), ("given_name", "get"), ("only",)])
def test_only_refuses_unknown_fields(names: tuple[str, ...]) -> None:
    """only() raises UsageError for any name that is not a field, even a method's name."""
    with pytest.raises(UsageError, match="unknown fields"):
        ContactData(given_name="Ada").only(names)
