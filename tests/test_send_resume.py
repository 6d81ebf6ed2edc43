"""Sending from a book folder survives a stop half-way: the library resumes it, not the CLI.

A book folder of the test school, whose SMS goes through a transport named in
its ``policy.toml``: the real outbox, behind a gateway that can stop the send
(as Ctrl-C does) after one delivery, or look at the folder as each batch
arrives. Year 9 has two guardians: Gita (G9) and Paula (GOV).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from school import full, guardian, london, school
from sourcetruth import Channel, DeliveryStatus, Message, Rule
from sourcetruth.adapters import registry
from sourcetruth.adapters.transports.outbox import OutboxTransport
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.app.dispatch import plan_send, send_planned
from sourcetruth.app.settings import STARTER
from sourcetruth.audit import AuditRecord
from sourcetruth.exceptions import MessageIdReusedError, UsageError
from sourcetruth.messages import DeliveryResult, Envelope

GATEWAY = "test-resume-sms"
YEAR_9 = Rule(year_groups=frozenset({"9"}), guardians_of=True)
TRIP = Message("trip", "Trip", "The coach leaves at 8.", channels=(Channel.SMS,), rules=(YEAR_9,))
OLD_NUMBERS = ["+447700900101", "+447700900103"]


class Gateway:
    """An SMS transport in front of a real outbox, that can stop or watch the send."""

    channel = Channel.SMS

    def __init__(self, outbox: OutboxTransport) -> None:
        self.outbox = outbox
        #: Stop the send (KeyboardInterrupt) once this many envelopes went through.
        self.stop_after: int | None = None
        #: Called as each batch arrives, before any of it goes on to the outbox.
        self.arriving: Callable[[], None] | None = None
        #: Every envelope handed to the outbox: (key, address), retries included.
        self.handed: list[tuple[str, str]] = []

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        if self.arriving is not None:
            self.arriving()
        results = []
        for envelope in batch:
            if self.stop_after is not None and len(self.handed) == self.stop_after:
                self.stop_after = None
                raise KeyboardInterrupt
            self.handed.append((envelope.key, envelope.address))
            results += self.outbox.send([envelope])
        return results


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """The gateway every transport made for the book's SMS is, registered for the test."""
    gateway = Gateway(OutboxTransport(Channel.SMS, tmp_path / "sent"))
    registry.register("transport", GATEWAY, lambda: gateway)
    try:
        yield gateway
    finally:
        registry.unregister("transport", GATEWAY)


@pytest.fixture
def folder(tmp_path: Path, gateway: Gateway) -> Iterator[BookFolder]:
    """A book folder whose SMS goes through the gateway, the MIS synced Tuesday 02:00."""
    settings = f'{STARTER}\n[transports.sms]\nadapter = "{GATEWAY}"\n'
    book = BookFolder.create(tmp_path / "book", settings=settings, environ={})
    book.apply(full(london(24, 2), school()), at=london(24, 2), by="nightly")
    yield book
    book.close()


def the_mis_changes_gita_s_number(folder: BookFolder) -> None:
    """Wednesday's sync: Gita's mobile is new, so a plan made now would use it."""
    moved = guardian("G9", "P9", mobile="07700 900999", email="g9@parent.test", given="Gita")
    folder.apply(full(london(25, 2), school(moved)), at=london(25, 2), by="nightly")


