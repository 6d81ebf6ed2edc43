"""Email over SMTP: a :class:`~sourcetruth.protocols.Transport` for email.

:class:`SmtpTransport` opens one SMTP session per :meth:`~SmtpTransport.send`
call (plain, STARTTLS or implicit TLS, with optional authentication) and hands
each envelope over as a standard MIME message: ``From``, ``To``, ``Subject``,
``Date``, ``Message-ID`` and ``MIME-Version`` headers, non-ASCII names and
subjects encoded per RFC 2047, a UTF-8 plain-text body and, when the envelope
has HTML, a ``multipart/alternative`` with the HTML part after the text.

Two ways of sending:

- *per message* (the default): one message per envelope, each with its own
  ``To`` and ``Message-ID``.
- *per batch*: envelopes sharing subject and bodies go out as one message,
  the recipients only in the SMTP envelope (``RCPT TO``) and a ``Bcc`` header
  that is never transmitted; ``To`` is the sender. No parent sees another's
  address.

The ``Message-ID`` is made from the envelope's idempotency key and the sender's
domain (``<KEY@domain>``), so a retry of the same delivery carries the same
``Message-ID`` and a server or client that de-duplicates on it shows it once.
A key that is not valid in a Message-ID is replaced by its SHA-256 hash, still
the same on every retry. A per-batch message of several envelopes takes an id
made from all their keys.

Every envelope gets a result, in order; one bad address never raises. What the
server said is reduced to its reply code (and enhanced status code, when it
gives one): its text may quote the address, so it is never kept. Addresses and
credentials never appear in results, log lines or the ``repr``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Literal

from attrs import frozen

from sourcetruth.adapters.transports._cleartext import refuse_cleartext
from sourcetruth.exceptions import UsageError
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel

__all__ = ["SmtpTransport"]

_log = logging.getLogger("sourcetruth.adapters.transports.smtp")

Security = Literal["plain", "starttls", "tls"]

_DEFAULT_PORTS: dict[str, int] = {"plain": 25, "starttls": 587, "tls": 465}

# Never 8bit bodies: the heuristics pick 7bit, quoted-printable or base64, so
# any server takes the message whether or not it offers 8BITMIME.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")

# RFC 5322 dot-atom-text: what may stand left of the "@" in a Message-ID as is.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ENHANCED_STATUS = re.compile(rb"\s*([245]\.\d{1,3}\.\d{1,3})\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class _SessionFailure(Exception):
    """The session could not be opened: every envelope fails with *reason*."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@frozen
class _Outgoing:
    """One message to hand over: its envelopes (by index), their recipients, its id."""

    indexes: tuple[int, ...]
    recipients: tuple[str, ...]
    message: EmailMessage
    message_id: str


def _check_credentials(
    host: str,
    security: Security,
    username: str | None,
    password: str | None,
    *,
    allow_insecure: bool,
) -> None:
    """A :class:`UsageError` for credentials that cannot be used, or not safely without consent."""
    if (username is None) != (password is None):
        msg = "username and password go together: give both or neither"
        raise UsageError(msg)
    if security == "plain" and username is not None:
        refuse_cleartext(
            host,
            what="the password (security='plain')",
            fix="use security='starttls' or 'tls'",
            shown_as=f"smtp {host}",
            allow_insecure=allow_insecure,
        )
    if not ((username or "").isascii() and (password or "").isascii()):
        # smtplib sends credentials as ASCII only.
        msg = "username and password must be ASCII"
        raise UsageError(msg)


