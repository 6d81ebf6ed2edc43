"""SMS: segment counts, and the HTTP gateway transport against a real local HTTP server."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from sourcetruth.adapters.transports.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    HttpSmsTransport,
    SmsSplit,
    segments,
)
from sourcetruth.exceptions import UsageError
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel
from sourcetruth.protocols import Transport

# Ofcom drama numbers only.
NUMBER = "+447700900123"
OTHER = "+447700900456"
THIRD = "+447700900789"
TOKEN = "tok-3f9a8c7e1d2b"
USERNAME = "school-api"
PASSWORD = "pw-5e6f7a8b9c"
TEXT = "Reminder: parents evening on Thursday at six, in the main hall."
CURLY = "\u2019"  # RIGHT SINGLE QUOTATION MARK, the curly apostrophe
CYRILLIC = "\u0434"  # one UCS-2 unit
EMOJI = "\U0001f600"  # two UCS-2 units (a surrogate pair)
LOGGER = "sourcetruth.adapters.transports.sms"
ACCEPTED, REJECTED, FAILED = DeliveryStatus.ACCEPTED, DeliveryStatus.REJECTED, DeliveryStatus.FAILED


# --------------------------------------------------------------------------
# A scripted local gateway


@dataclass
class Seen:
    """One request the gateway received."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        pairs = urllib.parse.parse_qsl(self.body.decode("ascii"), strict_parsing=True)
        return dict(pairs)

    def fields(self) -> dict[str, Any]:
        if self.headers.get("content-type", "").startswith("application/json"):
            data = self.json()
            assert isinstance(data, dict)
            return data
        return self.form()


Body = bytes | dict[str, Any] | list[Any] | Callable[[Seen], Any]


def accept_all(seen: Seen) -> Any:
    """The gateway's answer accepting every message of a request."""
    data = seen.fields()
    if "messages" in data:
        return {
            "messages": [
                {"id": f"gw-{m.get('reference')}", "status": "accepted"} for m in data["messages"]
            ]
        }
    return {"id": f"gw-{data.get('reference', 'x')}", "status": "accepted"}


@dataclass
class Reply:
    """A scripted answer: status, body (JSON, raw bytes or a function of the request), delay."""

    status: int = 200
    body: Body = accept_all
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    """Records every request and answers with the scripted replies, then the default."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[Seen] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def take(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            return self.replies.pop(0) if self.replies else self.default


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    gateway: Gateway


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.gateway.take(seen)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body(seen) if callable(reply.body) else reply.body
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a timeout test)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to the local gateway must not go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """A real HTTP server on 127.0.0.1, answering as each test scripts it."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.gateway = Gateway(f"http://127.0.0.1:{server.server_port}/v1/sms")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server.gateway
    server.shutdown()
    server.server_close()
    thread.join(2)


def make(gateway: Gateway | str, **options: Any) -> HttpSmsTransport:
    """A transport to *gateway* with a bearer token and a short timeout, unless told otherwise."""
    url = gateway if isinstance(gateway, str) else gateway.url
    options.setdefault("sender", "SCHOOL")
    if options.get("auth", "bearer") == "bearer":
        options.setdefault("token", TOKEN)
    options.setdefault("timeout", 0.5)
    return HttpSmsTransport(url, **options)


