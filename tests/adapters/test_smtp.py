"""The SMTP transport against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sourcetruth.adapters.transports.smtp import SmtpTransport
from sourcetruth.exceptions import UsageError
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel
from sourcetruth.protocols import Transport

SENDER = "office@school.test"
SENDER_NAME = "École Saint-Jean"
NOW = datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
SUBJECT = "Réunion des parents \u2013 9B"  # an en dash
BODY = "Bonjour,\nla réunion a lieu jeudi à 18 h.\n"
HTML = "<p>Bonjour,<br>la réunion a lieu <b>jeudi</b> à 18 h.</p>"
USER = "mailer"
PASSWORD = "s3cret-Pa55word"
LOGGER = "sourcetruth.adapters.transports.smtp"


# A recording SMTP server


@dataclass
class Received:
    """One message as the server took it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message and refuses what it is told to."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    sessions: set[int] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions.add(id(session))
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                id(session),
                session.ssl is not None or bool(server.transport.get_extra_info("ssl_object")),
                session.authenticated,
            )
        )
        return "250 2.0.0 queued"


@dataclass
class Server:
    """A running server: where it listens and what it got."""

    port: int
    recorder: Recorder

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def transport(self, **options: Any) -> SmtpTransport:
        options.setdefault("security", "plain")
        options.setdefault("sender", SENDER)
        options.setdefault("sender_name", SENDER_NAME)
        options.setdefault("timeout", 5.0)
        options.setdefault("clock", lambda: NOW)
        options.setdefault("local_hostname", "client.school.test")
        return SmtpTransport("127.0.0.1", self.port, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


StartServer = Callable[..., Server]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts aiosmtpd servers on free local ports; stops them all afterwards."""
    controllers: list[Controller] = []

    def start(**options: Any) -> Server:
        recorder = Recorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        controllers.append(controller)
        return Server(controller.port, recorder)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def server(start_server: StartServer) -> Server:
    """A plain SMTP server that takes everything."""
    return start_server()


def check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    # handled=False: aiosmtpd itself answers 535 to a failed login.
    return AuthResult(success=ok, handled=False)


# Certificates


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def _with_cryptography(folder: Path) -> Certificate | None:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    result = Certificate(folder / "cert.pem", folder / "key.pem")
    result.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return result


def _with_openssl(folder: Path) -> Certificate | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    result = Certificate(folder / "cert.pem", folder / "key.pem")
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        str(result.key),
        "-out",
        str(result.cert),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, or a clean skip if none can be made."""
    folder = tmp_path_factory.mktemp("tls")
    made = _with_cryptography(folder) or _with_openssl(folder)
    if made is None:
        pytest.skip("neither the cryptography package nor the openssl program is available")
    return made


# Helpers


def envelope(
    key: str,
    address: str,
    name: str = "",
    *,
    subject: str = SUBJECT,
    body: str = BODY,
    html: str | None = None,
    channel: Channel = Channel.EMAIL,
) -> Envelope:
    return Envelope(key, channel, address, subject, body, html, name)


PARENTS = [
    envelope("k1", "zoe.okafor@parents.test", "Zoë Okafor"),
    envelope("k2", "ben.hartley@example.org", "Ben Hartley"),
    envelope("k3", "amara.quist@parents.test", "Amara Quist"),
]


def plain_login(**options: Any) -> SmtpTransport:
    """An SMTP transport logging in to another machine over plain SMTP."""
    return SmtpTransport(
        "smtp.school.test",
        security="plain",
        username=USER,
        password=PASSWORD,
        sender=SENDER,
        **options,
    )


def statuses(results: list[DeliveryResult]) -> list[DeliveryStatus]:
    return [r.status for r in results]


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the transport logged (not the test server), arguments filled in."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


# Tests


class TestHeaders:
    def test_per_message_headers(self, server: Server) -> None:
        """From, To, Subject decode back from RFC 2047; Date and Message-ID are as planned."""
        results = server.transport().send([PARENTS[0]])
        assert statuses(results) == [DeliveryStatus.ACCEPTED]
        [got] = server.received
        message = got.message
        assert parseaddr(str(message["From"])) == (SENDER_NAME, SENDER)
        assert parseaddr(str(message["To"])) == ("Zoë Okafor", "zoe.okafor@parents.test")
        assert str(message["Subject"]) == SUBJECT
        assert message["Date"] == "Tue, 05 Mar 2024 08:30:00 +0000"
        assert parsedate_to_datetime(str(message["Date"])) == NOW
        assert message["Message-ID"] == "<k1@school.test>"
        assert message["MIME-Version"] == "1.0"
        assert results[0].reference == "<k1@school.test>"
        assert got.mail_from == SENDER
        assert got.rcpt_tos == ["zoe.okafor@parents.test"]

    def test_headers_on_the_wire_are_ascii(self, server: Server) -> None:
        """Non-ASCII names and subject travel RFC 2047-encoded as UTF-8, not raw."""
        server.transport().send([PARENTS[0]])
        raw = header_block(server.received[0].data)
        assert raw.isascii()
        assert b"=?utf-8?" in raw
        assert server.received[0].data.isascii()

    def test_plain_text_body(self, server: Server) -> None:
        """Without HTML the message is one text/plain part in UTF-8."""
        server.transport().send([PARENTS[0]])
        message = server.received[0].message
        assert message.get_content_type() == "text/plain"
        assert message.get_content_charset() == "utf-8"
        assert message.get_content().replace("\r\n", "\n") == BODY

    def test_html_alternative(self, server: Server) -> None:
        """With HTML the message is multipart/alternative: the text first, then the HTML."""
        server.transport().send([envelope("k1", "zoe.okafor@parents.test", html=HTML)])
        message = server.received[0].message
        assert message.get_content_type() == "multipart/alternative"
        text, html = message.iter_parts()
        assert text.get_content_type() == "text/plain"
        assert html.get_content_type() == "text/html"
        assert text.get_content().replace("\r\n", "\n") == BODY
        assert html.get_content().rstrip("\r\n") == HTML
        assert html.get_content_charset() == "utf-8"
        assert text["MIME-Version"] is None
        assert html["MIME-Version"] is None

    def test_message_id_stable_across_retry(self, server: Server) -> None:
        """Sending the same delivery again carries the same Message-ID and reference."""
        transport = server.transport()
        first = transport.send([PARENTS[1]])
        second = transport.send([PARENTS[1]])
        ids = [got.message["Message-ID"] for got in server.received]
        assert ids == ["<k2@school.test>", "<k2@school.test>"]
        assert first[0].reference == second[0].reference == "<k2@school.test>"

    def test_key_unfit_for_a_message_id_is_hashed(self, server: Server) -> None:
        """A key with spaces or brackets becomes a hash: still valid, still stable."""
        odd = envelope("week 12 <b>", "zoe.okafor@parents.test")
        transport = server.transport()
        transport.send([odd])
        transport.send([odd])
        first, second = (str(got.message["Message-ID"]) for got in server.received)
        assert first == second
        assert first.startswith("<")
        assert first.endswith("@school.test>")
        assert " " not in first
        assert "week" not in first

    def test_date_follows_the_clock_zone(self, server: Server) -> None:
        """The Date header keeps the clock's offset."""
        paris = datetime(2024, 3, 5, 9, 30, tzinfo=timezone(timedelta(hours=1)))
        server.transport(clock=lambda: paris).send([PARENTS[0]])
        assert server.received[0].message["Date"] == "Tue, 05 Mar 2024 09:30:00 +0100"

    def test_line_breaks_cannot_inject_headers(self, server: Server) -> None:
        """Line breaks in a name or subject are flattened: no extra header, no extra recipient."""
        sneaky = envelope(
            "k1",
            "zoe.okafor@parents.test",
            "Zoë\r\nBcc: intruder@evil.test",
            subject="Hello\nX-Injected: yes",
        )
        results = server.transport().send([sneaky])
        assert statuses(results) == [DeliveryStatus.ACCEPTED]
        [got] = server.received
        assert got.rcpt_tos == ["zoe.okafor@parents.test"]
        assert got.message["Bcc"] is None
        assert got.message["X-Injected"] is None
        assert str(got.message["Subject"]) == "Hello X-Injected: yes"

    def test_international_domain_sent_as_idna(self, server: Server) -> None:
        """A non-ASCII domain goes out in its IDNA form."""
        results = server.transport().send([envelope("k1", "parent@écoles.test")])
        assert statuses(results) == [DeliveryStatus.ACCEPTED]
        ascii_domain = "écoles.test".encode("idna").decode()
        assert ascii_domain.startswith("xn--")
        assert server.received[0].rcpt_tos == [f"parent@{ascii_domain}"]


class TestPerMessage:
    def test_one_message_per_recipient_in_one_session(self, server: Server) -> None:
        """Each envelope is its own message with its own To and Message-ID, in one session."""
        results = server.transport().send(PARENTS)
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 3
        assert [got.rcpt_tos for got in server.received] == [[p.address] for p in PARENTS]
        tos = [parseaddr(str(got.message["To"])) for got in server.received]
        assert tos == [(p.name, p.address) for p in PARENTS]
        ids = [got.message["Message-ID"] for got in server.received]
        assert ids == ["<k1@school.test>", "<k2@school.test>", "<k3@school.test>"]
        assert [r.reference for r in results] == ids
        assert len({got.session for got in server.received}) == 1

    def test_no_other_parent_in_any_message(self, server: Server) -> None:
        """A parent's message names only that parent."""
        server.transport().send(PARENTS)
        for got, mine in zip(server.received, PARENTS, strict=True):
            for other in PARENTS:
                if other is not mine:
                    assert other.address.encode() not in got.data


class TestPerBatch:
    def test_one_message_recipients_in_envelope_only(self, server: Server) -> None:
        """Envelopes with the same content go as one message; no parent address in it."""
        results = server.transport(per_message=False).send(PARENTS)
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 3
        [got] = server.received
        assert got.rcpt_tos == [p.address for p in PARENTS]
        for parent in PARENTS:
            assert parent.address.encode() not in got.data
        message = got.message
        assert message["Bcc"] is None
        assert parseaddr(str(message["To"])) == (SENDER_NAME, SENDER)
        assert str(message["Subject"]) == SUBJECT
        assert len({r.reference for r in results}) == 1
        assert results[0].reference == message["Message-ID"]

    def test_batch_message_id_is_stable(self, server: Server) -> None:
        """The same batch sent again carries the same Message-ID."""
        transport = server.transport(per_message=False)
        transport.send(PARENTS)
        transport.send(PARENTS)
        first, second = (got.message["Message-ID"] for got in server.received)
        assert first == second

    def test_different_content_goes_separately(self, server: Server) -> None:
        """Envelopes whose subject or body differ are different messages; order is kept."""
        other = envelope("k4", "ben.hartley@example.org", subject="Sports day")
        batch = [PARENTS[0], other, PARENTS[2]]
        results = server.transport(per_message=False).send(batch)
        assert [r.key for r in results] == ["k1", "k4", "k3"]
        assert [got.rcpt_tos for got in server.received] == [
            [PARENTS[0].address, PARENTS[2].address],
            [other.address],
        ]
        assert str(server.received[1].message["Subject"]) == "Sports day"

    def test_max_recipients_and_repeated_address(self, server: Server) -> None:
        """A batch message holds at most max_recipients, and never one address twice."""
        repeat = envelope("k9", PARENTS[0].address)
        batch = [*PARENTS, repeat]
        results = server.transport(per_message=False, max_recipients=2).send(batch)
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 4
        assert [got.rcpt_tos for got in server.received] == [
            [PARENTS[0].address, PARENTS[1].address],
            [PARENTS[2].address, PARENTS[0].address],
        ]

    def test_batch_with_html(self, server: Server) -> None:
        """A batch message keeps its HTML alternative."""
        batch = [envelope(f"k{i}", p.address, html=HTML) for i, p in enumerate(PARENTS)]
        server.transport(per_message=False).send(batch)
        [got] = server.received
        assert got.message.get_content_type() == "multipart/alternative"


class TestRefusals:
    @pytest.mark.parametrize("per_message", [True, False])
    def test_refused_recipients(self, server: Server, per_message: bool) -> None:
        """550 is rejected, 450 failed and retryable, the others accepted; no address in reasons."""
        server.recorder.refuse = {
            PARENTS[0].address: f"550 5.1.1 <{PARENTS[0].address}>: no such user",
            PARENTS[1].address: f"450 4.2.1 <{PARENTS[1].address}>: mailbox busy",
        }
        results = server.transport(per_message=per_message).send(PARENTS)
        assert [r.key for r in results] == ["k1", "k2", "k3"]
        assert statuses(results) == [
            DeliveryStatus.REJECTED,
            DeliveryStatus.FAILED,
            DeliveryStatus.ACCEPTED,
        ]
        assert results[0].reason == "recipient refused: 550 5.1.1"
        assert results[1].reason == "recipient refused: 450 4.2.1"
        assert results[1].retryable
        assert not results[0].retryable
        assert [got.rcpt_tos for got in server.received] == [[PARENTS[2].address]]
        for result in results:
            assert "@" not in result.reason

    def test_all_recipients_refused(self, server: Server) -> None:
        """When every recipient of a batch message is refused, each gets its own result."""
        server.recorder.refuse = {p.address: "550 no" for p in PARENTS}
        results = server.transport(per_message=False).send(PARENTS)
        assert statuses(results) == [DeliveryStatus.REJECTED] * 3
        assert {r.reason for r in results} == {"recipient refused: 550"}
        assert server.received == []

    def test_message_refused_at_data(self, server: Server) -> None:
        """554 at DATA rejects that message, 451 fails it retryably; the next one still goes."""
        server.recorder.data_replies = ["554 5.7.1 content refused", "451 4.3.0 try later"]
        results = server.transport().send(PARENTS)
        assert statuses(results) == [
            DeliveryStatus.REJECTED,
            DeliveryStatus.FAILED,
            DeliveryStatus.ACCEPTED,
        ]
        assert results[0].reason == "message refused: 554 5.7.1"
        assert results[1].retryable
        assert len(server.received) == 1

    def test_server_closing_midway(self, server: Server) -> None:
        """A 421 closes the session: that message and every later one fail retryably."""
        server.recorder.data_replies = ["250 OK", "421 4.3.2 shutting down"]
        results = server.transport().send(PARENTS)
        assert statuses(results) == [
            DeliveryStatus.ACCEPTED,
            DeliveryStatus.FAILED,
            DeliveryStatus.FAILED,
        ]
        assert results[1].retryable
        assert results[2].retryable
        assert results[2].reason == "connection lost"

    def test_invalid_address_does_not_stop_the_rest(self, server: Server) -> None:
        """An unusable address is rejected without sending; the others are delivered."""
        batch = [
            envelope("k1", "not an address"),
            PARENTS[1],
            envelope("k3", "zoë@parents.test"),
            envelope("k4", "x@y.test\r\nRCPT TO:<intruder@evil.test>"),
        ]
        results = server.transport().send(batch)
        assert statuses(results) == [
            DeliveryStatus.REJECTED,
            DeliveryStatus.ACCEPTED,
            DeliveryStatus.REJECTED,
            DeliveryStatus.REJECTED,
        ]
        assert results[0].reason == "invalid address"
        assert "SMTPUTF8" in results[2].reason
        assert [got.rcpt_tos for got in server.received] == [[PARENTS[1].address]]

    def test_unencodable_text_rejected(self, server: Server) -> None:
        """A body that cannot be encoded (a lone surrogate) rejects that message only."""
        broken = envelope("k1", PARENTS[0].address, body="Bonjour \udce9")
        results = server.transport().send([broken, PARENTS[1]])
        assert statuses(results) == [DeliveryStatus.REJECTED, DeliveryStatus.ACCEPTED]
        assert results[0].reason == "message cannot be encoded"
        assert [got.rcpt_tos for got in server.received] == [[PARENTS[1].address]]

    def test_wrong_channel_rejected(self, server: Server) -> None:
        """An SMS envelope is rejected; nothing is sent for it."""
        sms = envelope("k1", "+447700900123", channel=Channel.SMS)
        results = server.transport().send([sms])
        assert statuses(results) == [DeliveryStatus.REJECTED]
        assert results[0].reason == "wrong channel"
        assert server.received == []
        assert server.recorder.sessions == set()

    def test_empty_batch(self) -> None:
        """An empty batch gives no results and opens no connection."""
        transport = SmtpTransport("127.0.0.1", 9, security="plain", sender=SENDER)
        assert transport.send([]) == []


class TestConnectionFailures:
    def test_closed_port(self) -> None:
        """Nobody listening: every envelope fails, retryably."""
        with socket.socket() as reserved:
            reserved.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
            port = reserved.getsockname()[1]
            transport = SmtpTransport(
                "127.0.0.1", port, security="plain", sender=SENDER, timeout=2.0
            )
            results = transport.send(PARENTS)
        assert statuses(results) == [DeliveryStatus.FAILED] * 3
        assert all(r.retryable for r in results)
        assert [r.key for r in results] == ["k1", "k2", "k3"]

    def test_silent_server_times_out(self) -> None:
        """A server that never greets: the timeout fails every envelope, retryably."""
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            transport = SmtpTransport(
                "127.0.0.1",
                port,
                security="plain",
                sender=SENDER,
                timeout=0.3,
                local_hostname="client.school.test",
            )
            results = transport.send(PARENTS[:2])
        assert statuses(results) == [DeliveryStatus.FAILED] * 2
        assert all(r.retryable for r in results)
        assert results[0].reason == "connection timed out"


class TestTls:
    def test_starttls(self, start_server: StartServer, certificate: Certificate) -> None:
        """STARTTLS upgrades the session before anything is sent."""
        server = start_server(tls_context=certificate.server_context(), require_starttls=True)
        transport = server.transport(security="starttls", ssl_context=certificate.client_context())
        results = transport.send(PARENTS)
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 3
        assert all(got.tls for got in server.received)

    def test_starttls_not_offered(self, server: Server) -> None:
        """STARTTLS asked for but not offered: nothing goes in clear, and retrying won't help."""
        results = server.transport(security="starttls").send(PARENTS)
        assert statuses(results) == [DeliveryStatus.FAILED] * 3
        assert {r.reason for r in results} == {"server does not offer STARTTLS"}
        assert not any(r.retryable for r in results)
        assert server.received == []

    def test_untrusted_certificate(
        self, start_server: StartServer, certificate: Certificate
    ) -> None:
        """With the default context, a self-signed certificate is refused, not retryably."""
        server = start_server(tls_context=certificate.server_context(), require_starttls=True)
        results = server.transport(security="starttls").send(PARENTS[:1])
        assert statuses(results) == [DeliveryStatus.FAILED]
        assert results[0].reason == "server certificate not trusted"
        assert not results[0].retryable
        assert server.received == []

    def test_implicit_tls(self, start_server: StartServer, certificate: Certificate) -> None:
        """security="tls" talks TLS from the first byte."""
        server = start_server(ssl_context=certificate.server_context())
        transport = server.transport(security="tls", ssl_context=certificate.client_context())
        results = transport.send(PARENTS[:2])
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 2
        assert all(got.tls for got in server.received)

    def test_starttls_then_login(self, start_server: StartServer, certificate: Certificate) -> None:
        """With STARTTLS, authentication happens inside the encrypted session."""
        server = start_server(
            tls_context=certificate.server_context(),
            require_starttls=True,
            authenticator=check_login,
        )
        transport = server.transport(
            security="starttls",
            ssl_context=certificate.client_context(),
            username=USER,
            password=PASSWORD,
        )
        results = transport.send(PARENTS[:1])
        assert statuses(results) == [DeliveryStatus.ACCEPTED]
        assert server.received[0].tls
        assert server.received[0].authenticated


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
class TestAuthentication:
    @pytest.fixture
    def auth_server(self, start_server: StartServer) -> Server:
        """A plain server that wants a login (allowed without TLS, for the test)."""
        return start_server(authenticator=check_login, auth_require_tls=False, auth_required=True)

    def test_login(self, auth_server: Server) -> None:
        """The right credentials log in and the messages go."""
        transport = auth_server.transport(username=USER, password=PASSWORD)
        results = transport.send(PARENTS)
        assert statuses(results) == [DeliveryStatus.ACCEPTED] * 3
        assert all(got.authenticated for got in auth_server.received)

    def test_wrong_password(self, auth_server: Server, caplog: pytest.LogCaptureFixture) -> None:
        """A wrong password fails every envelope, not retryably, and is never shown."""
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        transport = auth_server.transport(username=USER, password="wrong-" + PASSWORD)
        results = transport.send(PARENTS)
        assert statuses(results) == [DeliveryStatus.FAILED] * 3
        assert {r.reason for r in results} == {"authentication failed"}
        assert not any(r.retryable for r in results)
        assert auth_server.received == []
        shown = ours(caplog) + repr(transport) + "".join(map(repr, results))
        assert PASSWORD not in shown
        assert "authentication failed" in ours(caplog)

    def test_no_auth_offered(self, server: Server) -> None:
        """Credentials given but the server offers no AUTH: fail, not retryably."""
        results = server.transport(username=USER, password=PASSWORD).send(PARENTS[:1])
        assert statuses(results) == [DeliveryStatus.FAILED]
        assert results[0].reason == "server does not offer authentication"
        assert not results[0].retryable


class TestPrivacy:
    def test_logs_hold_no_address(self, server: Server, caplog: pytest.LogCaptureFixture) -> None:
        """Debug logging of a send with refusals names no address and no name."""
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        server.recorder.refuse = {PARENTS[0].address: f"550 <{PARENTS[0].address}> unknown"}
        server.transport(username=None).send([*PARENTS, envelope("k4", "bad address")])
        logged = ours(caplog)
        assert "accepted" in logged
        assert "550" in logged
        for parent in PARENTS:
            assert parent.address not in logged
            assert parent.name not in logged
        assert "bad address" not in logged

    def test_repr(self) -> None:
        """repr shows host, port, security and sender, never the password."""
        transport = SmtpTransport(
            "smtp.school.test", username=USER, password=PASSWORD, sender=SENDER
        )
        shown = repr(transport)
        assert shown == (
            "SmtpTransport(host='smtp.school.test', port=587, security='starttls', "
            "sender='office@school.test')"
        )
        assert PASSWORD not in shown


class TestConfiguration:
    def test_is_an_email_transport(self) -> None:
        """It satisfies the Transport protocol, for email."""
        transport = SmtpTransport("smtp.school.test", sender=SENDER)
        assert isinstance(transport, Transport)
        assert transport.channel is Channel.EMAIL

    @pytest.mark.parametrize(("security", "port"), [("plain", 25), ("starttls", 587), ("tls", 465)])
    def test_default_ports(self, security: Any, port: int) -> None:
        """The port follows the security when not given."""
        transport = SmtpTransport("smtp.school.test", security=security, sender=SENDER)
        assert f"port={port}," in repr(transport)

    @pytest.mark.parametrize(
        "options",
        [
            {"security": "ssl"},
            {"username": USER},
            {"password": PASSWORD},
            {"sender": "not an address"},
            {"max_recipients": 0},
            {"username": USER, "password": "pässword"},
            {"local_hostname": "école.test"},
        ],
    )
    def test_usage_errors(self, options: dict[str, Any]) -> None:
        """Impossible settings are refused at construction, without echoing secrets."""
        options.setdefault("sender", SENDER)
        with pytest.raises(UsageError) as raised:
            SmtpTransport("smtp.school.test", **options)
        assert PASSWORD not in str(raised.value)

    @pytest.mark.parametrize(
        "host", ["smtp.school.test", "10.0.0.1", "0.0.0.0", "127.0.0.1.evil.test", "::2"]
    )
    def test_plain_auth_to_another_host_refused(self, host: str) -> None:
        """A password over unencrypted SMTP to another machine is refused, echoing nothing."""
        with pytest.raises(UsageError) as raised:
            SmtpTransport(host, security="plain", username=USER, password=PASSWORD, sender=SENDER)
        shown = str(raised.value)
        assert "allow_insecure" in shown
        for value in (PASSWORD, USER, host):
            assert value not in shown

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost."]
    )
    def test_plain_auth_to_loopback_allowed(self, host: str) -> None:
        """A relay on this machine may take a login without TLS: nothing crosses the network."""
        SmtpTransport(host, security="plain", username=USER, password=PASSWORD, sender=SENDER)

    def test_both_transports_refuse_in_the_same_words(self) -> None:
        """F4: SMTP and SMS refuse credentials in clear with one message and one option name."""
        from sourcetruth.adapters.transports.sms import HttpSmsTransport

        with pytest.raises(UsageError) as smtp:
            plain_login()
        with pytest.raises(UsageError) as sms:
            HttpSmsTransport("http://sms.school.test/send", sender="School", token=PASSWORD)
        tail = "pass allow_insecure=True"
        assert tail in str(smtp.value)
        assert tail in str(sms.value)
        assert str(smtp.value).split(". ", 1)[1] == str(sms.value).split(". ", 1)[1]

    @pytest.mark.parametrize("option", ["allow_insecure", "allow_plain_auth"])
    def test_allow_insecure_and_its_old_name_both_accept_the_risk(self, option: str) -> None:
        """F4: allow_insecure=True, or allow_plain_auth=True as before, makes the transport."""
        plain_login(**{option: True})

    def test_plain_auth_allowed_when_asked(self) -> None:
        """allow_plain_auth=True accepts the risk for another host; TLS needs no such flag."""
        plain_login(allow_plain_auth=True)
        secured: list[Any] = ["starttls", "tls"]
        for security in secured:
            SmtpTransport(
                "smtp.school.test",
                security=security,
                username=USER,
                password=PASSWORD,
                sender=SENDER,
            )
        SmtpTransport("smtp.school.test", security="plain", sender=SENDER)

    def test_naive_clock_refused(self, server: Server) -> None:
        """A clock without a time zone is a usage error, caught before connecting."""
        transport = server.transport(clock=lambda: datetime(2024, 3, 5, 8, 30))
        with pytest.raises(UsageError):
            transport.send(PARENTS[:1])
        assert server.recorder.sessions == set()
