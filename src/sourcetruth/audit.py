"""The record a send leaves, and the questions it answers (pure).

An :class:`AuditRecord` holds the message, when it was planned and sent,
every planned delivery with the provenance of its address and what the
transport did with it, and everyone who could not be reached. It serialises
with the book's converter (:func:`sourcetruth.dumps`). :func:`why` answers
"why did the message go to that address?" from it: the value, the source and
sync it came from, any override in force, and, given the book, the later
source change the send did not yet include (scenario 1 of the design).
"""

from __future__ import annotations

from datetime import datetime

import attrs
from attrs import field, frozen

from sourcetruth._util import to_tuple
from sourcetruth.audience import Unreachable, usable_address
from sourcetruth.effective import OverrideEvent, explain, record_provenance
from sourcetruth.exceptions import UnknownContactError, UsageError
from sourcetruth.messages import Delivery, DeliveryResult, DeliveryStatus, Message
from sourcetruth.model import (
    ADDRESS_FIELDS,
    Book,
    Channel,
    ContactData,
    Provenance,
    ProvenanceKind,
    utc,
)
from sourcetruth.policy import Policy

__all__ = ["ERASED", "AuditRecord", "Outcome", "Why", "redact", "why"]

#: What an audit record says in place of an audience that was only erased people.
ERASED = "(erased)"


@frozen
class Outcome:
    """A planned delivery and what became of it; ``result`` is None if never handed over."""

    delivery: Delivery
    result: DeliveryResult | None = None

    @property
    def handed_over(self) -> bool:
        return self.result is not None


@frozen
class AuditRecord:
    """Everything a send did: the message, the times, each delivery's outcome."""

    message: Message
    planned_at: datetime = field(converter=utc)
    sent_at: datetime = field(converter=utc)
    outcomes: tuple[Outcome, ...] = field(converter=to_tuple, repr=False)
    unreachable: tuple[tuple[Channel, Unreachable], ...] = field(converter=to_tuple, repr=False)
    fallbacks: tuple[tuple[Channel, Unreachable], ...] = field(
        default=(), converter=to_tuple, repr=False
    )

    def count(self, status: DeliveryStatus) -> int:
        return sum(o.result is not None and o.result.status is status for o in self.outcomes)

    @property
    def not_handed_over(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.result is None)


def redact(
    record: AuditRecord, contact_ids: frozenset[str]
) -> tuple[AuditRecord, tuple[str, ...], tuple[str, ...]]:
    """*record* with every trace of *contact_ids* taken out (rule 13).

    Returns the record, and the keys of the deliveries it dropped and of those
    it changed, so that copies kept elsewhere (an outbox) can follow.

    A delivery that reached only erased people is dropped whole, since its
    address was theirs. A delivery shared with others keeps its address, which
    is theirs as well, and loses the erased people, their provenance and the
    name it was addressed to.
    """
    outcomes: list[Outcome] = []
    dropped: list[str] = []
    changed: list[str] = []
    for outcome in record.outcomes:
        delivery = outcome.delivery
        kept = [
            (cid, p)
            for cid, p in zip(delivery.contact_ids, delivery.provenance, strict=True)
            if cid not in contact_ids
        ]
        if not kept:
            dropped.append(delivery.key)
        elif len(kept) < len(delivery.contact_ids):
            redacted = attrs.evolve(
                delivery,
                contact_ids=tuple(c for c, _ in kept),
                provenance=tuple(p for _, p in kept),
                name="",
            )
            outcomes.append(attrs.evolve(outcome, delivery=redacted))
            changed.append(delivery.key)
        else:
            outcomes.append(outcome)
    message = record.message
    remaining = tuple(c for c in message.contacts if c not in contact_ids)
    if remaining != message.contacts:
        if not (remaining or message.groups or message.rules):
            remaining = (ERASED,)  # a message keeps an audience, even if only this
        message = attrs.evolve(message, contacts=remaining)
    result = attrs.evolve(
        record,
        message=message,
        outcomes=tuple(outcomes),
        unreachable=tuple(u for u in record.unreachable if u[1].contact_id not in contact_ids),
        fallbacks=tuple(u for u in record.fallbacks if u[1].contact_id not in contact_ids),
    )
    return result, tuple(dropped), tuple(changed)


