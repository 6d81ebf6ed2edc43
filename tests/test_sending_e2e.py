"""Scenarios 1, 2, 4 and 6 end to end: planned, sent over SMTP and an HTTP gateway on loopback.

Each test starts its own servers on 127.0.0.1, an aiosmtpd SMTP server and a
small HTTP SMS gateway, and checks what they actually received, then asks
the audit record why.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from school import guardian, london, mis_policy, school
from sourcetruth import (
    Channel,
    DeliveryStatus,
    GroupDefinition,
    MemoryDeliveryLog,
    Message,
    ProvenanceKind,
    SendMode,
    SetGroup,
    merge,
    plan,
    send,
    why,
)
from sourcetruth.adapters.transports.sms import HttpSmsTransport
from sourcetruth.adapters.transports.smtp import SmtpTransport
from test_scenarios import (
    YEAR_8_PARENTS,
    YEAR_9_PARENTS,
    governors_book,
    monday_and_tuesday,
    parent_governor_edits_email,
    sync,
)

POLICY = mis_policy()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


class Gateway(ThreadingHTTPServer):
    """An SMS gateway that accepts every message and keeps the requests."""

    requests: list[dict[str, Any]]


class GatewayHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"headers": dict(self.headers), "body": body})
        answer = json.dumps({"id": f"gw-{len(self.server.requests)}", "status": "accepted"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway(("127.0.0.1", 0), GatewayHandler)
    server.requests = []
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def transports(mailbox: tuple[Mailbox, int], gateway: Gateway) -> dict[Channel, Any]:
    _, port = mailbox
    return {
        Channel.EMAIL: SmtpTransport(
            "127.0.0.1", port, security="plain", sender="office@school.test", timeout=5
        ),
        Channel.SMS: HttpSmsTransport(
            f"http://127.0.0.1:{gateway.server_address[1]}/send",
            sender="School",
            token="test-token",
            timeout=5,
        ),
    }


def numbers(gateway: Gateway) -> list[str]:
    return [r["body"]["to"] for r in gateway.requests]


class TestOverRealServers:
    """What the SMTP server and the SMS gateway received, and what the audit says."""

    def test_scenario_1_old_number_at_15_30_and_the_audit_names_the_sync(
        self, transports: dict[Channel, Any], gateway: Gateway
    ) -> None:
        """The gateway got the old number; the audit names Tuesday 02:00 as its source."""
        book = monday_and_tuesday(POLICY)
        at = london(24, 15, 30)
        message = Message(
            "s1", "Trip", "Coach at 8", channels=(Channel.SMS,), rules=(YEAR_9_PARENTS,)
        )
        audit = send(
            plan(book, message, policy=POLICY, at=at),
            transports,
            log=MemoryDeliveryLog(),
            sent_at=at,
        )
        assert "+447700900101" in numbers(gateway)
        answer = why(audit, "mis:G9", Channel.SMS)
        assert answer.result is not None
        assert answer.result.status is DeliveryStatus.ACCEPTED
        assert answer.result.reference.startswith("gw-")
        assert answer.provenance is not None
        assert answer.provenance.applied_at == london(24, 2)
        keys = {r["headers"]["Idempotency-Key"] for r in gateway.requests}
        assert keys == {o.delivery.key for o in audit.outcomes}
        book = sync(book, POLICY, 25, school(guardian("G9", "P9", mobile="07700 900999")))
        later = why(audit, "mis:G9", Channel.SMS, book=book, policy=POLICY)
        assert later.later is not None
        assert later.later.applied_at == london(25, 2)

    def test_scenario_2_new_number_next_morning(
        self, transports: dict[Channel, Any], gateway: Gateway
    ) -> None:
        """After Wednesday's sync the gateway gets the new number."""
        book = sync(
            monday_and_tuesday(POLICY),
            POLICY,
            25,
            school(guardian("G8", "P8", mobile="07700 900888")),
        )
        at = london(25, 8, 30)
        message = Message("s2", "Trip", "Coach", channels=(Channel.SMS,), rules=(YEAR_8_PARENTS,))
        send(
            plan(book, message, policy=POLICY, at=at),
            transports,
            log=MemoryDeliveryLog(),
            sent_at=at,
        )
        assert numbers(gateway) == ["+447700900888"]

    def test_scenario_4_the_edited_address_gets_the_email(
        self, transports: dict[Channel, Any], mailbox: tuple[Mailbox, int]
    ) -> None:
        """At 19:00 Thursday the SMTP server gets the locally edited address."""
        box, _ = mailbox
        book = parent_governor_edits_email(POLICY)
        at = london(26, 19)
        message = Message("s4", "Minutes", "Attached", contacts=("mis:GOV",))
        audit = send(
            plan(book, message, policy=POLICY, at=at),
            transports,
            log=MemoryDeliveryLog(),
            sent_at=at,
        )
        assert [rcpts for rcpts, _ in box.received] == [["pg.new@parent.test"]]
        (_, email) = box.received[0]
        assert email["Subject"] == "Minutes"
        assert why(audit, "mis:GOV", Channel.EMAIL).provenance.kind is ProvenanceKind.OVERRIDE

    def test_scenario_6_governors_on_both_channels(
        self,
        transports: dict[Channel, Any],
        mailbox: tuple[Mailbox, int],
        gateway: Gateway,
    ) -> None:
        """Three governors of three homes: three emails and three texts received."""
        box, _ = mailbox
        book = governors_book(POLICY)
        group = GroupDefinition(
            "Governors", members=frozenset({"mis:S1", "mis:GOV", "address-book:la-governor"})
        )
        book = merge(book, SetGroup(group), policy=POLICY, at=london(24, 10), by="office").book
        at = london(24, 11)
        message = Message(
            "s6",
            "Meeting",
            "Tuesday 6pm",
            channels=(Channel.EMAIL, Channel.SMS),
            mode=SendMode.EACH,
            groups=("Governors",),
        )
        audit = send(
            plan(book, message, policy=POLICY, at=at),
            transports,
            log=MemoryDeliveryLog(),
            sent_at=at,
        )
        assert sorted(r for rcpts, _ in box.received for r in rcpts) == [
            "la.old@example.org",
            "pg.old@parent.test",
            "s1@school.test",
        ]
        assert sorted(numbers(gateway)) == ["+447700900103", "+447700900201", "+447700900301"]
        assert audit.count(DeliveryStatus.ACCEPTED) == 6
