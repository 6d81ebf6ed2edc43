"""The transport contract, passed by the built-in transports against real servers on loopback.

SMTP goes to aiosmtpd with a login; SMS to an HTTP server with a bearer
token; the outbox to a folder. Each far side refuses as the contract asks.
Deliberately broken transports fail the contract at the checks they break.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Loaded before a pytester run, which unloads what it first imported: the
# outer session's Hypothesis plugin would import it afresh, half-registered.
import hypothesis  # noqa: F401
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sourcetruth.adapters.transports.outbox import OutboxTransport
from sourcetruth.adapters.transports.sms import HttpSmsTransport
from sourcetruth.adapters.transports.smtp import SmtpTransport
from sourcetruth.model import Channel
from sourcetruth.testing.transports import MakeTransport, Refusal, TransportContract

USER = "office-mailer"
PASSWORD = "pw-contract-7Qz9x"
TOKEN = "tok-contract-4e8d2a"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- SMTP ------------------------------------------------------------------------------


class MailServer:
    """aiosmtpd's handler and authenticator: keeps each message's Message-ID, refuses on demand."""

    def __init__(self) -> None:
        self.refusing: Refusal | None = None
        self.ids: list[str] = []
        self.port = 0
        self._lock = threading.Lock()

    def arrivals(self) -> list[str]:
        with self._lock:
            return list(self.ids)

    def refuse(self, kind: Refusal | None) -> None:
        self.refusing = kind

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and auth_data == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=good and self.refusing != "credentials", handled=False)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        # Real servers quote the address: the transport must not carry it on.
        if self.refusing == "permanent":
            return f"550 5.1.1 <{address}>: no such user"
        if self.refusing == "temporary":
            return f"451 4.3.0 <{address}>: mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for line in envelope.content.splitlines():
            if line.lower().startswith(b"message-id:"):
                with self._lock:
                    self.ids.append(line.split(b":", 1)[1].strip().decode("ascii"))
        return "250 2.0.0 queued"


# The contract's checks log in without TLS, to a server on this machine only.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
class TestSmtpTransport(TransportContract):
    """SmtpTransport, logging in to aiosmtpd on 127.0.0.1."""

    transport_class: type[SmtpTransport] = SmtpTransport

    @pytest.fixture
    def far_side(self) -> Iterator[MailServer]:
        """aiosmtpd on a free loopback port, wanting a login (allowed without TLS here)."""
        mail = MailServer()
        controller = Controller(
            mail,
            hostname="127.0.0.1",
            port=free_port(),
            authenticator=mail,
            auth_required=True,
            auth_require_tls=False,
        )
        controller.start()
        mail.port = controller.port
        yield mail
        controller.stop()

    @pytest.fixture
    def make_transport(self, far_side: MailServer) -> MakeTransport:
        """A plain SMTP session to the loopback server, with the login."""
        port = far_side.port
        return lambda: self.transport_class(
            "127.0.0.1",
            port,
            security="plain",
            username=USER,
            password=PASSWORD,
            sender="office@school.test",
            timeout=5.0,
        )

    @pytest.fixture
    def secrets(self) -> tuple[str, ...]:
        """The password."""
        return (PASSWORD,)

    @pytest.fixture
    def far_side_loggers(self) -> tuple[str, ...]:
        """aiosmtpd logs what it receives, addresses and all: that is the server, not us."""
        return ("mail.log",)

    @pytest.fixture
    def unreachable_transport(self) -> MakeTransport:
        """The same transport to a port nothing listens on."""
        port = free_port()
        return lambda: self.transport_class(
            "127.0.0.1",
            port,
            security="plain",
            username=USER,
            password=PASSWORD,
            sender="office@school.test",
            timeout=5.0,
        )


# -- SMS -------------------------------------------------------------------------------


class Gateway(ThreadingHTTPServer):
    """An SMS gateway on loopback: wants the bearer token, keeps each Idempotency-Key."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.refusing: Refusal | None = None
        self.keys: list[str] = []
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_port}/v1/sms"

    def arrivals(self) -> list[str]:
        with self._lock:
            return list(self.keys)

    def refuse(self, kind: Refusal | None) -> None:
        self.refusing = kind

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        if headers.get("authorization") != f"Bearer {TOKEN}" or self.refusing == "credentials":
            return 401, {"error": "bad token"}
        request = json.loads(body)
        if "messages" in request:
            return self._batch(request["messages"])
        number = request.get("to", "")
        # A gateway's words may quote the number: the transport keeps codes only.
        if self.refusing == "permanent":
            return 422, {"reason": f"{number} is not a mobile number"}
        if self.refusing == "temporary":
            return 503, {"error": f"busy, try {number} later"}
        with self._lock:
            self.keys.append(headers.get("idempotency-key", ""))
            return 200, {"id": f"gw-{len(self.keys)}", "status": "accepted"}

    def _batch(self, messages: list[dict[str, str]]) -> tuple[int, object]:
        """A batch: each message answered by its reference, which is what a retry repeats."""
        if self.refusing == "temporary":
            return 503, {"error": "busy"}
        answers: list[dict[str, str]] = []
        for message in messages:
            if self.refusing == "permanent":
                answers.append(
                    {"reference": message["reference"], "status": "rejected", "reason": "bad"}
                )
                continue
            with self._lock:
                self.keys.append(message["reference"])
                ident = f"gw-{len(self.keys)}"
            answers.append({"reference": message["reference"], "status": "accepted", "id": ident})
        return 200, {"messages": answers}


