"""SMS: how long a text is in message parts, and a transport to an HTTP SMS gateway.

:func:`segments` says how a text is encoded on the air (GSM 03.38's 7-bit
alphabet when every character is in it, else UCS-2) and how many message
parts it takes, so a sender can warn before one curly apostrophe triples the
cost of a message to every parent.

:class:`HttpSmsTransport` posts each message (or one batch) to a gateway's
HTTP endpoint, as JSON or as a form, with the envelope's idempotency key in
an ``Idempotency-Key`` header and in the ``reference`` field, and maps the
gateway's answer to a :class:`~sourcetruth.adapters.transports.outbox.DeliveryResult`.
It never raises for one envelope: a bad number, a refused message or a
gateway that is down each becomes a result.

Phone numbers, message text, names and credentials never appear in a
result's reason, in a log line or in a ``repr``: the gateway's own reason is
kept only when it is a short code (``invalid_number``, ``blacklisted``), never
as free text, and the gateway's URL is shown as ``scheme://host[:port]/...``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sourcetruth.adapters.transports._cleartext import refuse_cleartext
from sourcetruth.exceptions import UsageError
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "HttpSmsTransport",
    "SmsSplit",
    "segments",
]

_log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Segments

#: The GSM 03.38 default alphabet (one septet each), without the escape code.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The GSM 03.38 extension table: each costs two septets (escape + code).
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

_LIMITS: Final = {"gsm-7": (160, 153), "ucs-2": (70, 67)}

Encoding = Literal["gsm-7", "ucs-2"]


@dataclass(frozen=True, slots=True)
class SmsSplit:
    """How a text goes over the air.

    ``encoding`` is ``"gsm-7"`` or ``"ucs-2"``; ``segments`` the number of
    message parts (an empty text is one empty message); ``units`` the septets
    (GSM-7, extension characters counting two) or UTF-16 code units (UCS-2,
    characters outside the BMP counting two) the text uses; ``forced_by``
    the distinct characters, in order of first appearance, that are not in
    the GSM-7 alphabet and so forced UCS-2.
    """

    encoding: Encoding
    segments: int
    units: int
    forced_by: tuple[str, ...] = ()

    @property
    def single_limit(self) -> int:
        """Units that fit in one unsplit message: 160 for GSM-7, 70 for UCS-2."""
        return _LIMITS[self.encoding][0]

    @property
    def part_limit(self) -> int:
        """Units that fit in one part of a concatenated message: 153 or 67."""
        return _LIMITS[self.encoding][1]

    def describe(self) -> str:
        """A line for a report: ``2 segments (UCS-2, 80 units); <chars> forced UCS-2``."""
        plural = "" if self.segments == 1 else "s"
        line = f"{self.segments} segment{plural} ({self.encoding.upper()}, {self.units} units)"
        if self.forced_by:
            line += f"; {' '.join(self.forced_by)} forced UCS-2"
        return line


def _pack(weights: Sequence[int], total: int, single: int, part: int) -> int:
    """Parts needed for characters of the given weights, never splitting one."""
    if total <= single:
        return 1
    parts, used = 1, 0
    for weight in weights:
        if used + weight > part:
            parts += 1
            used = 0
        used += weight
    return parts


def segments(text: str) -> SmsSplit:
    """How many SMS parts *text* takes, and in which encoding.

    GSM-7 when every character is in the GSM 03.38 default alphabet or its
    extension table (``^{}\\[~]|€`` and form feed count two septets), else
    UCS-2 (UTF-16 code units: an emoji counts two). One message holds 160
    septets or 70 UCS-2 units; the parts of a longer one hold 153 or 67, and
    an extension character or a surrogate pair is never split across parts.
    """
    forced = tuple(
        dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION)
    )
    if not forced:
        septets = [2 if c in GSM7_EXTENSION else 1 for c in text]
        total = sum(septets)
        return SmsSplit("gsm-7", _pack(septets, total, 160, 153), total)
    units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    total = sum(units)
    return SmsSplit("ucs-2", _pack(units, total, 70, 67), total, forced)


# --------------------------------------------------------------------------
# Privacy helpers

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SENDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ]{0,10}")
_HEADER_SAFE = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?")
# A reason the gateway gives is kept only when it looks like a code, never free
# text (which may quote the message, a name or the number).
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_MAX_RESPONSE = 1 << 20


def _gateway_code(value: object, secrets: Sequence[str]) -> str:
    """The gateway's reason if it is a short code-like token, else ``""``.

    A code that contains a credential, the number or the text, or a run of six
    digits (a number in disguise), is dropped as well.
    """
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        return ""
    if re.search(r"[0-9]{6}", value):
        return ""
    if any(len(secret) >= 4 and secret in value for secret in secrets):
        return ""
    return value


def _public_url(url: str) -> str:
    """*url* as ``scheme://host[:port]``, then ``/...`` if it has a path.

    Credentials, query string and fragment are dropped, and so is the path: a
    gateway may carry its key there (``/api/KEY/send``).
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    elided = "/..." if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{netloc}{elided}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would turn the POST into a GET, or carry
    the Authorization header to another host. A 3xx comes back as an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# --------------------------------------------------------------------------