def files_of(folder: Path) -> dict[str, bytes]:
    return {os.fspath(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class TestAnInterruptedSend:
    def test_it_resumes_once_each_to_the_first_planned_addresses(
        self, folder: BookFolder, gateway: Gateway
    ) -> None:
        """Stopped after one delivery, sent again: each address once, as planned Tuesday 09:00."""
        gateway.stop_after = 1
        with pytest.raises(KeyboardInterrupt):
            folder.send_message(TRIP, sent_at=london(24, 9))
        assert [address for _, address in gateway.handed] == OLD_NUMBERS[:1]

        the_mis_changes_gita_s_number(folder)
        sent = folder.send_message(TRIP, sent_at=london(25, 9))

        assert sent.record.planned_at == london(24, 9)
        assert sent.record.count(DeliveryStatus.ACCEPTED) == 2
        assert sorted(e.address for e in gateway.outbox.sent.values()) == OLD_NUMBERS
        assert len(gateway.outbox.sent) == 2  # the outbox kept each delivery once
        keys = {address: {k for k, a in gateway.handed if a == address} for address in OLD_NUMBERS}
        assert all(len(k) == 1 for k in keys.values())  # a retry carries the same key

    def test_its_audit_says_where_it_stopped(self, folder: BookFolder, gateway: Gateway) -> None:
        """After the stop, the audit has the plan; what was handed over is a failure to retry."""
        gateway.stop_after = 1
        with pytest.raises(KeyboardInterrupt):
            folder.send_message(TRIP, sent_at=london(24, 9))
        stopped = folder.audit("trip")
        assert stopped.planned_at == london(24, 9)
        assert [o.delivery.address for o in stopped.outcomes] == OLD_NUMBERS
        results = [o.result for o in stopped.outcomes]
        assert all(r is not None and r.status is DeliveryStatus.FAILED for r in results)
        assert all(r is not None and r.retryable for r in results)

    def test_planning_it_again_resumes_it(self, folder: BookFolder, gateway: Gateway) -> None:
        """plan_send after a stop: the earlier audit, its planned time, nothing final yet."""
        gateway.stop_after = 1
        with pytest.raises(KeyboardInterrupt):
            folder.send_message(TRIP, sent_at=london(24, 9))
        the_mis_changes_gita_s_number(folder)
        policy = folder.settings.policy
        planned = plan_send(folder, folder.load(), TRIP, policy=policy, now=london(25, 9))
        assert planned.previous is not None
        assert planned.plan.at == london(24, 9)
        assert [d.address for d in planned.plan.deliveries] == OLD_NUMBERS
        assert planned.delivered_before == 0
        send_planned(folder, planned, sent_at=london(25, 9))
        again = plan_send(folder, folder.load(), TRIP, policy=policy, now=london(25, 10))
        assert again.delivered_before == 2

    def test_a_time_given_plans_it_anew(self, folder: BookFolder, gateway: Gateway) -> None:
        """Told a time, a resumed message is planned then: the new number is used."""
        gateway.stop_after = 1
        with pytest.raises(KeyboardInterrupt):
            folder.send_message(TRIP, sent_at=london(24, 9))
        the_mis_changes_gita_s_number(folder)
        sent = folder.send_message(TRIP, sent_at=london(25, 9), at=london(25, 9))
        assert sent.record.planned_at == london(25, 9)
        assert "+447700900999" in [e.address for e in gateway.outbox.sent.values()]


class TestAMessageIdIsForEver:
    def test_another_message_under_a_sent_id_is_refused(
        self, folder: BookFolder, gateway: Gateway, tmp_path: Path
    ) -> None:
        """The same id with other text raises MessageIdReusedError, naming the id and when sent."""
        folder.send_message(TRIP, sent_at=london(24, 9))
        before = files_of(tmp_path)
        other = Message("trip", "Trip", "Cancelled.", channels=(Channel.SMS,), rules=(YEAR_9,))
        with pytest.raises(MessageIdReusedError) as refused:
            folder.send_message(other, sent_at=london(24, 10))
        assert isinstance(refused.value, UsageError)
        assert refused.value.message_id == "trip"
        assert refused.value.sent_at == london(24, 9)
        assert "Cancelled" not in str(refused.value)
        assert files_of(tmp_path) == before

    @pytest.mark.parametrize(
        "other",
        [
            Message("trip", "Trip", TRIP.body, channels=(Channel.EMAIL,), rules=(YEAR_9,)),
            Message("trip", "Trip", TRIP.body, channels=(Channel.SMS,), contacts=("mis:G8",)),
        ],
        ids=["other channels", "other audience"],
    )
    def test_other_channels_or_audience_are_refused_too(
        self, folder: BookFolder, gateway: Gateway, other: Message
    ) -> None:
        """Changing only the channels, or only the audience, is another message too."""
        folder.send_message(TRIP, sent_at=london(24, 9))
        with pytest.raises(MessageIdReusedError):
            folder.send_message(other, sent_at=london(24, 10))

    def test_the_same_message_again_sends_nothing_twice(
        self, folder: BookFolder, gateway: Gateway
    ) -> None:
        """Sent again whole, a finished message hands nothing over and keeps its audit."""
        first = folder.send_message(TRIP, sent_at=london(24, 9))
        handed = list(gateway.handed)
        again = folder.send_message(TRIP, sent_at=london(24, 10))
        assert gateway.handed == handed
        assert again.audit_file == first.audit_file
        assert again.record.count(DeliveryStatus.ACCEPTED) == 2


class TestTheAuditComesFirst:
    def test_the_audit_is_kept_before_the_first_hand_over(
        self, folder: BookFolder, gateway: Gateway
    ) -> None:
        """When the first batch reaches the transport, the audit file holds the whole plan."""
        seen: list[AuditRecord] = []
        gateway.arriving = lambda: seen.append(folder.audit("trip"))
        folder.send_message(TRIP, sent_at=london(24, 9))
        (early,) = seen
        assert early.planned_at == london(24, 9)
        assert [o.delivery.address for o in early.outcomes] == OLD_NUMBERS
        assert [o.result for o in early.outcomes] == [None, None]
        assert folder.audit("trip").count(DeliveryStatus.ACCEPTED) == 2

    def test_no_audit_is_kept_when_no_transport_can_be_made(
        self, folder: BookFolder, gateway: Gateway
    ) -> None:
        """A transport that cannot be made stops the send before the audit: no record of it."""
        registry.unregister("transport", GATEWAY)
        with pytest.raises(UsageError):
            folder.send_message(TRIP, sent_at=london(24, 9))
        with pytest.raises(UsageError, match="no message 'trip'"):
            folder.audit("trip")


class TestSettled:
    def test_each_delivery_is_settled_once(self, folder: BookFolder, gateway: Gateway) -> None:
        """settled hears of each delivery once, when its answer is final."""
        settled: list[str] = []
        policy = folder.settings.policy
        planned = plan_send(folder, folder.load(), TRIP, policy=policy, now=london(24, 9))
        send_planned(
            folder, planned, sent_at=london(24, 9), settled=lambda r: settled.append(r.key)
        )
        assert sorted(settled) == sorted(d.key for d in planned.plan.deliveries)
