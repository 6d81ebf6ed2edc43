"""The OneRoster REST binding's HTTP side: a bearer token, pages of a collection, retries.

Package-private: :mod:`.oneroster_rest` uses it; nothing else does.

- **Token**: OAuth 2.0 client credentials (RFC 6749 section 4.4) at the
  token URL, the client authenticated with HTTP Basic (the 1EdTech security
  framework's way, and RFC 6749's preferred one) or, for servers that want
  it, in the form body. The token is kept until shortly before it expires;
  a 401 on a page gets one new token and the page again, and a second 401 is
  an :class:`~sourcetruth.AdapterError` that is not retryable.
- **Retries**: a 429, a 5xx, a timeout or a connection cut is tried again
  up to ``max_retries`` times, waiting what ``Retry-After`` says (seconds or
  an HTTP date) or else an exponential backoff; then a retryable
  :class:`~sourcetruth.AdapterError`. A ``Retry-After`` longer than
  ``max_wait`` fails at once rather than sleeping through a night's sync.
- **Never followed**: a redirect (it would carry the bearer token to
  another host) comes back as a non-retryable error.
- **Nothing secret is said**: errors name the server as
  ``scheme://host[:port]``, the collection and the page, never the secret,
  the token, a query string, or anything a page held.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import Message
from typing import Any, Final

from attrs import frozen

from sourcetruth.adapters._util import is_loopback
from sourcetruth.exceptions import AdapterError, EncodingError, SourceDataError, UsageError

__all__ = ["MAX_PAGE_BYTES", "Page", "RestClient", "check_url", "public_url"]

#: No page of a real roster comes near this; it stops a runaway answer before it fills memory.
MAX_PAGE_BYTES: Final = 64 * 1024 * 1024
_CHUNK: Final = 1 << 20

#: The answers that say "try again later".
_RETRYABLE: Final = frozenset({408, 425, 429, 500, 502, 503, 504})

#: A token is renewed this long before the server says it expires.
_TOKEN_MARGIN: Final = 30.0

# An OAuth error code (RFC 6749 5.2): safe to repeat; free text from a server is not.
_ERROR_CODE: Final = re.compile(r"[a-z_]{1,40}")
_NEXT: Final = re.compile(r"""<[^>]*>\s*;(?:[^,]*?;)?\s*rel\s*=\s*"?([^",;]*)""", re.IGNORECASE)


def public_url(url: str) -> str:
    """*url* as ``scheme://host[:port]``: no credentials, path or query (a key may be there)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def check_url(url: str, *, what: str, allow_insecure: bool) -> urllib.parse.SplitResult:
    """*url*'s parts, once it is an http(s) URL with a host that carries no credentials.

    Plain http is refused unless the server is on this machine or
    *allow_insecure* accepts the risk: the secret and the token cross on every request.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{what} must be an http:// or https:// URL with a host"
        raise UsageError(msg)
    if re.search(r"[\x00-\x20\x7f]", url):
        msg = f"{what} must not contain spaces or control characters"
        raise UsageError(msg)
    if "@" in parts.netloc:
        msg = f"{what} must not carry credentials: give client_id and the secret's variable"
        raise UsageError(msg)
    if parts.query or parts.fragment:
        msg = f"{what} must not carry a query or a fragment"
        raise UsageError(msg)
    if parts.scheme == "http" and not is_loopback(parts.hostname) and allow_insecure is not True:
        msg = (
            f"{what} is http://: the client secret and the roster would cross the network "
            "unencrypted. Use an https:// URL, or pass allow_insecure=True to accept that risk"
        )
        raise UsageError(msg)
    return parts


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx comes back as an error: following it would carry the token elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@frozen
class Page:
    """One page of a collection: its records and what its headers say of the rest.

    ``total`` is ``X-Total-Count`` (None without one); ``more`` whether a
    ``Link`` header has ``rel="next"`` (None without a ``Link`` header);
    ``served_at`` the ``Date`` header (None without one).
    """

    records: tuple[Any, ...]
    total: int | None
    more: bool | None
    served_at: datetime | None


class RestClient:
    """Gets pages of OneRoster collections from one server, with a token of its own."""

    def __init__(
        self,
        *,
        base: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        client_auth: str,
        timeout: float,
        max_retries: int,
        backoff: float,
        max_wait: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._base = base.rstrip("/")
        self._token_url = token_url
        self._server = public_url(base)
        self._token_server = public_url(token_url)
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._client_auth = client_auth
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"RestClient({self._server!r})"

    # -- the token

    def _token_request(self) -> urllib.request.Request:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self._client_auth == "basic":
            # RFC 6749 2.3.1: each part form-encoded, then Basic.
            pair = (
                f"{urllib.parse.quote_plus(self._client_id)}:"
                f"{urllib.parse.quote_plus(self._client_secret)}"
            )
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = self._client_id
            form["client_secret"] = self._client_secret
        body = urllib.parse.urlencode(form).encode("ascii")
        return urllib.request.Request(self._token_url, data=body, headers=headers, method="POST")

    def token(self) -> str:
        """A bearer token: the one held while it lasts, else a new one."""
        if self._token is not None and self._clock() < self._token_until:
            return self._token
        self._token = None
        where = f"the token endpoint {self._token_server}"
        status, _, body = self._send(self._token_request, where=where, authorised=False)
        if status != 200:
            raise AdapterError(self._refused(where, status, body), retryable=False)
        try:
            answer = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        kind = answer.get("token_type", "bearer") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token or str(kind).casefold() != "bearer":
            msg = f"{where} did not answer with a bearer access_token"
            raise AdapterError(msg, retryable=False)
        lasts = answer.get("expires_in") if isinstance(answer, dict) else None
        seconds = float(lasts) if isinstance(lasts, int | float) and lasts > 0 else 3600.0
        self._token = token
        self._token_until = self._clock() + max(seconds - _TOKEN_MARGIN, seconds / 2)
        return token

    @staticmethod
    def _refused(where: str, status: int, body: bytes) -> str:
        code = ""
        try:
            answer = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, str) and _ERROR_CODE.fullmatch(error):
            code = f" ({error})"
        return (
            f"{where} refused the client credentials with status {status}{code}: "
            "check client_id, the secret's variable and the scope"
        )

    # -- pages

    def page(self, path: str, params: Mapping[str, str], *, collection: str, number: int) -> Page:
        """Page *number* of *collection* at *path* (relative to the base) with *params*."""
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        url = f"{self._base}/{path}?{query}"
        where = f"page {number} of {collection} from {self._server}"

        def request() -> urllib.request.Request:
            headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
            return urllib.request.Request(url, headers=headers)

        status, headers, body = self._send(request, where=where, authorised=True)
        if status != 200:
            msg = f"{where}: the server answered {status}"
            raise AdapterError(msg, retryable=False)
        return Page(
            _records(body, collection=collection, number=number),
            _total(headers, collection=collection, number=number),
            _more(headers),
            _date(headers.get("Date")),
        )

    # -- sending, with retries

    def _send(
        self,
        build: Callable[[], urllib.request.Request],
        *,
        where: str,
        authorised: bool,
    ) -> tuple[int, Message, bytes]:
        """The status, headers and body of *build*'s request, retried as the module says.

        *authorised*: the request carries the bearer token, so a 401 gets a new
        token once.
        """
        retries = 0
        renewed = False
        while True:
            request = build()
            wait: float | None
            try:
                with self._opener.open(request, timeout=self._timeout) as response:
                    body = _read_capped(response, where)
                    return response.status, response.headers, body
            except urllib.error.HTTPError as error:
                status, headers = error.code, error.headers
                body = _drain(error)
                if status == 401 and authorised and not renewed:
                    renewed = True
                    self._token = None  # expired or revoked: one new token, then the page again
                    continue
                if status == 401 and authorised:
                    msg = f"{where}: the server refused a new token too (401)"
                    raise AdapterError(msg, retryable=False) from None
                if 300 <= status < 400:
                    msg = f"{where}: the server redirects (status {status}); give the final URL"
                    raise AdapterError(msg, retryable=False) from None
                if status not in _RETRYABLE:
                    if not authorised and status in (400, 401, 403):
                        raise AdapterError(
                            self._refused(where, status, body), retryable=False
                        ) from None
                    return status, headers, body
                try:
                    wait = self._wait(headers, retries, where, status)
                except AdapterError as too_long:
                    raise too_long from None
                why = f"status {status}"
            except (OSError, http.client.HTTPException) as error:
                if isinstance(error, AdapterError):
                    raise
                wait = self._wait(None, retries, where, None)
                why = type(error).__name__
            if wait is None:
                msg = (
                    f"{where}: still failing ({why}) after {retries} "
                    f"retr{'y' if retries == 1 else 'ies'}; try again later"
                )
                raise AdapterError(msg, retryable=True) from None
            self._sleep(wait)
            retries += 1

    def _wait(
        self, headers: Message | None, retries: int, where: str, status: int | None
    ) -> float | None:
        """How long to wait before retry *retries* + 1; None when no retry is left."""
        if retries >= self._max_retries:
            return None
        asked = _retry_after(headers) if headers is not None else None
        if asked is not None and asked > self._max_wait:
            msg = (
                f"{where}: the server asks to wait {asked:.0f} s (status {status}), longer "
                f"than max_wait ({self._max_wait:.0f} s); try again later"
            )
            raise AdapterError(msg, retryable=True)
        if asked is not None:
            return max(asked, 0.0)
        return float(min(self._backoff * 2**retries, self._max_wait))


def _read_capped(response: Any, where: str) -> bytes:
    """The body, whole: a connection closed before ``Content-Length`` is an IncompleteRead."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PAGE_BYTES:
            msg = f"{where}: the answer is larger than {MAX_PAGE_BYTES} bytes"
            raise AdapterError(msg, retryable=False)
    body = b"".join(chunks)
    # read(amt) returns short, without an error, when the server hangs up early.
    promised = (response.headers.get("Content-Length") or "").strip()
    if promised.isdigit() and size < int(promised):
        received = body[:0]  # what IncompleteRead carries is not kept: it may be personal
        raise http.client.IncompleteRead(received, int(promised) - size)
    return body


