"""A plan builds each delivery's provenance when it is first read, and it is the eager one."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import attrs

from sourcetruth import (
    Book,
    Channel,
    ContactData,
    Delivery,
    Email,
    Message,
    Phone,
    Policy,
    Record,
    Relationship,
    Role,
    Rule,
    Snapshot,
    Source,
    SourceKind,
    contact_at,
    dumps,
    loads,
    merge,
    plan,
)
from sourcetruth.messages import Plan, _Sourcing
from sourcetruth.model import ADDRESS_FIELDS
from sourcetruth.serialise import converter

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICY = Policy(sources=(Source("mis", SourceKind.MIS),))
MESSAGE = Message(
    "trip",
    "Trip",
    "Dear parent",
    channels=(Channel.SMS, Channel.EMAIL),
    rules=(Rule(guardians_of=True),),
)


def school() -> Book:
    """Two nights of an MIS: a pupil, two guardians sharing a number, one with an email."""
    records = (
        Record("P1", ContactData("Pat", "Okafor", Role.PUPIL, year_group="9")),
        Record(
            "G1",
            ContactData(
                "Nina",
                "Okafor",
                Role.GUARDIAN,
                phones=(Phone("07700 900123"),),
                relationships=(Relationship("P1"),),
            ),
        ),
        Record(
            "G2",
            ContactData(
                "Sam",
                "Okafor",
                Role.GUARDIAN,
                phones=(Phone("07700 900123"),),
                emails=(Email("sam@example.org"),),
                relationships=(Relationship("P1", priority=2),),
            ),
        ),
    )
    book = merge(Book(), Snapshot("mis", START, records), policy=POLICY, at=START, by="n").book
    later = START + timedelta(days=1)
    return merge(book, Snapshot("mis", later, records), policy=POLICY, at=later, by="n").book


def unbuilt(delivery: Delivery) -> object:
    """What the delivery's provenance slot holds, without building it."""
    return vars(Delivery)["provenance"]._slot.__get__(delivery, Delivery)


def planned() -> Plan:
    return plan(school(), MESSAGE, policy=POLICY, at=START + timedelta(days=2))


class TestProvenanceBuiltOnRead:
    """Laziness changes when the provenance is built, never what it is."""

    def test_a_plan_leaves_provenance_unbuilt_until_read(self) -> None:
        """Before a read the slot holds where each address came from; after, the Provenances."""
        delivery = planned().deliveries[0]
        assert delivery.contact_ids == ("mis:G1", "mis:G2")
        sourcing, origins = unbuilt(delivery)  # type: ignore[misc]
        assert isinstance(sourcing, _Sourcing)
        assert [o.key for o in origins] == ["G1", "G2"]
        built = delivery.provenance
        assert unbuilt(delivery) is built
        assert delivery.provenance is built

    def test_it_is_each_contacts_provenance_of_the_address(self) -> None:
        """Built on read: what contact_at says of the address field, contact by contact."""
        book, at = school(), START + timedelta(days=2)
        for delivery in plan(book, MESSAGE, policy=POLICY, at=at).deliveries:
            name = ADDRESS_FIELDS[delivery.channel]
            expected = tuple(
                contact_at(book, cid, policy=POLICY, at=at).provenance[name]
                for cid in delivery.contact_ids
            )
            assert delivery.provenance == expected
            # The second night read the records again: it is the sync the provenance names.
            assert {p.read_at for p in expected} == {START + timedelta(days=1)}

    def test_an_unbuilt_delivery_equals_hashes_and_serialises_as_an_eager_one(self) -> None:
        """Equality, hash, the converter, pickle and evolve all see the built tuple."""
        lazy = planned().deliveries[0]
        eager = Delivery(
            lazy.key,
            lazy.channel,
            lazy.address,
            lazy.contact_ids,
            planned().deliveries[0].provenance,
            lazy.name,
        )
        fresh = planned().deliveries[0]
        assert hash(fresh) == hash(eager)
        assert planned().deliveries[0] == eager
        assert converter.unstructure(planned().deliveries[0]) == converter.unstructure(eager)
        assert pickle.loads(pickle.dumps(planned().deliveries[0])) == eager
        assert attrs.evolve(planned().deliveries[0], name="x") == attrs.evolve(eager, name="x")
        assert lazy == eager

    def test_a_plan_round_trips_through_the_books_converter(self) -> None:
        """A plan written before any provenance was read reads back equal."""
        assert loads(dumps(planned()), Plan) == planned()