# The transport

_FIELDS: Final = ("to", "from", "text", "reference")


@dataclass(frozen=True, slots=True)
class _Planned:
    """An envelope that passed the checks, ready to go to the gateway."""

    index: int
    envelope: Envelope
    split: SmsSplit


class _Unreadable(Exception):
    """The gateway's 2xx answer is not what the protocol promises."""


def _gateway_url(url: str, *, allow_insecure: bool) -> urllib.parse.SplitResult:
    """*url*'s parts, once it is an http(s) URL with a host, no spaces and no credentials.

    Plain http goes to this machine only, unless *allow_insecure*: every
    request carries the token, the password or a key in the URL (``auth="none"``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = "the SMS gateway URL must be an http:// or https:// URL with a host"
        raise UsageError(msg)
    if re.search(r"[\x00-\x20\x7f]", url):
        msg = "the SMS gateway URL must not contain spaces or control characters"
        raise UsageError(msg)
    if "@" in parts.netloc:
        msg = "the SMS gateway URL must not carry credentials: pass username and password"
        raise UsageError(msg)
    if parts.scheme == "http":
        refuse_cleartext(
            parts.hostname or "",
            what="the SMS gateway's credentials, numbers and texts (an http:// URL)",
            fix="use an https:// URL",
            shown_as=f"SMS gateway {_public_url(url)}",
            allow_insecure=allow_insecure,
        )
    return parts


def _authorization(
    auth: str, token: str | None, username: str | None, password: str | None
) -> str | None:
    """The Authorization header that *auth* asks for; None for ``"none"``."""
    if auth == "bearer":
        if not token:
            msg = "bearer authentication needs a token"
            raise UsageError(msg)
        if not re.fullmatch(r"[!-~]+", token):
            msg = "the bearer token has characters a header cannot carry"
            raise UsageError(msg)
        return f"Bearer {token}"
    if auth == "basic":
        if not username or password is None:
            msg = "basic authentication needs a username and a password"
            raise UsageError(msg)
        if ":" in username:
            msg = "a basic authentication username cannot contain ':'"
            raise UsageError(msg)
        pair = f"{username}:{password}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"
    if auth == "none":
        return None
    msg = f"unknown SMS authentication {auth!r}: use bearer, basic or none"
    raise UsageError(msg)


def _field_names(renamed: Mapping[str, str]) -> dict[str, str]:
    """Each of the request's fields and the name the gateway knows it by."""
    names = dict(zip(_FIELDS, _FIELDS, strict=True))
    for field, name in renamed.items():
        if field not in names:
            msg = f"unknown SMS field {field!r}: the fields are {', '.join(_FIELDS)}"
            raise UsageError(msg)
        if not name:
            msg = f"the SMS field {field!r} needs a non-empty name"
            raise UsageError(msg)
        names[field] = name
    if len(set(names.values())) != len(names):
        msg = "two SMS fields renamed to the same name"
        raise UsageError(msg)
    return names