def sms(key: str = "k-1", address: str = NUMBER, body: str = TEXT) -> Envelope:
    return Envelope(key, Channel.SMS, address, "", body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------
# Segments


class TestSegments:
    @pytest.mark.parametrize(
        ("text", "encoding", "count", "units"),
        [
            ("", "gsm-7", 1, 0),
            ("a", "gsm-7", 1, 1),
            ("a" * 160, "gsm-7", 1, 160),
            ("a" * 161, "gsm-7", 2, 161),
            ("a" * 306, "gsm-7", 2, 306),
            ("a" * 307, "gsm-7", 3, 307),
            ("a" * 459, "gsm-7", 3, 459),
            ("a" * 460, "gsm-7", 4, 460),
            (CYRILLIC * 70, "ucs-2", 1, 70),
            (CYRILLIC * 71, "ucs-2", 2, 71),
            (CYRILLIC * 134, "ucs-2", 2, 134),
            (CYRILLIC * 135, "ucs-2", 3, 135),
            ("€", "gsm-7", 1, 2),
            ("€" * 80, "gsm-7", 1, 160),
            ("€" * 81, "gsm-7", 2, 162),
            ("a" * 159 + "€", "gsm-7", 2, 161),
            (EMOJI, "ucs-2", 1, 2),
            (EMOJI * 35, "ucs-2", 1, 70),
            (EMOJI * 36, "ucs-2", 2, 72),
        ],
    )
    def test_known_counts(self, text: str, encoding: str, count: int, units: int) -> None:
        """The published limits: 160/153 septets in GSM-7, 70/67 units in UCS-2."""
        split = segments(text)
        assert (split.encoding, split.segments, split.units) == (encoding, count, units)

    @pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
    def test_extension_characters_count_two_septets(self, char: str) -> None:
        """Each extension-table character stays GSM-7 but costs an escape plus its code."""
        split = segments(f"a{char}b")
        assert (split.encoding, split.units, split.forced_by) == ("gsm-7", 4, ())

    def test_extension_table_is_the_standard_one(self) -> None:
        """The extension table is exactly ^{}\\[~]|€ and form feed."""
        assert set("^{}\\[~]|€\f") == GSM7_EXTENSION

    def test_basic_alphabet_stays_gsm7(self) -> None:
        """All 127 printable codes of the default alphabet (ESC aside) are one septet each."""
        assert len(GSM7_BASIC) == 127
        text = "".join(sorted(GSM7_BASIC))
        split = segments(text)
        assert (split.encoding, split.units, split.segments) == ("gsm-7", 127, 1)

    def test_extension_character_is_never_split(self) -> None:
        """A € that would straddle parts 1 and 2 moves whole to part 2, costing a third part."""
        text = "a" * 152 + "€" + "a" * 152
        split = segments(text)
        assert (split.units, split.segments) == (306, 3)
        assert segments("a" * 151 + "€" + "a" * 153).segments == 2

    def test_surrogate_pair_is_never_split(self) -> None:
        """An emoji that would straddle UCS-2 parts moves whole to the next one."""
        text = CYRILLIC * 66 + EMOJI + CYRILLIC * 66
        split = segments(text)
        assert (split.encoding, split.units, split.segments) == ("ucs-2", 134, 3)
        assert segments(CYRILLIC * 65 + EMOJI + CYRILLIC * 67).segments == 2

    def test_curly_apostrophe_forces_ucs2(self) -> None:
        """One curly apostrophe turns a GSM-7 text into UCS-2 and is named as the cause."""
        split = segments(f"It{CURLY}s parents evening")
        assert split.encoding == "ucs-2"
        assert split.forced_by == (CURLY,)
        assert f"{CURLY} forced UCS-2" in split.describe()

    def test_a_long_text_triples_in_cost(self) -> None:
        """150 plain characters are one message; with a curly apostrophe, three."""
        plain = "a" * 150
        assert segments(plain).segments == 1
        assert segments(plain + CURLY).segments == 3

    def test_forcing_characters_are_distinct_in_order(self) -> None:
        """forced_by lists each offending character once, in order of first appearance."""
        split = segments(f"\u201cHi{CURLY}\u201d {CURLY}\u201c")
        assert split.forced_by == ("\u201c", CURLY, "\u201d")

    @pytest.mark.parametrize(
        ("text", "encoding"),
        [
            ("\u00c7", "gsm-7"),  # Ç is in the alphabet
            ("\u00e7", "ucs-2"),  # ç is not
            ("\u00e9\u00e8\u00f9", "gsm-7"),  # é è ù
            ("\u00e1", "ucs-2"),  # á
            ("\u00a3\u00a5\u00a4\u00a7", "gsm-7"),  # £ ¥ ¤ §
            ("\u0394\u03a9", "gsm-7"),  # Greek capitals in the table
            ("\t", "ucs-2"),
            ("\u00a0", "ucs-2"),  # no-break space
            ("\x1b", "ucs-2"),  # a raw escape is not a character of the text
            ("\n\r", "gsm-7"),
        ],
    )
    def test_alphabet_membership(self, text: str, encoding: str) -> None:
        """The classic surprises of GSM 03.38 are classified correctly."""
        assert segments(text).encoding == encoding

    def test_describe(self) -> None:
        """describe() gives parts, encoding and units for a report."""
        assert segments("a" * 161).describe() == "2 segments (GSM-7, 161 units)"
        assert segments("hi").describe() == "1 segment (GSM-7, 2 units)"

    def test_limits(self) -> None:
        """The split knows its per-message and per-part limits."""
        assert (segments("a").single_limit, segments("a").part_limit) == (160, 153)
        assert (segments(CURLY).single_limit, segments(CURLY).part_limit) == (70, 67)

    def test_split_is_immutable(self) -> None:
        """SmsSplit is a frozen value."""
        split = segments("a")
        assert split == SmsSplit("gsm-7", 1, 1)
        with pytest.raises(AttributeError):
            split.segments = 2  # type: ignore[misc]

    @settings(max_examples=budget.examples(300), deadline=None)
    @given(
        st.text(
            alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))
            | st.characters(codec="utf-8"),
            max_size=500,
        )
    )
    def test_counts_are_consistent(self, text: str) -> None:
        """For any text: one part iff within the single limit, and parts are packed tightly."""
        split = segments(text)
        assert (split.encoding == "gsm-7") == (not split.forced_by)
        assert len(set(split.forced_by)) == len(split.forced_by)
        assert all(char in text for char in split.forced_by)
        if split.encoding == "ucs-2":
            assert split.units == len(text.encode("utf-16-le")) // 2
        if split.segments == 1:
            assert split.units <= split.single_limit
        else:
            assert split.units > split.single_limit
            # A part wastes at most one unit (a double unit that did not fit).
            assert (split.segments - 1) * (split.part_limit - 1) < split.units
            assert split.units <= split.segments * split.part_limit


# --------------------------------------------------------------------------
# Construction