class _GatewayHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.server.answer(headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is not the place for requests."""


class TestHttpSmsTransport(TransportContract):
    """HttpSmsTransport, posting JSON with a bearer token to a gateway on 127.0.0.1."""

    transport_class: type[HttpSmsTransport] = HttpSmsTransport

    @pytest.fixture(autouse=True)
    def _no_proxies(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Requests to the loopback gateway must not go through a proxy from the environment."""
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.upper(), raising=False)

    @pytest.fixture
    def far_side(self) -> Iterator[Gateway]:
        """The gateway, serving in a thread of its own."""
        gateway = Gateway()
        thread = threading.Thread(target=gateway.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        yield gateway
        gateway.shutdown()
        gateway.server_close()
        thread.join(5)

    @pytest.fixture
    def make_transport(self, far_side: Gateway) -> MakeTransport:
        """A transport to the gateway with the token."""
        return lambda: self.transport_class(far_side.url, sender="SCHOOL", token=TOKEN, timeout=5.0)

    @pytest.fixture
    def secrets(self) -> tuple[str, ...]:
        """The bearer token."""
        return (TOKEN,)

    @pytest.fixture
    def unreachable_transport(self) -> MakeTransport:
        """The same transport to a port nothing listens on."""
        url = f"http://127.0.0.1:{free_port()}/v1/sms"
        return lambda: self.transport_class(url, sender="SCHOOL", token=TOKEN, timeout=5.0)


class TestHttpSmsTransportInBatches(TestHttpSmsTransport):
    """HttpSmsTransport posting each call's messages in one request, answered per message."""

    @pytest.fixture
    def make_transport(self, far_side: Gateway) -> MakeTransport:
        """A batching transport to the gateway with the token."""
        return lambda: self.transport_class(
            far_side.url, sender="SCHOOL", token=TOKEN, timeout=5.0, batch=True
        )


# -- the outbox ------------------------------------------------------------------------


class OutboxFolder:
    """The outbox's folder as its far side: one file per delivery key. It never refuses."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def arrivals(self) -> list[str]:
        if not self.folder.exists():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def refuse(self, kind: Refusal | None) -> None:
        if kind is not None:
            msg = "the outbox never refuses"
            raise NotImplementedError(msg)


class TestOutboxTransport(TransportContract):
    """OutboxTransport writing to a folder, a new instance at each call."""

    transport_class: type[OutboxTransport] = OutboxTransport

    @pytest.fixture
    def far_side(self, tmp_path: Path) -> OutboxFolder:
        """The outbox's folder."""
        return OutboxFolder(tmp_path / "outbox")

    @pytest.fixture
    def make_transport(self, far_side: OutboxFolder) -> MakeTransport:
        """An email outbox keeping copies in the folder."""
        return lambda: self.transport_class(Channel.EMAIL, far_side.folder)

    @pytest.fixture
    def refusals(self) -> frozenset[Refusal]:
        """It delivers nowhere, so nothing refuses it."""
        return frozenset()

    @pytest.fixture
    def bad_address(self) -> None:
        """It takes any address: it sends nothing."""
        return None


class OutboxMemory:
    """An outbox in memory as its far side: what it holds. It never refuses."""

    def __init__(self, outbox: OutboxTransport) -> None:
        self.outbox = outbox

    def arrivals(self) -> list[str]:
        return list(self.outbox.sent)

    def refuse(self, kind: Refusal | None) -> None:
        if kind is not None:
            msg = "the outbox never refuses"
            raise NotImplementedError(msg)


class TestSmsOutboxInMemory(TransportContract):
    """An SMS OutboxTransport held in memory: one instance, what it holds the far side."""

    @pytest.fixture
    def far_side(self) -> OutboxMemory:
        """The outbox."""
        return OutboxMemory(OutboxTransport(Channel.SMS))

    @pytest.fixture
    def make_transport(self, far_side: OutboxMemory) -> MakeTransport:
        """Always the same outbox."""
        return lambda: far_side.outbox

    @pytest.fixture
    def refusals(self) -> frozenset[Refusal]:
        """Nothing refuses it."""
        return frozenset()

    @pytest.fixture
    def bad_address(self) -> None:
        """It takes any address."""
        return None


# Each broken transport is run through the contract in a pytest session of its
# own making; every check its fault breaks must fail, and no other.
BROKEN_PREAMBLE = """
import logging
import uuid

import test_transport_contract as base
from sourcetruth.adapters.transports.outbox import OutboxTransport
from sourcetruth.adapters.transports.sms import HttpSmsTransport
from sourcetruth.adapters.transports.smtp import SmtpTransport
from sourcetruth.messages import DeliveryResult, DeliveryStatus
"""

BROKEN_TRANSPORTS: dict[str, tuple[str, str, set[str]]] = {
    "smtp_reference": ("TestSmtpTransport", "class Transport(SmtpTransport):\n    pass\n", set()),
    "sms_reference": (
        "TestHttpSmsTransport",
        "class Transport(HttpSmsTransport):\n    pass\n",
        set(),
    ),
    "smtp_logs_its_password": (
        "TestSmtpTransport",
        "class Transport(SmtpTransport):\n"
        "    def _open(self):\n"
        "        logging.getLogger('acme').debug('login %s:%s', self._username, self._password)\n"
        "        return super()._open()\n",
        {"test_no_secret_or_personal_value_is_shown"},
    ),
    "smtp_new_message_id_each_time": (
        "TestSmtpTransport",
        "class Transport(SmtpTransport):\n"
        "    def _message(self, envelope, indexes, recipients, id_left, date, **kw):\n"
        "        return super()._message(envelope, indexes, recipients, uuid.uuid4().hex,"
        " date, **kw)\n",
        {"test_a_retry_carries_the_same_id"},
    ),
    "sms_retries_what_was_refused": (
        "TestHttpSmsTransport",
        "class Transport(HttpSmsTransport):\n"
        "    def send(self, batch):\n"
        "        return [DeliveryResult.failed(r.key, r.reason, retryable=True)\n"
        "                if r.status is DeliveryStatus.REJECTED else r\n"
        "                for r in super().send(batch)]\n",
        {"test_a_permanent_refusal_is_rejected", "test_one_result_per_envelope_in_order"},
    ),
    "sms_gives_up_on_a_busy_gateway": (
        "TestHttpSmsTransport",
        "class Transport(HttpSmsTransport):\n"
        "    def send(self, batch):\n"
        "        return [DeliveryResult.rejected(r.key, r.reason) if r.retryable else r\n"
        "                for r in super().send(batch)]\n",
        {
            "test_a_temporary_refusal_is_retryable",
            "test_an_unreachable_server_is_retryable",
            "test_a_resumed_send_hands_each_delivery_over_once",
        },
    ),
    "sms_reason_names_the_number": (
        "TestHttpSmsTransport",
        "class Transport(HttpSmsTransport):\n"
        "    def send(self, batch):\n"
        "        return [DeliveryResult.rejected(r.key, f'{r.reason} ({e.address})')\n"
        "                if r.status is DeliveryStatus.REJECTED else r\n"
        "                for r, e in zip(super().send(batch), batch)]\n",
        {"test_a_permanent_refusal_is_rejected", "test_no_secret_or_personal_value_is_shown"},
    ),
    "smtp_retries_a_refused_login": (
        "TestSmtpTransport",
        "class Transport(SmtpTransport):\n"
        "    def send(self, batch):\n"
        "        return [DeliveryResult.failed(r.key, r.reason, retryable=True)\n"
        "                if r.status is DeliveryStatus.FAILED else r\n"
        "                for r in super().send(batch)]\n",
        {"test_refused_credentials_fail_for_good"},
    ),
    "sms_keys_by_number_alone": (
        "TestHttpSmsTransport",
        "class Transport(HttpSmsTransport):\n"
        "    def _send_one(self, item):\n"
        "        self._number = item.envelope.address\n"
        "        return super()._send_one(item)\n"
        "    def _post(self, data, content_type, key, *args, **kwargs):\n"
        "        key = uuid.uuid5(uuid.NAMESPACE_URL, self._number).hex\n"
        "        return super()._post(data, content_type, key, *args, **kwargs)\n",
        {"test_another_message_to_the_same_address_is_not_a_retry"},
    ),
    "outbox_answers_in_reverse": (
        "TestOutboxTransport",
        "class Transport(OutboxTransport):\n"
        "    def send(self, batch):\n"
        "        return list(reversed(super().send(batch)))\n",
        {"test_one_result_per_envelope_in_order"},
    ),
}


def _class_name(name: str) -> str:
    return "Test" + "".join(part.title() for part in name.split("_"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_contract_fails_exactly_the_broken_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each deliberately broken transport fails the checks its fault breaks, and only those."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    module = [BROKEN_PREAMBLE]
    for name, (base, transport, _) in sorted(BROKEN_TRANSPORTS.items()):
        suffix = _class_name(name)
        module.append(transport.replace("class Transport(", f"class Transport{suffix}("))
        module.append(f"class {suffix}(base.{base}):\n    transport_class = Transport{suffix}\n")
    pytester.makepyfile(test_broken="\n\n".join(module))
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:cacheprovider", "-rf", "-W", "ignore::UserWarning"
    )
    failed: dict[str, set[str]] = {_class_name(name): set() for name in BROKEN_TRANSPORTS}
    for line in result.outlines:
        if line.startswith("FAILED"):
            _file, cls, test = line.split(" ")[1].split("::")
            failed[cls].add(test)
    expected = {_class_name(name): tests for name, (_, _, tests) in BROKEN_TRANSPORTS.items()}
    assert failed == expected, "\n".join(result.outlines[-40:])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 9 * len(BROKEN_TRANSPORTS)