class SmtpTransport:
    """Delivers email envelopes over SMTP, one session per :meth:`send`.

    *security* is ``"plain"`` (no encryption), ``"starttls"`` (upgrade after
    connecting, the default) or ``"tls"`` (implicit TLS); *port* defaults to 25,
    587 or 465 to match. With *username*, the session authenticates (after the
    upgrade, for STARTTLS). *ssl_context* defaults to
    :func:`ssl.create_default_context`, which checks the server's certificate
    and host name. *sender* is the ``From`` address and the SMTP envelope
    sender, *sender_name* its display name. *per_message* chooses one message
    per envelope (the default) or one per batch of envelopes with the same
    content (see the module's documentation); *max_recipients* caps the
    recipients of one per-batch message (RFC 5321 servers take at least 100).
    *clock* gives the ``Date`` of the messages (timezone-aware).

    With ``security="plain"`` a password would cross the network in clear, so
    *username* and *password* are refused (a :class:`UsageError`) unless *host*
    is a loopback address (``localhost``, ``127.0.0.0/8`` or ``::1``: a relay on
    the same machine) or the caller passes ``allow_insecure=True`` to accept
    the risk knowingly (the SMS transport's option for the same thing;
    ``allow_plain_auth=True``, its earlier name, still works).
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        sender: str,
        sender_name: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        per_message: bool = True,
        local_hostname: str | None = None,
        max_recipients: int = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        allow_insecure: bool = False,
        allow_plain_auth: bool = False,
    ) -> None:
        if security not in _DEFAULT_PORTS:
            msg = f"security must be one of {', '.join(_DEFAULT_PORTS)}, not {security!r}"
            raise UsageError(msg)
        insecure = allow_insecure is True or allow_plain_auth is True
        _check_credentials(host, security, username, password, allow_insecure=insecure)
        if local_hostname is not None and not local_hostname.isascii():
            msg = "local_hostname must be ASCII"
            raise UsageError(msg)
        if max_recipients < 1:
            msg = "max_recipients must be at least 1"
            raise UsageError(msg)
        if timeout <= 0:
            msg = "timeout must be positive"
            raise UsageError(msg)
        checked = _ascii_address(sender)
        if checked is None:
            msg = "sender is not a usable email address"
            raise UsageError(msg)
        self._host = host
        self._port = _DEFAULT_PORTS[security] if port is None else port
        self._security: Security = security
        self._username = username
        self._password = password
        self._sender = checked
        self._sender_name = _one_line(sender_name)
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._per_message = per_message
        self._local_hostname = local_hostname
        self._max_recipients = max_recipients
        self._clock = clock
        self._domain = checked.rpartition("@")[2]

    def __repr__(self) -> str:
        return (
            f"SmtpTransport(host={self._host!r}, port={self._port}, "
            f"security={self._security!r}, sender={self._sender!r})"
        )

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        """Hand *batch* to the server in one session; one result per envelope, in order."""
        results: list[DeliveryResult | None] = [None] * len(batch)
        addresses: dict[int, str] = {}
        for i, envelope in enumerate(batch):
            if envelope.channel is not Channel.EMAIL:
                results[i] = DeliveryResult.rejected(envelope.key, "wrong channel")
                continue
            address = _ascii_address(envelope.address)
            if address is None:
                reason = (
                    "address needs SMTPUTF8, which this transport does not use"
                    if _non_ascii_local_part(envelope.address)
                    else "invalid address"
                )
                results[i] = DeliveryResult.rejected(envelope.key, reason)
                continue
            addresses[i] = address
        if addresses:
            date = self._date()
            outgoing = self._compose(batch, addresses, date, results)
            if outgoing:
                self._deliver(batch, outgoing, results)
        final = [
            result
            if result is not None
            else DeliveryResult.failed(batch[i].key, "not sent", retryable=True)
            for i, result in enumerate(results)
        ]
        _log.info(
            "smtp %s:%d: %d envelopes, %d accepted, %d rejected, %d failed",
            self._host,
            self._port,
            len(final),
            sum(r.status is DeliveryStatus.ACCEPTED for r in final),
            sum(r.status is DeliveryStatus.REJECTED for r in final),
            sum(r.status is DeliveryStatus.FAILED for r in final),
        )
        return final

    # Composing

    def _date(self) -> str:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            msg = "the clock of an SmtpTransport must give timezone-aware times"
            raise UsageError(msg)
        return format_datetime(now)

    def _compose(
        self,
        batch: Sequence[Envelope],
        addresses: dict[int, str],
        date: str,
        results: list[DeliveryResult | None],
    ) -> list[_Outgoing]:
        groups: list[list[int]] = []
        if self._per_message:
            groups = [[i] for i in addresses]
        else:
            for i in addresses:
                content = _content(batch[i])
                lowered = addresses[i].lower()
                for group in groups:
                    if (
                        _content(batch[group[0]]) == content
                        and len(group) < self._max_recipients
                        and all(addresses[j].lower() != lowered for j in group)
                    ):
                        group.append(i)
                        break
                else:
                    groups.append([i])
        outgoing = []
        for group in groups:
            first = batch[group[0]]
            try:
                if self._per_message:
                    to = Address(display_name=_one_line(first.name), addr_spec=addresses[group[0]])
                    bcc: list[str] = []
                else:
                    to = self._from()
                    bcc = [addresses[i] for i in group]
                item = self._message(
                    first,
                    tuple(group),
                    tuple(addresses[i] for i in group),
                    _message_id_left([batch[i].key for i in group]),
                    date,
                    to=to,
                    bcc=bcc,
                )
            except (ValueError, TypeError, HeaderParseError):
                # Text that cannot be encoded (a lone surrogate, say): this
                # message is refused, the others still go.
                _log.warning("smtp: a message could not be encoded")
                for i in group:
                    results[i] = DeliveryResult.rejected(batch[i].key, "message cannot be encoded")
                continue
            outgoing.append(item)
        return outgoing

    def _from(self) -> Address:
        return Address(display_name=self._sender_name, addr_spec=self._sender)

    def _message(
        self,
        envelope: Envelope,
        indexes: tuple[int, ...],
        recipients: tuple[str, ...],
        id_left: str,
        date: str,
        *,
        to: Address,
        bcc: Sequence[str] = (),
    ) -> _Outgoing:
        message_id = f"<{id_left}@{self._domain}>"
        message = EmailMessage(policy=_POLICY)
        message["From"] = self._from()
        message["To"] = to
        if bcc:
            # smtplib's send_message never transmits Bcc: the recipients stay
            # in the SMTP envelope only.
            message["Bcc"] = ", ".join(bcc)
        message["Subject"] = _one_line(envelope.subject)
        message["Date"] = date
        message["Message-ID"] = message_id
        message.set_content(envelope.body)
        if envelope.html is not None:
            message.add_alternative(envelope.html, subtype="html")
            for part in message.iter_parts():
                del part["MIME-Version"]
        message.as_bytes()  # any text that cannot be encoded fails here, not mid-session
        return _Outgoing(indexes, recipients, message, message_id)

    # Delivering

    def _deliver(
        self,
        batch: Sequence[Envelope],
        outgoing: list[_Outgoing],
        results: list[DeliveryResult | None],
    ) -> None:
        try:
            smtp = self._open()
        except _SessionFailure as failure:
            for item in outgoing:
                for i in item.indexes:
                    results[i] = DeliveryResult.failed(
                        batch[i].key, failure.reason, retryable=failure.retryable
                    )
            return
        try:
            for item in outgoing:
                if smtp.sock is None:
                    for i in item.indexes:
                        results[i] = DeliveryResult.failed(
                            batch[i].key, "connection lost", retryable=True
                        )
                    continue
                self._hand_over(smtp, batch, item, results)
        finally:
            _close(smtp)

    def _open(self) -> smtplib.SMTP:
        context = self._ssl_context
        if context is None and self._security != "plain":
            context = ssl.create_default_context()
        smtp: smtplib.SMTP
        try:
            if self._security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    self._host,
                    self._port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                )
        except (smtplib.SMTPException, OSError) as error:
            raise _connection_failure(error) from None
        try:
            smtp.ehlo_or_helo_if_needed()
            if self._security == "starttls":
                if not smtp.has_extn("starttls"):
                    _log.warning("smtp %s:%d does not offer STARTTLS", self._host, self._port)
                    msg = "server does not offer STARTTLS"
                    raise _SessionFailure(msg, retryable=False)
                smtp.starttls(context=context)
                smtp.ehlo()
            if self._username is not None:
                if not smtp.has_extn("auth"):
                    _log.warning("smtp %s:%d does not offer AUTH", self._host, self._port)
                    msg = "server does not offer authentication"
                    raise _SessionFailure(msg, retryable=False)
                smtp.login(self._username, self._password or "")
        except _SessionFailure:
            _close(smtp)
            raise
        except smtplib.SMTPAuthenticationError as error:
            _close(smtp)
            temporary = 400 <= error.smtp_code < 500
            _log.warning(
                "smtp %s:%d: authentication failed (%d)", self._host, self._port, error.smtp_code
            )
            reason = "authentication failed" + (f" ({error.smtp_code})" if temporary else "")
            raise _SessionFailure(reason, retryable=temporary) from None
        except (smtplib.SMTPException, OSError) as error:
            _close(smtp)
            if isinstance(error, smtplib.SMTPException) and "authentication method" in str(error):
                _log.warning("smtp %s:%d: no common AUTH mechanism", self._host, self._port)
                msg = "no authentication mechanism in common with the server"
                raise _SessionFailure(msg, retryable=False) from None
            raise _connection_failure(error) from None
        return smtp

    def _hand_over(
        self,
        smtp: smtplib.SMTP,
        batch: Sequence[Envelope],
        item: _Outgoing,
        results: list[DeliveryResult | None],
    ) -> None:
        by_address = dict(zip(item.recipients, item.indexes, strict=True))

        def fail_rest(reason: str, *, retryable: bool) -> None:
            for i in item.indexes:
                if results[i] is None:
                    results[i] = DeliveryResult.failed(batch[i].key, reason, retryable=retryable)

        refused: dict[str, tuple[int, bytes]]
        try:
            refused = smtp.send_message(
                item.message, from_addr=self._sender, to_addrs=list(item.recipients)
            )
        except smtplib.SMTPRecipientsRefused as error:
            self._refused(batch, by_address, error.recipients, results)
            # A 421 on RCPT closes the session before every recipient was tried.
            fail_rest("connection lost", retryable=True)
            return
        except smtplib.SMTPSenderRefused as error:
            _log.warning("smtp %s:%d refused the sender (%d)", *self._where(), error.smtp_code)
            code = _code(error.smtp_code, error.smtp_error)
            fail_rest(f"sender refused: {code}", retryable=_temporary(error.smtp_code))
            return
        except smtplib.SMTPDataError as error:
            _log.warning("smtp %s:%d refused a message (%d)", *self._where(), error.smtp_code)
            code = _code(error.smtp_code, error.smtp_error)
            if _temporary(error.smtp_code):
                fail_rest(f"message refused: {code}", retryable=True)
            else:
                for i in item.indexes:
                    results[i] = DeliveryResult.rejected(batch[i].key, f"message refused: {code}")
            return
        except (smtplib.SMTPException, OSError) as error:
            # Disconnected, timed out, or an answer smtplib could not read: the
            # message may or may not have arrived; a retry carries the same id.
            _log.warning("smtp %s:%d: sending failed (%s)", *self._where(), type(error).__name__)
            _close(smtp)
            fail_rest("connection lost", retryable=True)
            return
        self._refused(batch, by_address, refused, results)
        for i in item.indexes:
            if results[i] is None:
                results[i] = DeliveryResult.accepted(batch[i].key, reference=item.message_id)
                _log.debug("smtp: %s accepted", batch[i].key)

    def _refused(
        self,
        batch: Sequence[Envelope],
        by_address: dict[str, int],
        refused: dict[str, tuple[int, bytes]],
        results: list[DeliveryResult | None],
    ) -> None:
        for address, (smtp_code, text) in refused.items():
            i = by_address.get(address)
            if i is None:
                continue
            code = _code(smtp_code, text)
            _log.info("smtp: recipient of %s refused (%s)", batch[i].key, code)
            if _temporary(smtp_code):
                results[i] = DeliveryResult.failed(
                    batch[i].key, f"recipient refused: {code}", retryable=True
                )
            else:
                results[i] = DeliveryResult.rejected(batch[i].key, f"recipient refused: {code}")

    def _where(self) -> tuple[str, int]:
        return self._host, self._port


# Helpers


def _connection_failure(error: BaseException) -> _SessionFailure:
    if isinstance(error, ssl.SSLCertVerificationError):
        _log.warning("smtp: the server's TLS certificate is not trusted")
        return _SessionFailure("server certificate not trusted", retryable=False)
    if isinstance(error, smtplib.SMTPResponseException):
        # A greeting or HELO refused (e.g. 421 or 554 at connect).
        _log.warning("smtp: the server refused the session (%d)", error.smtp_code)
        code = _code(error.smtp_code, error.smtp_error)
        return _SessionFailure(f"session refused: {code}", retryable=error.smtp_code < 500)
    if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
        # smtplib reports a read that timed out as SMTPServerDisconnected.
        _log.warning("smtp: connection timed out")
        return _SessionFailure("connection timed out", retryable=True)
    _log.warning("smtp: connection failed (%s)", type(error).__name__)
    return _SessionFailure(f"connection failed ({type(error).__name__})", retryable=True)


def _close(smtp: smtplib.SMTP) -> None:
    """End the session politely if it is still open; never raise."""
    try:
        if smtp.sock is not None:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _temporary(smtp_code: int) -> bool:
    """A 4xx reply, or anything that is not a clear 5xx refusal."""
    return not 500 <= smtp_code < 600


def _code(smtp_code: int, text: bytes | str) -> str:
    """The reply code and, if the server gave one, its enhanced status code; never the text."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    found = _ENHANCED_STATUS.match(raw)
    return f"{smtp_code} {found.group(1).decode('ascii')}" if found else str(smtp_code)


def _one_line(text: str) -> str:
    """*text* with line breaks and control characters turned into single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _content(envelope: Envelope) -> tuple[str, str, str | None]:
    return (_one_line(envelope.subject), envelope.body, envelope.html)


def _message_id_left(keys: Sequence[str]) -> str:
    if len(keys) == 1 and _DOT_ATOM.fullmatch(keys[0]) and len(keys[0]) <= 200:
        return keys[0]
    digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:32]
    return digest if len(keys) == 1 else f"batch.{digest}"


def _non_ascii_local_part(address: str) -> bool:
    return "@" in address and not address.rpartition("@")[0].isascii()


def _ascii_address(address: str) -> str | None:
    """*address* as plain ASCII (an internationalised domain in IDNA), or None if unusable."""
    if not address or address != address.strip() or _CONTROL.search(address):
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or not local.isascii():
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    candidate = f"{local}@{ascii_domain}"
    try:
        parsed = Address(addr_spec=candidate)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return None
    if not parsed.username or not parsed.domain or len(candidate) > 254:
        return None
    return candidate
