"""The published Hypothesis strategies: typed, keyword-only, and registered for from_type."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from sourcetruth import (
    FIELDS,
    Contact,
    ContactData,
    GroupDefinition,
    Override,
    Policy,
    ProvenanceKind,
    Record,
    Snapshot,
)
from sourcetruth.testing import strategies as sts

PUBLIC = sorted(
    name
    for name in sts.__all__
    if inspect.isfunction(getattr(sts, name)) and getattr(sts, name).__module__ == sts.__name__
)


class TestSurface:
    """Every strategy takes keyword-only arguments, as hypothesis.extra modules do."""

    @pytest.mark.parametrize("name", PUBLIC)
    def test_keyword_only(self, name: str) -> None:
        """No strategy takes a positional argument, so calls stay readable as they grow."""
        parameters = inspect.signature(getattr(sts, name)).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)

    def test_the_kit_asked_for_is_there(self) -> None:
        """Contacts, records, snapshots, overrides, groups and policies each have one."""
        assert {"contacts", "records", "snapshots", "overrides", "groups", "policies"} <= set(
            PUBLIC
        )


class TestFromType:
    """The entry-point hook makes st.from_type build the model with these strategies.

    Contacts and overrides are made by running the merge, so a draw is slow by
    Hypothesis's measure, and slower still on a busy machine: too_slow is off.
    """

    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=budget.examples(10))
    @given(st.from_type(Contact))
    def test_contacts_have_provenance_for_every_field(self, contact: Contact) -> None:
        """A drawn contact is one the merge made: every field explains itself (rule 8)."""
        assert set(contact.provenance) == set(FIELDS)
        kinds = {p.kind for p in contact.provenance.values()}
        assert kinds <= {ProvenanceKind.SOURCE, ProvenanceKind.OVERRIDE, ProvenanceKind.DEFAULT}
        overridden = {o.field for o in contact.overrides}
        for name in overridden:
            assert contact.provenance[name].kind is ProvenanceKind.OVERRIDE

    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=budget.examples(10))
    @given(st.from_type(Override))
    def test_overrides_hold_one_field(self, override: Override) -> None:
        """A drawn override holds one field's value and base, owned by its contact's record."""
        assert override.field in FIELDS
        assert override.value == override.value.only((override.field,))
        assert override.base == override.base.only((override.field,))
        assert override.record == override.contact_id
        assert override.set_by == "office"

    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=budget.examples(10))
    @given(
        st.from_type(ContactData),
        st.from_type(Record),
        st.from_type(Snapshot),
        st.from_type(GroupDefinition),
        st.from_type(Policy),
    )
    def test_each_registered_type(self, data, record, snapshot, group, policy) -> None:
        """Each model type registered is drawn as itself."""
        assert isinstance(data, ContactData)
        assert isinstance(record, Record)
        assert isinstance(snapshot, Snapshot)
        assert isinstance(group, GroupDefinition)
        assert isinstance(policy, Policy)

    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=budget.examples(10))
    @given(sts.contacts(overridden=True))
    def test_asking_for_an_override_gives_one(self, contact: Contact) -> None:
        """contacts(overridden=True) always carries an override in force."""
        assert contact.overrides