def _drain(error: urllib.error.HTTPError) -> bytes:
    """The start of an error's body (enough for an OAuth error code), its connection closed."""
    try:
        return error.read(_CHUNK)
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        error.close()


def _retry_after(headers: Message) -> float | None:
    """What ``Retry-After`` asks, in seconds (a number, or an HTTP date against ``Date``)."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = _date(value)
    if when is None:
        return None
    now = _date(headers.get("Date")) or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _total(headers: Message, *, collection: str, number: int) -> int | None:
    value = headers.get("X-Total-Count")
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        msg = f"page {number} of {collection}: X-Total-Count is not a whole number"
        raise SourceDataError(msg, file=collection, field="X-Total-Count")
    return int(text)


def _more(headers: Message) -> bool | None:
    links = headers.get_all("Link")
    if not links:
        return None
    return any("next" in rel.casefold().split() for link in links for rel in _NEXT.findall(link))


def _records(body: bytes, *, collection: str, number: int) -> tuple[Any, ...]:
    """The page's records: ``{"<collection>": [{...}, ...]}``, as UTF-8 JSON (RFC 8259)."""
    where = f"page {number} of {collection}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        msg = f"{where} is not UTF-8 text"
        raise EncodingError(msg, offset=error.start, file=collection) from None
    try:
        answer = json.loads(text)
    except ValueError as error:
        position = getattr(error, "pos", None)
        at = f" at character {position}" if isinstance(position, int) else ""
        msg = f"{where} is not valid JSON{at} (a page cut short, or a broken server)"
        raise SourceDataError(msg, file=collection) from None
    found = answer.get(collection) if isinstance(answer, dict) else None
    if not isinstance(found, list):
        msg = f'{where} is not {{"{collection}": [...]}}, the binding\'s envelope'
        raise SourceDataError(msg, file=collection, field=collection)
    return tuple(found)