class TestConstruction:
    def test_is_an_sms_transport(self, gateway: Gateway) -> None:
        """It meets the Transport protocol on the SMS channel."""
        transport = make(gateway)
        assert isinstance(transport, Transport)
        assert transport.channel is Channel.SMS
        assert transport.max_segments == 3

    @pytest.mark.parametrize(
        "options",
        [
            {"auth": "bearer", "token": None},
            {"auth": "bearer", "token": "two\nlines"},
            {"auth": "basic", "username": USERNAME},
            {"auth": "basic", "password": PASSWORD},
            {"auth": "basic", "username": "a:b", "password": PASSWORD},
            {"auth": "magic"},
            {"format": "xml"},
            {"batch": True, "format": "form"},
            {"max_segments": 0},
            {"timeout": 0},
            {"sender": ""},
            {"sender": "ABCDEFGHIJKL"},
            {"sender": "Sch*ol"},
            {"field_names": {"body": "message"}},
            {"field_names": {"to": "from"}},
            {"field_names": {"to": ""}},
        ],
    )
    def test_bad_options_are_usage_errors(self, gateway: Gateway, options: dict[str, Any]) -> None:
        """A transport that could never work is refused when it is made."""
        with pytest.raises(UsageError):
            make(gateway, **options)

    @pytest.mark.parametrize(
        "url",
        ["ftp://127.0.0.1/sms", "127.0.0.1/sms", "http:///sms", "http://127.0.0.1/s ms"],
    )
    def test_bad_urls_are_usage_errors(self, url: str) -> None:
        """Only http(s) URLs with a host and no spaces are accepted."""
        with pytest.raises(UsageError):
            make(url)

    def test_credentials_in_url_are_refused_without_echoing_them(self) -> None:
        """user:password@ in the URL is a usage error whose message does not repeat them."""
        with pytest.raises(UsageError) as caught:
            make(f"https://{USERNAME}:{PASSWORD}@sms.example.com/send", auth="none")
        assert PASSWORD not in str(caught.value)
        assert USERNAME not in str(caught.value)

    def test_sender_may_be_an_e164_number(self, gateway: Gateway) -> None:
        """A numeric sender in E.164 is accepted as well as an 11-character name."""
        make(gateway, sender=OTHER)
        make(gateway, sender="Hill School")

    def test_repr_hides_credentials_and_query(self, gateway: Gateway) -> None:
        """repr shows scheme, host and port, and the sender, never a secret."""
        bearer = make(gateway.url + "?api_key=SECRETKEY123")
        basic = make(gateway, auth="basic", username=USERNAME, password=PASSWORD)
        host = gateway.url.removesuffix("/v1/sms")
        for transport in (bearer, basic):
            text = repr(transport)
            assert f"{host}/..." in text
            assert "SCHOOL" in text
            for secret in (TOKEN, PASSWORD, "SECRETKEY123", "api_key", "?", "/v1/sms"):
                assert secret not in text

    def test_key_in_the_path_is_hidden(
        self, gateway: Gateway, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A key in the URL's path is in neither the repr nor any log line; the path is dropped."""
        host = gateway.url.removesuffix("/v1/sms")
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            transport = make(f"{host}/api/PATHKEY987/send", auth="none")
            gateway.script(Reply(503, b""))
            transport.send([sms()])
            make("http://sms.example.com/api/PATHKEY987/send", allow_insecure=True)
        assert gateway.seen[0].path == "/api/PATHKEY987/send"
        assert repr(transport).startswith(f"HttpSmsTransport('{host}/...', ")
        logged = [r.getMessage() for r in caplog.records]
        assert any("http://sms.example.com/..." in line for line in logged)
        assert any(f"{host}/..." in line for line in logged)
        for text in [repr(transport), *logged]:
            assert "PATHKEY987" not in text
            assert "/api" not in text

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://sms.example.com", "https://sms.example.com"),
            ("https://sms.example.com/", "https://sms.example.com"),
            ("https://sms.example.com:8443/k/send#x", "https://sms.example.com:8443/..."),
            ("http://[::1]:8080/send?key=1", "http://[::1]:8080/..."),
        ],
    )
    def test_public_url_in_repr(self, url: str, shown: str) -> None:
        """Only scheme://host[:port] is shown, with /... when a path was dropped."""
        assert repr(make(url)).startswith(f"HttpSmsTransport({shown!r}, ")

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"auth": "basic", "username": USERNAME, "password": PASSWORD},
            {"auth": "none"},
        ],
    )
    def test_plain_http_to_another_host_is_refused(self, options: dict[str, Any]) -> None:
        """F4: plain http to a host that is not this machine is a UsageError, echoing no secret."""
        with pytest.raises(UsageError) as caught:
            make("http://sms.example.com/send?key=SECRETKEY123", **options)
        shown = str(caught.value)
        assert "allow_insecure" in shown
        for secret in (TOKEN, USERNAME, PASSWORD, "SECRETKEY123"):
            assert secret not in shown

    def test_allowing_insecure_http_still_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        """F4: allow_insecure=True makes the transport, with a warning that names no secret."""
        with caplog.at_level(logging.WARNING, logger="sourcetruth"):
            make("http://sms.example.com/send?key=SECRETKEY123", allow_insecure=True)
        assert any("unencrypted" in r.getMessage() for r in caplog.records)
        assert all(TOKEN not in r.getMessage() for r in caplog.records)
        assert all("SECRETKEY123" not in r.getMessage() for r in caplog.records)

    def test_loopback_http_does_not_warn(
        self, gateway: Gateway, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A local gateway over http is not worth a warning."""
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            make(gateway)
        assert not caplog.records


class TestNoCredentialsInClear:
    """F4: a plain http gateway off this machine would carry the token in clear: refused."""

    @pytest.fixture
    def proxy(self, gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Gateway:
        """The loopback gateway as the HTTP proxy: a request to any host would reach it."""
        monkeypatch.setenv("http_proxy", gateway.url.removesuffix("/v1/sms"))
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        return gateway

    def test_nothing_is_sent_when_refused(self, proxy: Gateway) -> None:
        """F4: refused at construction, so not one request (and no token) leaves, retries or not."""

        def try_to_send() -> None:
            make("http://sms.example.com/send").send([sms(), sms("k-2", OTHER)])

        with pytest.raises(UsageError):
            try_to_send()
        assert proxy.seen == []

    def test_allowed_when_asked_it_goes(self, proxy: Gateway) -> None:
        """F4: with allow_insecure=True the request goes: the refusal above is what stopped it."""
        [result] = make("http://sms.example.com/send", allow_insecure=True).send([sms()])
        assert result.status is ACCEPTED
        assert [s.headers["authorization"] for s in proxy.seen] == [f"Bearer {TOKEN}"]

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
    def test_loopback_stays_allowed(self, host: str) -> None:
        """F4: a gateway on this machine over http is made: nothing crosses a network."""
        make(f"http://{host}:8080/send")


# --------------------------------------------------------------------------
# What the gateway receives


class TestRequest:
    def test_json_request(self, gateway: Gateway) -> None:
        """By default one JSON POST per envelope, with bearer auth and the idempotency key."""
        make(gateway).send([sms("k-1")])
        [seen] = gateway.seen
        assert seen.path == "/v1/sms"
        assert seen.headers["content-type"] == "application/json"
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["idempotency-key"] == "k-1"
        assert seen.json() == {"to": NUMBER, "from": "SCHOOL", "text": TEXT, "reference": "k-1"}

    def test_form_request(self, gateway: Gateway) -> None:
        """format='form' posts the same fields URL-encoded, non-ASCII text in UTF-8."""
        text = f"It{CURLY}s on {EMOJI}"
        make(gateway, format="form").send([sms("k-2", body=text)])
        [seen] = gateway.seen
        assert seen.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert seen.form() == {"to": NUMBER, "from": "SCHOOL", "text": text, "reference": "k-2"}
        assert seen.headers["idempotency-key"] == "k-2"

    def test_json_carries_any_unicode(self, gateway: Gateway) -> None:
        """Emoji and curly quotes reach the gateway intact in JSON."""
        text = f"\u201cSee you{CURLY}\u201d {EMOJI}"
        make(gateway).send([sms(body=text)])
        assert gateway.seen[0].json()["text"] == text

    def test_basic_auth(self, gateway: Gateway) -> None:
        """auth='basic' sends the username and password as a Basic Authorization header."""
        make(gateway, auth="basic", username=USERNAME, password=PASSWORD).send([sms()])
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        assert gateway.seen[0].headers["authorization"] == f"Basic {expected}"

    def test_no_auth(self, gateway: Gateway) -> None:
        """auth='none' sends no Authorization header; a query-string key still reaches it."""
        make(gateway.url + "?api_key=SECRETKEY123", auth="none").send([sms()])
        [seen] = gateway.seen
        assert "authorization" not in seen.headers
        assert seen.path == "/v1/sms?api_key=SECRETKEY123"

    @pytest.mark.parametrize("format", ["json", "form"])
    def test_field_renaming(self, gateway: Gateway, format: str) -> None:
        """field_names renames the fields for a gateway with its own vocabulary."""
        names = {"to": "destination", "from": "originator", "text": "body", "reference": "ref"}
        make(gateway, format=format, field_names=names).send([sms("k-9")])
        assert gateway.seen[0].fields() == {
            "destination": NUMBER,
            "originator": "SCHOOL",
            "body": TEXT,
            "ref": "k-9",
        }

    def test_partial_renaming_keeps_other_names(self, gateway: Gateway) -> None:
        """Fields not named in field_names keep their standard names."""
        make(gateway, field_names={"text": "message"}).send([sms()])
        assert set(gateway.seen[0].json()) == {"to", "from", "message", "reference"}

    def test_one_post_per_envelope(self, gateway: Gateway) -> None:
        """Without batch, each envelope is its own request with its own key."""
        make(gateway).send([sms("a", NUMBER), sms("b", OTHER), sms("c", THIRD)])
        assert [s.headers["idempotency-key"] for s in gateway.seen] == ["a", "b", "c"]
        assert [s.json()["to"] for s in gateway.seen] == [NUMBER, OTHER, THIRD]

    def test_empty_batch_sends_nothing(self, gateway: Gateway) -> None:
        """No envelopes, no requests, no results."""
        assert make(gateway).send([]) == []
        assert make(gateway, batch=True).send([]) == []
        assert gateway.seen == []


# --------------------------------------------------------------------------
# How answers become results


class TestResults:
    def test_accepted(self, gateway: Gateway) -> None:
        """An accepted message takes the gateway's id as reference and its segment count."""
        gateway.script(Reply(200, {"id": "msg-77", "status": "accepted"}))
        [result] = make(gateway).send([sms("k-1", body="a" * 200)])
        assert result == DeliveryResult.accepted("k-1", reference="msg-77", segments=2)

    def test_accepted_with_201_and_numeric_id(self, gateway: Gateway) -> None:
        """Any 2xx will do; a numeric id becomes its text."""
        gateway.script(Reply(201, {"id": 98765, "status": "ACCEPTED"}))
        [result] = make(gateway).send([sms()])
        assert (result.status, result.reference, result.segments) == (ACCEPTED, "98765", 1)

    def test_ucs2_segments_in_result(self, gateway: Gateway) -> None:
        """The result carries the UCS-2 segment count when a character forced it."""
        [result] = make(gateway).send([sms(body="a" * 100 + CURLY)])
        assert result.segments == 2

    def test_free_text_reason_is_not_kept(self, gateway: Gateway) -> None:
        """A reason in words may quote the message or a name: none of it is kept."""
        reason = f"Destination {NUMBER} for Ann O'Brien is barred; 'Reminder: parents'"
        gateway.script(Reply(200, {"id": "m1", "status": "rejected", "reason": reason}))
        [result] = make(gateway).send([sms()])
        assert result == DeliveryResult.rejected("k-1", "rejected by the gateway")

    @pytest.mark.parametrize(
        "code", ["invalid_number", "blacklisted", "E.21211", "opt-out", "a" * 40]
    )
    def test_code_reason_is_kept(self, gateway: Gateway, code: str) -> None:
        """A short code-like reason is kept after what rejected the message."""
        gateway.script(Reply(200, {"status": "rejected", "reason": code}))
        [result] = make(gateway).send([sms()])
        assert result == DeliveryResult.rejected("k-1", f"rejected by the gateway: {code}")

    @pytest.mark.parametrize(
        "reason",
        [
            "a" * 41,
            "spam " * 100,
            "21211",
            "_private",
            "invalid number",
            "x447700900123",
            TOKEN,
            "Reminder",
            {"code": "invalid_number"},
            ["blacklisted"],
            42,
            "line\nbreak",
        ],
    )
    def test_reason_that_is_not_a_safe_code_is_dropped(self, gateway: Gateway, reason: Any) -> None:
        """Long, spaced, numeric, structured or secret-bearing reasons give the fixed reason."""
        gateway.script(Reply(200, {"status": "rejected", "reason": reason}))
        [result] = make(gateway).send([sms(body="Reminder")])
        assert result == DeliveryResult.rejected("k-1", "rejected by the gateway")

    def test_rejected_without_reason(self, gateway: Gateway) -> None:
        """A rejection without a reason still says who rejected it."""
        gateway.script(Reply(200, {"status": "rejected"}))
        [result] = make(gateway).send([sms()])
        assert result == DeliveryResult.rejected("k-1", "rejected by the gateway")

    @pytest.mark.parametrize("status", [400, 422])
    def test_client_error_is_rejected(self, gateway: Gateway, status: int) -> None:
        """400 and 422 mean the gateway refused this message: rejected, free text dropped."""
        gateway.script(
            Reply(status, {"reason": f"invalid destination {NUMBER}"}),
            Reply(status, {"reason": "invalid_number"}),
        )
        transport = make(gateway)
        [free] = transport.send([sms()])
        [coded] = transport.send([sms()])
        prefix = f"the gateway refused the message (HTTP {status})"
        assert free == DeliveryResult.rejected("k-1", prefix)
        assert coded == DeliveryResult.rejected("k-1", f"{prefix}: invalid_number")

    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_failure_is_not_retryable(self, gateway: Gateway, status: int) -> None:
        """401 and 403 fail without retry: the credentials will not fix themselves."""
        gateway.script(Reply(status, {"error": "bad token"}))
        [result] = make(gateway).send([sms()])
        assert (result.status, result.retryable) == (FAILED, False)
        assert "authentication failed" in result.reason

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
    def test_busy_or_broken_gateway_is_retryable(self, gateway: Gateway, status: int) -> None:
        """408, 429 and 5xx fail and may be retried."""
        gateway.script(Reply(status, b"oops"))
        [result] = make(gateway).send([sms()])
        assert (result.status, result.retryable) == (FAILED, True)
        assert f"HTTP {status}" in result.reason

    @pytest.mark.parametrize("status", [404, 405, 409])
    def test_other_client_errors_fail_without_retry(self, gateway: Gateway, status: int) -> None:
        """A wrong URL or method is a configuration problem: failed, not retryable."""
        gateway.script(Reply(status, b""))
        [result] = make(gateway).send([sms()])
        assert (result.status, result.retryable) == (FAILED, False)

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b"",
            b"\xff\xfe\x00garbage",
            b'"accepted"',
            b"[]",
            {"status": "queued"},
            {"id": "m1"},
            {"id": {"nested": 1}, "status": "accepted"},
        ],
    )
    def test_unreadable_2xx_is_retryable(self, gateway: Gateway, body: Body) -> None:
        """A 2xx that is not the promised JSON fails retryably (the key makes retry safe)."""
        gateway.script(Reply(200, body))
        [result] = make(gateway).send([sms()])
        assert result == DeliveryResult.failed("k-1", "unreadable gateway response", retryable=True)

    def test_timeout_is_retryable(self, gateway: Gateway) -> None:
        """A gateway slower than the timeout fails retryably, and quickly."""
        gateway.script(Reply(200, accept_all, delay=0.8))
        started = time.monotonic()
        [result] = make(gateway, timeout=0.2).send([sms()])
        assert time.monotonic() - started < 0.7
        assert (result.status, result.retryable) == (FAILED, True)
        assert "timed out" in result.reason

    def test_connection_refused_is_retryable(self) -> None:
        """Nobody listening is a retryable failure, not an exception."""
        [result] = make(f"http://127.0.0.1:{free_port()}/sms").send([sms()])
        assert (result.status, result.retryable) == (FAILED, True)

    def test_tls_failure_is_a_result(self, gateway: Gateway) -> None:
        """Speaking TLS to a plain HTTP server fails as a result, never an exception."""
        url = gateway.url.replace("http://", "https://")
        [result] = make(url).send([sms()])
        assert result.status is FAILED

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirects_are_not_followed(self, gateway: Gateway, status: int) -> None:
        """A redirect is never followed (the POST and its token stay where they were sent)."""
        gateway.script(Reply(status, b"", headers={"Location": "/elsewhere"}))
        [result] = make(gateway).send([sms()])
        assert (result.status, result.retryable) == (FAILED, False)
        assert [s.path for s in gateway.seen] == ["/v1/sms"]

    @pytest.mark.parametrize(
        "address",
        [
            "07700900123",
            "447700900123",
            "+44 7700 900123",
            "+44-7700-900123",
            "+44(0)7700900123",
            "+4477009",
            "+4477009001234567",
            "+0447700900123",
            "",
            "+447700900123\n",
            " +447700900123",
            "+\uff14\uff14\uff17\uff17\uff10\uff10\uff19\uff10\uff10\uff11\uff12\uff13",
        ],
    )
    def test_non_e164_number_is_rejected_locally(self, gateway: Gateway, address: str) -> None:
        """Anything but + and 8-15 digits is rejected without asking the gateway."""
        [result] = make(gateway).send([sms(address=address)])
        assert result == DeliveryResult.rejected("k-1", "not an E.164 number")
        assert gateway.seen == []

    def test_too_many_segments_is_rejected_locally(self, gateway: Gateway) -> None:
        """A text longer than max_segments parts is rejected with its count, unsent."""
        [gsm, ucs] = make(gateway, max_segments=1).send(
            [sms("a", body="a" * 161), sms("b", body=CYRILLIC * 135)]
        )
        assert gsm.status is REJECTED
        assert "2 segments" in gsm.reason
        assert ucs.status is REJECTED
        assert "3 segments" in ucs.reason
        assert gateway.seen == []

    def test_max_segments_is_inclusive(self, gateway: Gateway) -> None:
        """A text of exactly max_segments parts goes out."""
        [result] = make(gateway, max_segments=2).send([sms(body="a" * 306)])
        assert (result.status, result.segments) == (ACCEPTED, 2)

    def test_wrong_channel_is_rejected(self, gateway: Gateway) -> None:
        """An email envelope handed to the SMS transport is rejected, unsent."""
        envelope = Envelope("k-1", Channel.EMAIL, "someone@example.com", "Hi", TEXT)
        [result] = make(gateway).send([envelope])
        assert result == DeliveryResult.rejected("k-1", "wrong channel")
        assert gateway.seen == []

    def test_unusable_key_is_rejected(self, gateway: Gateway) -> None:
        """A key that cannot travel in a header is rejected rather than raising."""
        [result] = make(gateway).send([sms("bad\nkey")])
        assert result.status is REJECTED
        assert gateway.seen == []

    def test_lone_surrogate_is_rejected(self, gateway: Gateway) -> None:
        """Text that is not valid Unicode is rejected rather than raising."""
        [result] = make(gateway, format="form").send([sms(body="hi \ud83d")])
        assert result.status is REJECTED
        assert gateway.seen == []

    def test_every_envelope_gets_a_result_in_order(self, gateway: Gateway) -> None:
        """Bad numbers among good ones get their own results, in order; the good ones go."""
        batch = [sms("a", NUMBER), sms("b", "07700900456"), sms("c", THIRD)]
        results = make(gateway).send(batch)
        assert [(r.key, r.status) for r in results] == [
            ("a", ACCEPTED),
            ("b", REJECTED),
            ("c", ACCEPTED),
        ]
        assert [s.headers["idempotency-key"] for s in gateway.seen] == ["a", "c"]

    def test_one_failure_does_not_stop_the_rest(self, gateway: Gateway) -> None:
        """A 500 for one envelope leaves the next to go out normally."""
        gateway.script(Reply(500, b""), Reply(200, {"id": "m2", "status": "accepted"}))
        first, second = make(gateway).send([sms("a"), sms("b", OTHER)])
        assert (first.status, second.status) == (FAILED, ACCEPTED)


