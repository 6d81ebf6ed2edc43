"""Messages and their planning: who gets what, where, and why (pure).

A :class:`Message` names its audience (groups, rules, single contacts) and
its channels in order of preference. :func:`plan` resolves it against the
book at one time into a :class:`Plan`: one :class:`Delivery` per (channel,
address), each naming every person it reaches and the provenance of the
address for each (rule 8), and the people who cannot be reached, with why.
Planning reads no clock and does no I/O: the same book, message, policy and
time give the same plan. Sending is :mod:`sourcetruth.app.sending`; the record
of a send is :mod:`sourcetruth.audit`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from attrs import field, frozen

from sourcetruth._history import Origin, SyncsAt
from sourcetruth._util import to_tuple
from sourcetruth.audience import (
    Audience,
    EffectiveCache,
    Unreachable,
    named,
    provenances,
    reached,
)
from sourcetruth.exceptions import UsageError
from sourcetruth.model import Book, Channel, Provenance, Rule, SyncRecord, utc
from sourcetruth.policy import Policy

__all__ = [
    "Delivery",
    "DeliveryResult",
    "DeliveryStatus",
    "Envelope",
    "Message",
    "Plan",
    "SendMode",
    "plan",
]


class SendMode(enum.Enum):
    """How a message with several channels reaches a person.

    ``FIRST``: on the first channel, in the message's order, that has a usable
    address for them; the next one only as a fallback (no mobile: email).
    ``EACH``: on every channel that has one.
    """

    FIRST = "first"
    EACH = "each"


def _channels(value: Iterable[Channel]) -> tuple[Channel, ...]:
    found = tuple(value)
    if not found or len(set(found)) != len(found):
        msg = "a message has one or more channels, each once"
        raise UsageError(msg)
    return found


@frozen
class Message:
    """What to send, on which channels, to whom.

    ``id`` names the message for ever: delivery keys derive from it, so a
    retried send of the same message reuses them. The audience is the union
    of ``groups`` (names of groups in the book), ``rules`` (evaluated against
    effective data at the planned time) and ``contacts`` (contact ids).
    ``html`` is an optional HTML body for email.
    """

    id: str = field(validator=attrs.validators.min_len(1))
    subject: str = field(repr=False)
    body: str = field(repr=False)
    channels: tuple[Channel, ...] = field(default=(Channel.EMAIL,), converter=_channels)
    mode: SendMode = SendMode.FIRST
    groups: tuple[str, ...] = field(default=(), converter=to_tuple)
    rules: tuple[Rule, ...] = field(default=(), converter=to_tuple)
    contacts: tuple[str, ...] = field(default=(), converter=to_tuple)
    html: str | None = field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (self.groups or self.rules or self.contacts):
            msg = "a message needs an audience: groups, rules or contacts"
            raise UsageError(msg)


class DeliveryStatus(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


@frozen
class Envelope:
    """One delivery handed to a transport: a message to one address on one channel.

    ``key`` is the delivery's idempotency key. ``name`` is how to address the
    person (for an email's ``To`` header); ``html`` is an optional HTML body
    for email.
    """

    key: str
    channel: Channel
    address: str = field(repr=False)
    subject: str = field(repr=False)
    body: str = field(repr=False)
    html: str | None = field(default=None, repr=False)
    name: str = field(default="", repr=False)


@frozen
class DeliveryResult:
    """What a transport did with one envelope.

    ``reference`` is the transport's own id for it (a gateway's message id,
    an email's Message-ID); ``reason`` says why it was rejected or failed,
    without the address; ``segments`` is the number of SMS parts it takes.
    """

    key: str
    status: DeliveryStatus
    reason: str = ""
    retryable: bool = False
    reference: str = ""
    segments: int | None = None

    @staticmethod
    def accepted(key: str, reference: str = "", segments: int | None = None) -> DeliveryResult:
        return DeliveryResult(key, DeliveryStatus.ACCEPTED, reference=reference, segments=segments)

    @staticmethod
    def rejected(key: str, reason: str) -> DeliveryResult:
        return DeliveryResult(key, DeliveryStatus.REJECTED, reason)

    @staticmethod
    def failed(key: str, reason: str, *, retryable: bool) -> DeliveryResult:
        return DeliveryResult(key, DeliveryStatus.FAILED, reason, retryable)


@frozen
class Delivery:
    """One planned send: a message on one channel to one address.

    ``contact_ids`` are everyone the address reaches (a household number
    shared by two parents is one delivery), each with the provenance of the
    address in ``provenance``, in the same order. ``key`` is the delivery's
    idempotency key: the same for the same message, channel and address.
    """

    key: str
    channel: Channel
    address: str = field(repr=False)
    contact_ids: tuple[str, ...] = field(converter=to_tuple)
    provenance: tuple[Provenance, ...] = field(converter=to_tuple, repr=False)
    name: str = field(default="", repr=False)

    def envelope(self, message: Message) -> Envelope:
        """This delivery as a transport takes it."""
        return Envelope(
            self.key,
            self.channel,
            self.address,
            message.subject,
            message.body,
            message.html if self.channel is Channel.EMAIL else None,
            self.name,
        )


class _Sourcing:
    """What building a plan's provenance needs later: the book's syncs and the plan's time.

    The syncs a book holds in memory whatever its store (never the rows of
    a file), and the lookups made so far, shared by the plan's deliveries.
    """

    __slots__ = ("at", "found", "syncs")

    def __init__(self, syncs: Mapping[str, tuple[SyncRecord, ...]], at: datetime) -> None:
        self.syncs, self.at = syncs, at
        self.found: SyncsAt = {}

    def provenances(self, origins: tuple[Origin, ...]) -> tuple[Provenance, ...]:
        return provenances(self.syncs, origins, self.at, self.found)


class _BuiltOnRead:
    """``Delivery.provenance``: its slot, whose value a plan leaves unbuilt until first read.

    A plan of every guardian would otherwise build a provenance per contact
    reached that no one may look at (a count, a dry run's total). Unbuilt,
    the slot holds a pair: the plan's :class:`_Sourcing` and the origin of
    each address; a reader of the attribute, an equality, a hash or a
    serialisation gets the same tuple as if it had been built with the plan,
    which is then kept.
    """

    def __init__(self, slot: Any) -> None:
        self._slot = slot

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self._slot.__get__(instance, owner)
        if value and type(value[0]) is _Sourcing:
            value = value[0].provenances(value[1])
            self._slot.__set__(instance, value)
        return value

    def __set__(self, instance: object, value: object) -> None:
        self._slot.__set__(instance, value)

    def __delete__(self, instance: object) -> None:
        self._slot.__delete__(instance)


def _slot_setter(name: str) -> Callable[[Delivery, Any], None]:
    setter: Callable[[Delivery, Any], None] = Delivery.__dict__[name].__set__
    return setter


# What _delivery fills, slot by slot (a frozen class refuses setattr; this skips its checks).
_key_of = _slot_setter("key")
_channel_of = _slot_setter("channel")
_address_of = _slot_setter("address")
_ids_of = _slot_setter("contact_ids")
_provenance_of = _slot_setter("provenance")
_name_of = _slot_setter("name")
type.__setattr__(Delivery, "provenance", _BuiltOnRead(Delivery.__dict__["provenance"]))


@frozen
class Plan:
    """A message resolved at one time: its deliveries and who it cannot reach.

    ``unreachable`` lists each person the audience names whom no planned
    delivery reaches, once per channel tried, with the reason.
    ``fallbacks`` lists, for :attr:`SendMode.FIRST`, each channel a person
    was not reached on before a later channel reached them, with the reason
    (a mobile number that does not normalise is reported here, not lost).
    """

    message: Message
    at: datetime = field(converter=utc)
    deliveries: tuple[Delivery, ...] = field(converter=to_tuple, repr=False)
    unreachable: tuple[tuple[Channel, Unreachable], ...] = field(converter=to_tuple, repr=False)
    fallbacks: tuple[tuple[Channel, Unreachable], ...] = field(
        default=(), converter=to_tuple, repr=False
    )

    @property
    def reached(self) -> frozenset[str]:
        """Everyone at least one delivery reaches."""
        return frozenset(cid for d in self.deliveries for cid in d.contact_ids)


def delivery_key(message_id: str, channel: Channel, address: str) -> str:
    """The idempotency key of a delivery: stable, and naming no personal value."""
    text = "\x00".join((message_id, channel.value, address))
    # surrogatepass: an id from a command line that was not UTF-8 keeps its lone surrogates.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _keys(message_id: str, channel: Channel) -> Callable[[str], str]:
    """:func:`delivery_key` of *message_id* on *channel*, for one address after another.

    The hash of what every key shares is taken once and copied per address.
    """
    shared = hashlib.sha256(f"{message_id}\x00{channel.value}\x00".encode("utf-8", "surrogatepass"))
    copy = shared.copy

    def key(address: str) -> str:
        hashed = copy()
        hashed.update(address.encode())
        return hashed.hexdigest()[:32]

    return key


_new = object.__new__


def _delivery(
    key: str,
    channel: Channel,
    address: str,
    contact_ids: tuple[str, ...],
    provenance: tuple[Provenance, ...] | tuple[_Sourcing, tuple[Origin, ...]],
    name: str,
) -> Delivery:
    """A Delivery of values already checked and already tuples: a plan makes one per address.

    Its provenance may be left unbuilt (see :class:`_BuiltOnRead`), to be built when first read.
    """
    made: Delivery = _new(Delivery)
    _key_of(made, key)
    _channel_of(made, channel)
    _address_of(made, address)
    _ids_of(made, contact_ids)
    _provenance_of(made, provenance)
    _name_of(made, name)
    return made


def _audience(message: Message, effective: EffectiveCache) -> tuple[set[str], list[Unreachable]]:
    """Who the audience names and is present at the time, and who it names but is not, once each."""
    present: set[str] = set()
    absent: dict[str, Unreachable] = {}
    parts: list[Audience] = [*message.groups, *message.rules]
    if message.contacts:
        parts.append(frozenset(message.contacts))
    for part in parts:
        found, missing = named(part, effective)
        present |= found
        absent.update((u.contact_id, u) for u in missing)
    return present, list(absent.values())


def plan(book: Book, message: Message, *, policy: Policy, at: datetime) -> Plan:
    """Resolve *message* against *book* at *at*: the deliveries, and who is left out.

    Departed contacts are never planned, and neither are guardians whose
    relationship says they do not receive messages (for "guardians of"
    rules); each address is planned once per channel, with everyone it
    reaches. With :attr:`SendMode.FIRST` a person is reached on the first
    channel that has a usable address for them.
    """
    at = utc(at)
    # One plan asks for the same people several times (audience, each channel,
    # names): each effective contact is computed once.
    effective = EffectiveCache(book, policy, at)
    sourcing = _Sourcing(book.syncs, at)
    waiting, absent = _audience(message, effective)
    deliveries: list[Delivery] = []
    unreachable: list[tuple[Channel, Unreachable]] = []
    for channel in message.channels:
        if not (waiting or absent):
            break
        found, missing = reached(waiting, channel, effective)
        # Who is departed or unknown is said once, on the first channel tried.
        missing += absent
        absent = []
        missing.sort(key=lambda u: (u.contact_id, u.reason))
        key = _keys(message.id, channel)
        deliveries += [
            _delivery(
                key(address),
                channel,
                address,
                ids,
                (sourcing, origins),
                f"{first.data.given_name} {first.data.family_name}".strip(),
            )
            for address, ids, origins, first in found
        ]
        unreachable += [(channel, u) for u in missing]
        if message.mode is SendMode.FIRST and channel is not message.channels[-1]:
            waiting -= {cid for _, ids, _, _ in found for cid in ids}
    fallbacks: list[tuple[Channel, Unreachable]] = []
    if message.mode is SendMode.FIRST and len(message.channels) > 1:
        # Someone reached on a later channel was not unreachable after all,
        # but why the earlier channel was skipped is still worth saying.
        everyone = {cid for d in deliveries for cid in d.contact_ids}
        fallbacks = [(c, u) for c, u in unreachable if u.contact_id in everyone]
        unreachable = [(c, u) for c, u in unreachable if u.contact_id not in everyone]

    def order(entry: tuple[Channel, Unreachable]) -> tuple[str, int]:
        return entry[1].contact_id, message.channels.index(entry[0])

    unreachable.sort(key=order)
    fallbacks.sort(key=order)
    return Plan(message, at, deliveries, unreachable, fallbacks)