class HttpSmsTransport:
    """Sends SMS through an HTTP gateway: one POST per envelope, or one per batch.

    Each request carries the envelope's key as an ``Idempotency-Key`` header
    and as the ``reference`` field; *field_names* renames the fields ``to``,
    ``from``, ``text`` and ``reference`` for a particular gateway. *format*
    posts them as a JSON object or as a form; *auth* adds a bearer token, a
    basic username and password, or nothing (for a gateway whose key is in
    the URL's query string or path). ``repr`` and logs show the URL only as
    ``scheme://host[:port]/...``: no credentials, path, query or fragment.

    With *batch*, all the envelopes of a call go in one POST of JSON
    ``{"messages": [...]}``; the gateway answers with a list of per-message
    results (bare, or under ``"messages"`` or ``"results"``), matched by
    ``reference`` when each has one, else by position. The batch's
    ``Idempotency-Key`` is derived from its envelopes' keys, so a retry of
    the same batch carries the same one. A 400 or 422 for the whole batch
    fails every message of it, not retryably, rather than rejecting them: the
    gateway may have refused the batch for one bad message, and the others
    should not be lost for good.

    The gateway answers each message with ``{"id": ..., "status":
    "accepted" | "rejected", "reason": ...}``; a 400 or 422 to a single
    message rejects it. The reason is kept only when it is a short code
    (a letter, then up to 39 letters, digits, ``_``, ``.`` or ``-``), else
    the result says only that the gateway rejected the message (and the HTTP
    status). Numbers must be E.164 (``+``
    then 8 to 15 digits, the first not 0); a message of more than
    *max_segments* parts is rejected before the gateway is asked. Redirects
    are not followed; *timeout* applies to each network operation.

    A plain ``http://`` URL is refused (a :class:`UsageError`, before anything
    is sent) unless its host is this machine (``localhost``, ``127.0.0.0/8``,
    ``::1``) or *allow_insecure* is true: every request carries the gateway's
    credentials (a token, a password, or a key in the URL), the numbers and
    the texts. SMTP's ``security="plain"`` with a password is refused the
    same way, under the same option.
    """

    def __init__(
        self,
        url: str,
        *,
        sender: str,
        format: Literal["json", "form"] = "json",
        auth: Literal["bearer", "basic", "none"] = "bearer",
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_segments: int = 3,
        field_names: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        batch: bool = False,
        allow_insecure: bool = False,
    ) -> None:
        parts = _gateway_url(url, allow_insecure=allow_insecure)
        if not (_SENDER.fullmatch(sender) or _E164.fullmatch(sender)):
            msg = "the SMS sender must be an E.164 number or 1 to 11 letters, digits and spaces"
            raise UsageError(msg)
        if format not in ("json", "form"):
            msg = f"unknown SMS request format {format!r}: use 'json' or 'form'"
            raise UsageError(msg)
        if batch and format != "json":
            msg = "a batch of SMS is posted as JSON: format='form' cannot batch"
            raise UsageError(msg)
        self._authorization = _authorization(auth, token, username, password)
        if not timeout > 0:
            msg = "the SMS gateway timeout must be more than 0 seconds"
            raise UsageError(msg)
        if max_segments < 1:
            msg = "max_segments must be at least 1"
            raise UsageError(msg)
        self._names = _field_names(field_names or {})
        self._url = url
        self._public_url = _public_url(url)
        self._sender = sender
        self._format = format
        self._auth = auth
        # What a gateway's reason must never carry back into a result or a log.
        query = [value for _, value in urllib.parse.parse_qsl(parts.query)]
        path = [segment for segment in parts.path.split("/") if len(segment) >= 4]
        secrets = (token, password, self._authorization, *query, *path)
        self._secrets = tuple(s for s in secrets if s)
        self._timeout = timeout
        self._max_segments = max_segments
        self._batch = batch
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return (
            f"HttpSmsTransport({self._public_url!r}, sender={self._sender!r}, "
            f"format={self._format!r}, auth={self._auth!r}, batch={self._batch})"
        )

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    @property
    def max_segments(self) -> int:
        return self._max_segments

    # -- sending ------------------------------------------------------------

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        """One result per envelope, in order; never raises for one envelope."""
        results: list[DeliveryResult | None] = [None] * len(batch)
        planned: list[_Planned] = []
        for index, envelope in enumerate(batch):
            problem = self._check(envelope)
            if isinstance(problem, DeliveryResult):
                results[index] = problem
            else:
                planned.append(_Planned(index, envelope, problem))
        if planned:
            if self._batch:
                for item, result in zip(planned, self._send_batch(planned), strict=True):
                    results[item.index] = result
            else:
                for item in planned:
                    results[item.index] = self._send_one(item)
        done = [result for result in results if result is not None]
        assert len(done) == len(batch)
        if not done:
            return done
        counts = dict.fromkeys(DeliveryStatus, 0)
        for result in done:
            counts[result.status] += 1
        _log.info(
            "SMS gateway %s: %d accepted, %d rejected, %d failed",
            self._public_url,
            counts[DeliveryStatus.ACCEPTED],
            counts[DeliveryStatus.REJECTED],
            counts[DeliveryStatus.FAILED],
        )
        return done

    def _check(self, envelope: Envelope) -> DeliveryResult | SmsSplit:
        """The envelope's split if it may go to the gateway, else why not."""
        key = envelope.key
        if envelope.channel is not Channel.SMS:
            return DeliveryResult.rejected(key, "wrong channel")
        if not _HEADER_SAFE.fullmatch(key):
            return DeliveryResult.rejected(key, "key not usable as an Idempotency-Key header")
        if not _E164.fullmatch(envelope.address):
            return DeliveryResult.rejected(key, "not an E.164 number")
        try:
            envelope.body.encode("utf-8")
        except UnicodeEncodeError:
            return DeliveryResult.rejected(key, "text is not valid Unicode")
        split = segments(envelope.body)
        if split.segments > self._max_segments:
            return DeliveryResult.rejected(
                key,
                f"text needs {split.segments} segments ({split.encoding.upper()}), "
                f"more than the limit of {self._max_segments}",
            )
        return split

    def _fields(self, envelope: Envelope) -> dict[str, str]:
        values = (envelope.address, self._sender, envelope.body, envelope.key)
        return {self._names[field]: value for field, value in zip(_FIELDS, values, strict=True)}

    def _send_one(self, item: _Planned) -> DeliveryResult:
        envelope = item.envelope
        fields = self._fields(envelope)
        if self._format == "json":
            data = json.dumps(fields).encode("utf-8")
            content_type = "application/json"
        else:
            data = urllib.parse.urlencode(fields).encode("ascii")
            content_type = "application/x-www-form-urlencoded; charset=utf-8"
        secrets = self._secrets_of([item])
        outcome = self._post(data, content_type, envelope.key, 1, secrets, batch=False)
        if isinstance(outcome, _Failure):
            return outcome.result(envelope.key)
        return self._entry(item, outcome.value, secrets)

    def _send_batch(self, planned: Sequence[_Planned]) -> list[DeliveryResult]:
        keys = [item.envelope.key for item in planned]
        data = json.dumps({"messages": [self._fields(item.envelope) for item in planned]})
        digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()
        secrets = self._secrets_of(planned)
        outcome = self._post(
            data.encode("utf-8"),
            "application/json",
            f"batch-{digest[:40]}",
            len(planned),
            secrets,
            batch=True,
        )
        if isinstance(outcome, _Failure):
            return [outcome.result(key) for key in keys]
        try:
            entries = self._batch_entries(outcome.value, keys)
        except _Unreadable:
            _log.warning("SMS gateway %s: %s", self._public_url, _UNREADABLE)
            return [DeliveryResult.failed(key, _UNREADABLE, retryable=True) for key in keys]
        return [
            self._entry(item, entry, secrets) for item, entry in zip(planned, entries, strict=True)
        ]

    def _batch_entries(self, value: object, keys: Sequence[str]) -> list[object]:
        """The gateway's per-message answers, one per key, by reference or by position."""
        if isinstance(value, dict):
            value = value.get("messages", value.get("results"))
        if not isinstance(value, list):
            raise _Unreadable
        by_reference: dict[str, object] = {}
        for entry in value:
            reference = None
            if isinstance(entry, dict):
                reference = entry.get(self._names["reference"], entry.get("reference"))
            if not isinstance(reference, str):
                break
            by_reference[reference] = entry
        else:
            # Every answer names its message: match by that, whatever the order.
            if not set(keys) <= by_reference.keys():
                raise _Unreadable
            return [by_reference[key] for key in keys]
        if len(value) != len(keys):
            raise _Unreadable
        return list(value)

    def _secrets_of(self, planned: Sequence[_Planned]) -> tuple[str, ...]:
        """What must never be echoed into a result: credentials, numbers, texts."""
        found = list(self._secrets)
        for item in planned:
            found += [item.envelope.address, item.envelope.address[1:], item.envelope.body]
        return tuple(found)

    def _entry(self, item: _Planned, entry: object, secrets: Sequence[str]) -> DeliveryResult:
        """One message's result from the gateway's answer ``{"id", "status", "reason"}``."""
        key = item.envelope.key
        status = entry.get("status") if isinstance(entry, dict) else None
        status = status.lower() if isinstance(status, str) else None
        if status == "accepted":
            assert isinstance(entry, dict)
            ident = entry.get("id")
            if ident is None or (isinstance(ident, str | int) and not isinstance(ident, bool)):
                reference = "" if ident is None else str(ident)
                return DeliveryResult.accepted(
                    key, reference=reference, segments=item.split.segments
                )
        elif status == "rejected":
            assert isinstance(entry, dict)
            code = _gateway_code(entry.get("reason"), secrets)
            reason = f"rejected by the gateway: {code}" if code else "rejected by the gateway"
            return DeliveryResult.rejected(key, reason)
        _log.warning("SMS gateway %s: %s", self._public_url, _UNREADABLE)
        return DeliveryResult.failed(key, _UNREADABLE, retryable=True)

    def _post(
        self,
        data: bytes,
        content_type: str,
        idempotency_key: str,
        count: int,
        secrets: Sequence[str],
        *,
        batch: bool,
    ) -> _Body | _Failure:
        """POST *data*; the 2xx answer's JSON, or what went wrong for the whole request."""
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": "sourcetruth-sms",
        }
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
        _log.debug("SMS gateway %s: posting %d message(s)", self._public_url, count)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body = response.read(_MAX_RESPONSE + 1)
        except urllib.error.HTTPError as error:
            with error:
                failure = _http_failure(error.code, _read_quietly(error), secrets, batch=batch)
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                failure = _Failure(DeliveryStatus.FAILED, "gateway timed out", retryable=True)
            elif isinstance(error.reason, ssl.SSLCertVerificationError):
                failure = _Failure(
                    DeliveryStatus.FAILED, "gateway's TLS certificate not trusted", retryable=False
                )
            else:
                failure = _Failure(DeliveryStatus.FAILED, "gateway unreachable", retryable=True)
        except TimeoutError:
            failure = _Failure(DeliveryStatus.FAILED, "gateway timed out", retryable=True)
        except (OSError, http.client.HTTPException):
            failure = _Failure(
                DeliveryStatus.FAILED, "connection to the gateway failed", retryable=True
            )
        else:
            try:
                if len(body) > _MAX_RESPONSE:
                    msg = "too long"
                    raise ValueError(msg)
                return _Body(json.loads(body))
            except (ValueError, RecursionError):
                failure = _Failure(DeliveryStatus.FAILED, _UNREADABLE, retryable=True)
        _log.warning("SMS gateway %s: %s", self._public_url, failure.reason)
        return failure