# --------------------------------------------------------------------------
# Retries


class TestRetry:
    def test_429_then_200_keeps_the_key(self, gateway: Gateway) -> None:
        """A retry after 429 carries the same Idempotency-Key and reference, and succeeds."""
        gateway.script(Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}))
        transport = make(gateway)
        envelope = sms("k-retry")
        [first] = transport.send([envelope])
        [second] = transport.send([envelope])
        assert (first.status, first.retryable) == (FAILED, True)
        assert second.status is ACCEPTED
        keys = [s.headers["idempotency-key"] for s in gateway.seen]
        assert keys == ["k-retry", "k-retry"]
        assert [s.json()["reference"] for s in gateway.seen] == keys

    def test_retry_after_timeout_keeps_the_key(self, gateway: Gateway) -> None:
        """A timed-out request (which the gateway may have acted on) is retried with its key."""
        gateway.script(Reply(200, accept_all, delay=0.6))
        transport = make(gateway, timeout=0.2)
        [first] = transport.send([sms("k-slow")])
        [second] = transport.send([sms("k-slow")])
        assert (first.status, second.status) == (FAILED, ACCEPTED)
        assert [s.headers["idempotency-key"] for s in gateway.seen] == ["k-slow", "k-slow"]


# --------------------------------------------------------------------------
# Batches


