"""The transport contract: does a transport keep the rules of :class:`~.protocols.Transport`?

Subclass :class:`TransportContract` in your own test module and override
``far_side`` and ``make_transport``; pytest then runs every check against
your transport and a fake of its server that your test runs on loopback::

    from sourcetruth.testing.transports import TransportContract

    class TestAcmeSms(TransportContract):
        @pytest.fixture
        def far_side(self):
            with FakeAcmeGateway("127.0.0.1") as gateway:   # your fake, on loopback
                yield gateway

        @pytest.fixture
        def make_transport(self, far_side):
            return lambda: AcmeSmsTransport(far_side.url, api_key=KEY, sender="School")

        @pytest.fixture
        def secrets(self):
            return (KEY,)

The far side is any object with the two methods of :class:`FarSide`:
``arrivals()``, the idempotency id each message that reached it carried (an
SMS gateway's ``Idempotency-Key``, an email's ``Message-ID``), and
``refuse(kind)``, which makes it refuse what comes next: ``"permanent"`` (an
SMTP 5xx, an HTTP 400 or 422: this address or message will never go),
``"temporary"`` (an SMTP 4xx, an HTTP 503: try later), ``"credentials"``
(the login or token is refused), or None to accept again.

The checks: the protocol (one result per envelope, in order, under its key;
a bad address or a wrong channel is a result, never an exception; an empty
batch is an empty list); idempotent retries (the same delivery sent again
carries the same id, in any batch, and another delivery another id, so the
far side recognises a retry); refusals mapped (permanent: ``rejected``;
temporary: ``failed`` and retryable, and accepted when tried again;
credentials: ``failed`` and not retryable; an unreachable server: ``failed``
and retryable); a send through :func:`~sourcetruth.app.sending.send` and a
:class:`~sourcetruth.protocols.DeliveryLog`, stopped by a refusal and
resumed, hands each delivery over once it can; and secrets never shown (no
credential, address or message text in any log record, result, ``repr`` or
error, whatever the far side said). Capabilities are fixtures too:
``refusals`` (the kinds the far side can do; all three by default),
``secrets`` (the credentials the transport was given; none by default),
``addresses`` and ``bad_address`` (defaults for email and SMS), and
``unreachable_transport`` (None by default: the check is skipped). The
contract is not collected by itself: its name does not start with ``Test``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import pytest

from sourcetruth.app.sending import FileDeliveryLog, send
from sourcetruth.messages import (
    Delivery,
    DeliveryResult,
    DeliveryStatus,
    Envelope,
    Message,
    Plan,
    delivery_key,
)
from sourcetruth.model import Channel
from sourcetruth.protocols import Transport

__all__ = ["REFUSALS", "FarSide", "MakeTransport", "Refusal", "TransportContract"]

#: The kinds of refusal a far side can be told to give (see :class:`FarSide`).
Refusal = Literal["permanent", "temporary", "credentials"]
#: The contract's ``make_transport`` fixture: a new transport talking to the far side.
MakeTransport = Callable[[], Transport]

#: Every kind of refusal a far side may be asked for.
REFUSALS: frozenset[Refusal] = frozenset({"permanent", "temporary", "credentials"})

_ADDRESSES = {
    Channel.EMAIL: ("ada.okafor@parent.test", "ben.hartley@example.org", "cy.quist@parent.test"),
    Channel.SMS: ("+447700900101", "+447700900102", "+447700900103"),
}
_BAD_ADDRESSES = {Channel.EMAIL: "not an address", Channel.SMS: "07700 9001 not a number"}
_SUBJECT = "Trip for Amara Quist"
_BODY = "Dear Gita Okafor, the coach for Amara leaves at 8."
_SENT_AT = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
_MESSAGE_ID = "contract-trip-2026-11-24"


class FarSide(Protocol):
    """The far side of a transport as a test controls it: a fake server on loopback."""

    def arrivals(self) -> list[str]:
        """The idempotency id each message that arrived carried, in order of arrival.

        A message that arrived twice is listed twice; a far side that drops a
        duplicate itself lists it once.
        """
        ...

    def refuse(self, kind: Refusal | None) -> None:
        """Refuse every message from now on, in the way *kind* names; None accepts again."""
        ...


def _envelopes(
    channel: Channel, addresses: Sequence[str], message_id: str = _MESSAGE_ID
) -> list[Envelope]:
    return [
        Envelope(delivery_key(message_id, channel, a), channel, a, _SUBJECT, _BODY, name="Gita")
        for a in addresses
    ]


def _shown(results: Sequence[DeliveryResult]) -> str:
    return "\n".join(f"{r!r} {r.reason} {r.reference}" for r in results)


def _personal(addresses: Sequence[str]) -> list[str]:
    """What no log line, result or repr may hold: the addresses, in any spelling, and the text."""
    found = [*addresses, _BODY, "Gita Okafor", "Amara"]
    found += [a.lstrip("+")[2:] for a in addresses if a.startswith("+")]  # the national digits
    return found


class TransportContract:
    """The checks every transport must pass; override ``far_side`` and ``make_transport``."""

    # -- fixtures the integrator overrides -------------------------------------------------

    @pytest.fixture
    def far_side(self) -> FarSide:
        """The fake server the transport delivers to (a yield fixture that stops it after)."""
        msg = "override the far_side fixture to run a fake of your transport's server"
        raise NotImplementedError(msg)

    @pytest.fixture
    def make_transport(self, far_side: FarSide) -> MakeTransport:
        """Return ``make() -> Transport``: a new transport delivering to *far_side*."""
        msg = "override the make_transport fixture to build your transport"
        raise NotImplementedError(msg)

    @pytest.fixture
    def refusals(self) -> frozenset[Refusal]:
        """The kinds of refusal the far side can be asked for; checks of the others skip."""
        return REFUSALS

    @pytest.fixture
    def secrets(self) -> tuple[str, ...]:
        """The credentials the transport was given: never to be shown (none by default)."""
        return ()

    @pytest.fixture
    def channel(self, make_transport: MakeTransport) -> Channel:
        """The channel the transport delivers."""
        return make_transport().channel

    @pytest.fixture
    def addresses(self, channel: Channel) -> tuple[str, ...]:
        """Three good addresses on the channel (``.test`` emails, Ofcom drama numbers)."""
        return _ADDRESSES[channel]

    @pytest.fixture
    def bad_address(self, channel: Channel) -> str | None:
        """An address the transport must reject without raising (None: it takes any)."""
        return _BAD_ADDRESSES[channel]

    @pytest.fixture
    def far_side_loggers(self) -> tuple[str, ...]:
        """The loggers of the fake server itself, whose records the secrets check leaves out."""
        return ()

    @pytest.fixture
    def unreachable_transport(self) -> MakeTransport | None:
        """Return ``make() -> Transport`` to a server that is not there (None: skip)."""
        return None

    # -- the protocol ----------------------------------------------------------------------

    def test_keeps_the_protocol(self, make_transport: MakeTransport, far_side: FarSide) -> None:
        """The transport has the protocol's members; an empty batch sends nothing."""
        transport = make_transport()
        assert isinstance(transport, Transport)
        assert isinstance(transport.channel, Channel)
        assert transport.send([]) == []
        assert far_side.arrivals() == []

    def test_one_result_per_envelope_in_order(
        self,
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
        bad_address: str | None,
    ) -> None:
        """Every envelope gets a result under its key, in order; a bad one never raises."""
        accepted, rejected = DeliveryStatus.ACCEPTED, DeliveryStatus.REJECTED
        other = next(c for c in Channel if c is not channel)
        batch = _envelopes(channel, addresses)
        expected = [accepted] * len(batch)
        batch.insert(2, _envelopes(other, _ADDRESSES[other][:1])[0])
        expected.insert(2, rejected)
        if bad_address is not None:
            batch.insert(1, _envelopes(channel, [bad_address])[0])
            expected.insert(1, rejected)
        results = make_transport().send(batch)
        assert isinstance(results, list)
        assert [r.key for r in results] == [e.key for e in batch]
        assert [r.status for r in results] == expected
        assert len(set(far_side.arrivals())) == len(addresses)

    # -- idempotent retries ----------------------------------------------------------------

    def test_a_retry_carries_the_same_id(
        self,
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """The same delivery sent again, alone or in another batch, is recognisable as a retry."""
        first, second, third = _envelopes(channel, addresses)
        transport = make_transport()
        transport.send([first, second])
        sent = far_side.arrivals()
        assert len(sent) == len(set(sent)) == 2, "each delivery must arrive with an id of its own"
        make_transport().send([first, second])  # a retry, by another instance too
        transport.send([second])
        assert set(far_side.arrivals()) == set(sent), "a retry arrived as a new message"
        transport.send([third, first])
        after = far_side.arrivals()
        assert len(set(after)) == 3, "a new delivery must arrive with a new id"

    def test_another_message_to_the_same_address_is_not_a_retry(
        self,
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """Two messages to one address are two deliveries, never taken for a retry."""
        transport = make_transport()
        transport.send(_envelopes(channel, addresses[:1], "message-one"))
        transport.send(_envelopes(channel, addresses[:1], "message-two"))
        assert len(set(far_side.arrivals())) == 2

    # -- refusals mapped -------------------------------------------------------------------

    def _refused(
        self,
        kind: Refusal,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> list[DeliveryResult]:
        if kind not in refusals:
            pytest.skip(f"the far side cannot refuse {kind}")
        far_side.refuse(kind)
        batch = _envelopes(channel, addresses[:2])
        results = make_transport().send(batch)
        assert [r.key for r in results] == [e.key for e in batch]
        for result in results:
            assert result.reason, "a refusal says why"
            assert not [p for p in _personal(addresses) if p in result.reason]
        return results

    def test_a_permanent_refusal_is_rejected(
        self,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """A refusal for good (SMTP 5xx, HTTP 400 or 422) is ``rejected``: never tried again."""
        results = self._refused("permanent", refusals, make_transport, far_side, channel, addresses)
        assert [r.status for r in results] == [DeliveryStatus.REJECTED] * len(results)
        assert not any(r.retryable for r in results)

    def test_a_temporary_refusal_is_retryable(
        self,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """A refusal for now (SMTP 4xx, HTTP 503) is ``failed`` and retryable, and goes later."""
        results = self._refused("temporary", refusals, make_transport, far_side, channel, addresses)
        assert [(r.status, r.retryable) for r in results] == [(DeliveryStatus.FAILED, True)] * 2
        far_side.refuse(None)
        again = make_transport().send(_envelopes(channel, addresses[:2]))
        assert [r.status for r in again] == [DeliveryStatus.ACCEPTED] * 2

    def test_refused_credentials_fail_for_good(
        self,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """Credentials the server refuses fail every envelope, not retryably: fix them first."""
        results = self._refused(
            "credentials", refusals, make_transport, far_side, channel, addresses
        )
        assert [(r.status, r.retryable) for r in results] == [(DeliveryStatus.FAILED, False)] * 2

    def test_an_unreachable_server_is_retryable(
        self,
        unreachable_transport: MakeTransport | None,
        channel: Channel,
        addresses: tuple[str, ...],
    ) -> None:
        """A server that does not answer fails every envelope, retryably."""
        if unreachable_transport is None:
            pytest.skip("override unreachable_transport to check a server that is not there")
        results = unreachable_transport().send(_envelopes(channel, addresses[:2]))
        assert [(r.status, r.retryable) for r in results] == [(DeliveryStatus.FAILED, True)] * 2

    # -- through send() and a delivery log -------------------------------------------------

    def test_a_resumed_send_hands_each_delivery_over_once(
        self,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
        secrets: tuple[str, ...],
        tmp_path: Path,
    ) -> None:
        """A send stopped by a refusal and resumed with its log delivers each delivery once.

        The log is a file, opened afresh for each send as another process
        would; what the transport answered goes into it, so it must name no
        address, text or credential.
        """
        contacts = [f"mis:G{n}" for n in range(len(addresses))]
        message = Message(_MESSAGE_ID, _SUBJECT, _BODY, channels=(channel,), contacts=contacts)
        deliveries = [
            Delivery(delivery_key(message.id, channel, a), channel, a, (c,), ())
            for c, a in zip(contacts, addresses, strict=True)
        ]
        plan = Plan(message, _SENT_AT, deliveries, ())
        path = tmp_path / "deliveries.jsonl"
        transports = {channel: make_transport()}
        if "temporary" in refusals:
            far_side.refuse("temporary")
            log = FileDeliveryLog(path)
            stopped = send(plan, transports, log=log, sent_at=_SENT_AT, sleep=lambda _: None)
            assert stopped.count(DeliveryStatus.FAILED) == len(deliveries)
            assert log.handed_over() == {d.key for d in deliveries}
            far_side.refuse(None)
        log = FileDeliveryLog(path)
        audit = send(plan, transports, log=log, sent_at=_SENT_AT, sleep=lambda _: None)
        assert audit.count(DeliveryStatus.ACCEPTED) == len(deliveries)
        assert set(log.results()) == {d.key for d in deliveries}
        arrived = far_side.arrivals()
        assert len(set(arrived)) == len(deliveries)
        # Done: sending again hands nothing over.
        again = send(plan, {channel: make_transport()}, log=FileDeliveryLog(path), sent_at=_SENT_AT)
        assert again.count(DeliveryStatus.ACCEPTED) == len(deliveries)
        assert far_side.arrivals() == arrived
        kept = path.read_text(encoding="utf-8")
        assert not [s for s in (*secrets, *_personal(addresses)) if s in kept], (
            "a result the transport gave puts an address, the text or a credential in the log"
        )

    # -- secrets never shown ---------------------------------------------------------------

    def test_no_secret_or_personal_value_is_shown(
        self,
        refusals: frozenset[Refusal],
        make_transport: MakeTransport,
        far_side: FarSide,
        channel: Channel,
        addresses: tuple[str, ...],
        bad_address: str | None,
        secrets: tuple[str, ...],
        unreachable_transport: MakeTransport | None,
        far_side_loggers: tuple[str, ...],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """No credential, address or text in a log record, result, repr or error, on any path."""
        caplog.set_level(logging.DEBUG)
        every = [*addresses, *([] if bad_address is None else [bad_address])]
        batch = _envelopes(channel, every)
        shown: list[str] = []
        makers = [make_transport] + ([unreachable_transport] if unreachable_transport else [])
        for kind in [None, *sorted(refusals), None]:
            far_side.refuse(kind)
            for make in makers:
                transport = make()
                shown.append(repr(transport))
                try:
                    shown.append(_shown(transport.send(batch)))
                except Exception as error:  # a transport must not raise, but if it does
                    shown.append("".join(traceback.format_exception(error)))
                shown.append(repr(transport))
        theirs = tuple(f"{name}." for name in far_side_loggers)
        for record in caplog.records:
            if record.name in far_side_loggers or record.name.startswith(theirs):
                continue
            shown.append(record.getMessage())
            if record.exc_info:
                shown.append("".join(traceback.format_exception(*record.exc_info)))
            if record.stack_info:
                shown.append(record.stack_info)
        text = "\n".join(shown)
        leaked = [s for s in secrets if s in text]
        assert not leaked, "a credential is shown in a log record, result, repr or error"
        personal = [p for p in _personal(every) if p in text]
        assert not personal, "an address or the message's text is shown"