@frozen
class Why:
    """Why a message reached a person where it did, on one channel.

    ``address`` and ``provenance``: the value used and where it came from
    (for a source value: the source, record, and the sync that read and
    applied it; for an override: who set it, when). ``result``: what the
    transport did. ``overrides``: the overrides of that field set up to the
    send, ended or not. ``later`` and ``later_value``: the first later change
    at the source that the send did not yet include, when a book is given
    and holds one. ``reason``: when no delivery reached the person, why not.
    """

    contact_id: str
    channel: Channel
    address: str | None = field(repr=False)
    provenance: Provenance | None
    result: DeliveryResult | None
    overrides: tuple[OverrideEvent, ...] = field(default=(), converter=to_tuple, repr=False)
    later: Provenance | None = None
    later_value: ContactData | None = field(default=None, repr=False)
    reason: str = ""

    @property
    def overridden(self) -> bool:
        """Whether the address was a local edit in force at the time."""
        return self.provenance is not None and self.provenance.kind is ProvenanceKind.OVERRIDE


def _later_change(
    book: Book, provenance: Provenance, channel: Channel, at: datetime, region: str
) -> tuple[Provenance | None, ContactData | None]:
    """The first change after *at* to the address the source itself gave on *channel*.

    Compared address to address: a change to another number of the same
    person is not a change to this one. For an override, the source's own
    value at *at* is what a later change is measured against.
    """
    if provenance.source is None or provenance.record_key is None:
        return None, None
    state = book.records.get(provenance.source, {}).get(provenance.record_key)
    if state is None:
        return None, None
    before = [v for v in state.versions if v.applied_at <= at]
    if not before or before[-1].data is None:
        return None, None
    reference = usable_address(before[-1].data, channel, region)[0]
    field_name = ADDRESS_FIELDS[channel]
    for version in state.versions[len(before) :]:
        if version.data is None:
            continue
        if usable_address(version.data, channel, region)[0] != reference:
            return record_provenance(state, version), version.data.only((field_name,))
    return None, None


def why(
    audit: AuditRecord,
    contact_id: str,
    channel: Channel,
    *,
    book: Book | None = None,
    policy: Policy | None = None,
) -> Why:
    """Where *audit*'s message went for *contact_id* on *channel*, and why.

    Answered from the record alone; with *book* and *policy* (the book as it
    is now) also the overrides of that field and the later change at the
    source that the message did not include. A person the message did not
    reach on that channel gets the reason.
    """
    if (book is None) != (policy is None):
        msg = "give both the book and its policy, or neither"
        raise UsageError(msg)
    for outcome in audit.outcomes:
        delivery = outcome.delivery
        if delivery.channel is not channel or contact_id not in delivery.contact_ids:
            continue
        provenance = delivery.provenance[delivery.contact_ids.index(contact_id)]
        later = later_value = None
        events: tuple[OverrideEvent, ...] = ()
        if book is not None and policy is not None:
            field_name = ADDRESS_FIELDS[channel]
            told = explain(book, contact_id, field_name, policy=policy, at=audit.planned_at)
            events = told.overrides
            later, later_value = _later_change(
                book, provenance, channel, audit.planned_at, policy.region_of(provenance.source)
            )
        return Why(
            contact_id,
            channel,
            delivery.address,
            provenance,
            outcome.result,
            events,
            later,
            later_value,
        )
    for tried, missing in (*audit.unreachable, *audit.fallbacks):
        if tried is channel and missing.contact_id == contact_id:
            return Why(contact_id, channel, None, None, None, reason=missing.reason)
    msg = "the message's audience did not include this contact on that channel"
    raise UnknownContactError(msg)