_UNREADABLE: Final = "unreadable gateway response"


@dataclass(frozen=True, slots=True)
class _Body:
    """A 2xx answer's JSON."""

    value: object


@dataclass(frozen=True, slots=True)
class _Failure:
    """What happened to a whole request: every message in it gets this result."""

    status: DeliveryStatus
    reason: str
    retryable: bool = False

    def result(self, key: str) -> DeliveryResult:
        if self.status is DeliveryStatus.REJECTED:
            return DeliveryResult.rejected(key, self.reason)
        return DeliveryResult.failed(key, self.reason, retryable=self.retryable)


def _read_quietly(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read(_MAX_RESPONSE)
    except (OSError, http.client.HTTPException):
        return b""


def _http_failure(code: int, body: bytes, secrets: Sequence[str], *, batch: bool) -> _Failure:
    """What a non-2xx status means for every message of the request.

    A 400 or 422 rejects a single message; to a batch it fails every message,
    not retryably: the batch as a whole was refused, not each of its messages.
    """
    if code in (400, 422):
        reason = ""
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):
            answer = None
        if isinstance(answer, dict):
            reason = _gateway_code(answer.get("reason"), secrets)
        what = "batch" if batch else "message"
        prefix = f"the gateway refused the {what} (HTTP {code})"
        text = f"{prefix}: {reason}" if reason else prefix
        if batch:
            return _Failure(DeliveryStatus.FAILED, text, retryable=False)
        return _Failure(DeliveryStatus.REJECTED, text)
    if code in (401, 403):
        return _Failure(DeliveryStatus.FAILED, f"authentication failed (HTTP {code})")
    if code == 408:
        return _Failure(DeliveryStatus.FAILED, "gateway timed out (HTTP 408)", retryable=True)
    if code == 429:
        return _Failure(DeliveryStatus.FAILED, "gateway rate limit (HTTP 429)", retryable=True)
    if 500 <= code <= 599:
        return _Failure(DeliveryStatus.FAILED, f"gateway error (HTTP {code})", retryable=True)
    return _Failure(DeliveryStatus.FAILED, f"unexpected gateway response (HTTP {code})")