def answer_in_reverse(seen: Seen) -> Any:
    """A batch answer listing the results in reverse order, each with its reference."""
    messages = seen.json()["messages"]
    return [
        {"reference": m["reference"], "id": f"gw-{m['reference']}", "status": "accepted"}
        for m in reversed(messages)
    ]


class TestBatch:
    def test_one_post_for_the_batch(self, gateway: Gateway) -> None:
        """batch=True posts every message in one JSON list and maps results in order."""
        results = make(gateway, batch=True).send(
            [sms("a", NUMBER), sms("b", OTHER, "a" * 200), sms("c", THIRD)]
        )
        [seen] = gateway.seen
        assert seen.headers["content-type"] == "application/json"
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        assert seen.json() == {
            "messages": [
                {"to": NUMBER, "from": "SCHOOL", "text": TEXT, "reference": "a"},
                {"to": OTHER, "from": "SCHOOL", "text": "a" * 200, "reference": "b"},
                {"to": THIRD, "from": "SCHOOL", "text": TEXT, "reference": "c"},
            ]
        }
        assert [(r.key, r.status, r.reference, r.segments) for r in results] == [
            ("a", ACCEPTED, "gw-a", 1),
            ("b", ACCEPTED, "gw-b", 2),
            ("c", ACCEPTED, "gw-c", 1),
        ]

    def test_batch_renames_fields(self, gateway: Gateway) -> None:
        """field_names applies to each message of a batch."""
        make(gateway, batch=True, field_names={"to": "msisdn"}).send([sms()])
        assert set(gateway.seen[0].json()["messages"][0]) == {"msisdn", "from", "text", "reference"}

    def test_per_message_outcomes(self, gateway: Gateway) -> None:
        """A batch answer mixes acceptances and rejections; only code-like reasons are kept."""
        answer = {
            "messages": [
                {"id": "m1", "status": "accepted"},
                {"id": "m2", "status": "rejected", "reason": f"{OTHER} opted out"},
                {"id": "m3", "status": "weird"},
                {"id": "m4", "status": "rejected", "reason": "opted_out"},
            ]
        }
        gateway.script(Reply(200, answer))
        a, b, c, d = make(gateway, batch=True).send(
            [sms("a"), sms("b", OTHER), sms("c", THIRD), sms("d")]
        )
        assert (a.status, a.reference) == (ACCEPTED, "m1")
        assert b == DeliveryResult.rejected("b", "rejected by the gateway")
        assert (c.status, c.retryable, c.reason) == (FAILED, True, "unreadable gateway response")
        assert d == DeliveryResult.rejected("d", "rejected by the gateway: opted_out")

    def test_bad_numbers_are_left_out(self, gateway: Gateway) -> None:
        """Invalid numbers never reach the batch; every envelope still gets its result in order."""
        batch = [sms("a", "0770"), sms("b", NUMBER), sms("c", "nope"), sms("d", OTHER)]
        results = make(gateway, batch=True).send(batch)
        assert [(r.key, r.status) for r in results] == [
            ("a", REJECTED),
            ("b", ACCEPTED),
            ("c", REJECTED),
            ("d", ACCEPTED),
        ]
        [seen] = gateway.seen
        assert [m["reference"] for m in seen.json()["messages"]] == ["b", "d"]

    def test_nothing_valid_means_no_request(self, gateway: Gateway) -> None:
        """A batch of only invalid numbers asks nothing of the gateway."""
        results = make(gateway, batch=True).send([sms("a", "0770"), sms("b", "")])
        assert [r.status for r in results] == [REJECTED, REJECTED]
        assert gateway.seen == []

    def test_results_matched_by_reference(self, gateway: Gateway) -> None:
        """A gateway that answers out of order but names each reference is matched by it."""
        gateway.script(Reply(200, answer_in_reverse))
        results = make(gateway, batch=True).send([sms("a"), sms("b", OTHER), sms("c", THIRD)])
        assert [(r.key, r.reference) for r in results] == [
            ("a", "gw-a"),
            ("b", "gw-b"),
            ("c", "gw-c"),
        ]

    def test_references_naming_other_messages_fail(self, gateway: Gateway) -> None:
        """Answers whose references do not cover the batch are not guessed at by position."""
        gateway.script(
            Reply(
                200,
                [
                    {"reference": "zz", "status": "accepted"},
                    {"reference": "a", "status": "accepted"},
                ],
            )
        )
        results = make(gateway, batch=True).send([sms("a"), sms("b", OTHER)])
        assert [(r.status, r.retryable) for r in results] == [(FAILED, True)] * 2

    def test_bare_list_and_results_key(self, gateway: Gateway) -> None:
        """The per-message list may be bare or under "results"."""
        gateway.script(
            Reply(200, [{"id": "x", "status": "accepted"}]),
            Reply(200, {"results": [{"id": "y", "status": "accepted"}]}),
        )
        transport = make(gateway, batch=True)
        assert transport.send([sms("a")])[0].reference == "x"
        assert transport.send([sms("b")])[0].reference == "y"

    @pytest.mark.parametrize(
        "body",
        [
            {"messages": [{"id": "m1", "status": "accepted"}]},
            {"messages": "all good"},
            {"id": "m1", "status": "accepted"},
            b"<html>",
        ],
    )
    def test_answer_not_matching_the_batch_fails_all(self, gateway: Gateway, body: Body) -> None:
        """A list of the wrong length, or no list, fails every message retryably."""
        gateway.script(Reply(200, body))
        results = make(gateway, batch=True).send([sms("a"), sms("b", OTHER)])
        assert [(r.status, r.retryable, r.reason) for r in results] == [
            (FAILED, True, "unreadable gateway response")
        ] * 2

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (500, (FAILED, True)),
            (401, (FAILED, False)),
            (400, (FAILED, False)),
            (422, (FAILED, False)),
        ],
    )
    def test_http_status_applies_to_every_message(
        self, gateway: Gateway, status: int, expected: tuple[DeliveryStatus, bool]
    ) -> None:
        """A whole-request status gives each message of the batch the same result."""
        gateway.script(Reply(status, b"{}"))
        results = make(gateway, batch=True).send([sms("a"), sms("b", OTHER)])
        assert [(r.status, r.retryable) for r in results] == [expected] * 2

    @pytest.mark.parametrize("status", [400, 422])
    def test_client_error_fails_the_batch_without_rejecting(
        self, gateway: Gateway, status: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 400 or 422 to the whole batch fails each message (not retryably), never rejects.

        The gateway may have refused the batch for one bad message: the good
        ones must not be marked as refused for good.
        """
        gateway.script(
            Reply(status, {"reason": f"bad number in message 2: {OTHER}"}),
            Reply(status, {"reason": "invalid_payload"}),
        )
        transport = make(gateway, batch=True)
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            free = transport.send([sms("a"), sms("b", OTHER), sms("c", THIRD)])
        coded = transport.send([sms("a"), sms("b", OTHER)])
        prefix = f"the gateway refused the batch (HTTP {status})"
        assert free == [DeliveryResult.failed(k, prefix, retryable=False) for k in "abc"]
        assert coded == [
            DeliveryResult.failed(k, f"{prefix}: invalid_payload", retryable=False) for k in "ab"
        ]
        assert all(r.status is not REJECTED for r in free + coded)
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert prefix in logged
        assert "bad number" not in logged
        assert OTHER[1:] not in logged

    def test_batch_idempotency_key_is_stable(self, gateway: Gateway) -> None:
        """The same batch retried carries the same Idempotency-Key; another batch another."""
        gateway.script(Reply(503, b""))
        transport = make(gateway, batch=True)
        batch = [sms("a"), sms("b", OTHER)]
        transport.send(batch)
        transport.send(batch)
        transport.send([sms("a")])
        first, again, other = (s.headers["idempotency-key"] for s in gateway.seen)
        assert first == again
        assert first.startswith("batch-")
        assert other != first


# --------------------------------------------------------------------------
# Personal data and secrets


class TestPrivacy:
    FORBIDDEN = (
        NUMBER,
        NUMBER[1:],
        "7700900123",
        "900123",
        TEXT,
        "parents evening",
        TOKEN,
        PASSWORD,
        base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
        "SECRETKEY123",
        "O'Brien",
        "credentials=",
        "Reminder",
    )

    def echo_everything(self, seen: Seen) -> Any:
        """A hostile gateway reason repeating the number, the text and the credentials."""
        data = seen.fields()
        echo = (
            f"rejected {data['to']} / 0{data['to'][3:7]} {data['to'][7:]}: "
            f"{data['text']!r} for Ann O'Brien credentials={seen.headers.get('authorization')}"
        )
        return {"id": "m", "status": "rejected", "reason": echo}

    def outcomes(self, gateway: Gateway, transport: HttpSmsTransport) -> list[DeliveryResult]:
        gateway.script(
            Reply(200, {"id": "ok", "status": "accepted"}),
            Reply(200, self.echo_everything),
            Reply(400, self.echo_everything),
            Reply(401, self.echo_everything),
            Reply(500, self.echo_everything),
            Reply(200, f"{NUMBER} {TEXT}".encode()),
            Reply(200, accept_all, delay=0.6),
        )
        batch = [sms(f"k{i}") for i in range(7)]
        batch += [sms("bad", NUMBER[1:]), sms("long", body=TEXT * 10)]
        return transport.send(batch)

    @pytest.mark.parametrize("auth", ["bearer", "basic"])
    def test_nothing_personal_or_secret_leaks(
        self, gateway: Gateway, caplog: pytest.LogCaptureFixture, auth: str
    ) -> None:
        """No number, text or credential in a reason, log or repr, whatever the gateway says."""
        transport = make(
            gateway.url + "?key=SECRETKEY123",
            auth=auth,
            username=USERNAME,
            password=PASSWORD,
            timeout=0.2,
        )
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            results = self.outcomes(gateway, transport)
        assert len(results) == 9
        assert {r.status for r in results} == {ACCEPTED, REJECTED, FAILED}
        assert len(gateway.seen) == 7
        texts = [r.reason for r in results] + [r.reference for r in results]
        texts += [r.getMessage() for r in caplog.records] + [repr(transport)]
        texts += [repr(r) for r in results]
        assert caplog.records
        for text in texts:
            for forbidden in self.FORBIDDEN:
                assert forbidden not in text
            assert not re.search(r"\d{6}", text)
        # The gateway's free text is gone entirely, not masked: only fixed reasons remain.
        rejected = [r.reason for r in results if r.status is REJECTED]
        assert "rejected by the gateway" in rejected
        assert "the gateway refused the message (HTTP 400)" in rejected
        assert not any("[number]" in text or "[redacted]" in text for text in texts)

    def test_batch_reasons_leak_nothing(
        self, gateway: Gateway, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A batch answer echoing numbers and texts has them masked in every result."""

        def echo(seen: Seen) -> Any:
            return [
                {"status": "rejected", "reason": f"{m['to']} {m['text']}"}
                for m in seen.json()["messages"]
            ]

        gateway.script(Reply(200, echo))
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            results = make(gateway, batch=True).send([sms("a"), sms("b", OTHER)])
        assert [r.reason for r in results] == ["rejected by the gateway"] * 2
        for text in [r.reason for r in results] + [r.getMessage() for r in caplog.records]:
            for forbidden in (*self.FORBIDDEN, OTHER[1:]):
                assert forbidden not in text
