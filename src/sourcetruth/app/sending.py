"""Sending a plan through transports, with retries and a log that survives a crash.

:func:`send` hands each planned delivery to the transport of its channel and
returns the :class:`~sourcetruth.audit.AuditRecord`. Before a batch is handed
over, the :class:`DeliveryLog` records that it is being handed over; after,
what the transport said. If the process stops half-way, the log says which
deliveries were handed over with no answer and which never were; calling
:func:`send` again with the same plan and log sends only what has no final
answer, under the same idempotency keys, so a transport that honours them
never sends twice. A delivery that failed and may be retried is tried again,
up to ``attempts`` times in one call; a partial failure still returns every
result.

A message sent from a folder of audit records, resumed as first planned, is
:mod:`sourcetruth.app.dispatch`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from sourcetruth.adapters._files import open_in_place, read_in_place, write_atomic
from sourcetruth.audit import AuditRecord, Outcome
from sourcetruth.exceptions import AdapterError, UsageError
from sourcetruth.messages import Delivery, DeliveryResult, DeliveryStatus, Plan
from sourcetruth.model import Channel, utc
from sourcetruth.protocols import DeliveryLog, Transport
from sourcetruth.serialise import converter

__all__ = ["FINAL", "DeliveryLog", "FileDeliveryLog", "MemoryDeliveryLog", "send"]

_log = logging.getLogger(__name__)

#: The statuses after which a delivery is never handed over again.
FINAL: Final = (DeliveryStatus.ACCEPTED, DeliveryStatus.REJECTED)


class MemoryDeliveryLog:
    """A delivery log in memory: for tests and for sends that need no recovery."""

    def __init__(self) -> None:
        self._handed: set[str] = set()
        self._results: dict[str, DeliveryResult] = {}

    def handing_over(self, keys: Sequence[str]) -> None:
        self._handed.update(keys)

    def answered(self, results: Sequence[DeliveryResult]) -> None:
        self._results.update((r.key, r) for r in results)

    def results(self) -> dict[str, DeliveryResult]:
        return dict(self._results)

    def handed_over(self) -> frozenset[str]:
        return frozenset(self._handed)


def _lock(handle: BinaryIO) -> None:
    """Hold *handle*'s file for this process alone until it is closed (POSIX only)."""
    if sys.platform != "win32":
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _key_of(line: object) -> object:
    """The delivery key a line of the log is about, or None."""
    if not isinstance(line, dict):
        return None
    if "key" in line:
        return line["key"]
    result = line.get("result")
    return result.get("key") if isinstance(result, dict) else None


class FileDeliveryLog:
    """A delivery log in a JSON-lines file, each line flushed to disk before going on.

    Lines hold keys and results only: no address or message text, so the log
    holds nothing personal beyond what the audit record holds. A line cut
    short by a crash is ignored when the file is read back. The file is made
    readable by its owner only, and is never read or written through a link
    (one in its place is an :class:`~sourcetruth.exceptions.AdapterError`).
    :meth:`forget` takes keys out of it (for an erasure): a delivery key is a
    hash of the message id and the address, so with the id it confirms a
    guessed address.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileDeliveryLog({os.fspath(self.path)!r})"

    def _open(self) -> BinaryIO:
        """The log, open for appending and locked: the file at the path now, made if need be."""
        while True:
            # Owner-only, and never through a link planted at its predictable name.
            fd = open_in_place(self.path, os.O_RDWR | os.O_APPEND)
            handle = os.fdopen(fd, "a+b")
            try:
                _lock(handle)
                # forget() may have put a new file in its place while this one waited.
                if os.path.samestat(os.fstat(fd), os.lstat(self.path)):
                    return handle
            except FileNotFoundError:
                pass
            except BaseException:
                handle.close()
                raise
            handle.close()

    def _append(self, lines: Sequence[dict[str, object]]) -> None:
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        try:
            with self._open() as out:
                out.seek(0, os.SEEK_END)
                if out.tell():
                    out.seek(-1, os.SEEK_END)
                    if out.read(1) != b"\n":
                        # A crash cut the last line short: end it, so the
                        # torn line stays one bad line and swallows nothing.
                        text = "\n" + text
                out.write(text.encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
        except AdapterError:  # a link in its place, say: it says so itself
            raise
        except OSError as error:
            msg = f"cannot write the delivery log {self.path.name}: {error.strerror}"
            raise AdapterError(msg, retryable=True) from None

    def forget(self, keys: Iterable[str]) -> int:
        """Take every line about *keys* out of the log; return how many lines went.

        The file is rewritten whole or not at all: a temporary file beside it,
        flushed to disk, then renamed over it. A line cut short by a crash is
        dropped too (it may hold part of a key). Sends that append meanwhile
        wait for the rewrite and then append to the new file.
        """
        gone = frozenset(keys)
        if not gone or not os.path.lexists(self.path):
            return 0
        try:
            with self._open() as current:
                current.seek(0)
                kept: list[bytes] = []
                dropped = 0
                for raw in current.read().splitlines():
                    try:
                        line = json.loads(raw)
                    except ValueError:  # a torn line, or bytes that are not text
                        dropped += 1
                        continue
                    if _key_of(line) in gone:
                        dropped += 1
                        continue
                    kept.append(raw + b"\n")
                if dropped:
                    write_atomic(self.path, b"".join(kept))
        except AdapterError:
            raise
        except OSError as error:
            msg = f"cannot rewrite the delivery log {self.path.name}: {error.strerror}"
            raise AdapterError(msg, retryable=True) from None
        return dropped

    def _lines(self) -> list[dict[str, object]]:
        try:
            data = read_in_place(self.path)
        except FileNotFoundError:
            return []
        except AdapterError:
            raise
        except OSError as error:
            msg = f"cannot read the delivery log {self.path.name}: {error.strerror}"
            raise AdapterError(msg, retryable=True) from None
        found = []
        for text in data.decode("utf-8", errors="replace").splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # the last line of a write a crash cut short
            if isinstance(line, dict):
                found.append(line)
        return found

    def handing_over(self, keys: Sequence[str]) -> None:
        self._append([{"event": "handing-over", "key": key} for key in keys])

    def answered(self, results: Sequence[DeliveryResult]) -> None:
        self._append([{"event": "answered", "result": converter.unstructure(r)} for r in results])

    def results(self) -> dict[str, DeliveryResult]:
        found = {}
        for line in self._lines():
            if line.get("event") == "answered":
                result = converter.structure(line["result"], DeliveryResult)
                found[result.key] = result
        return found

    def handed_over(self) -> frozenset[str]:
        return frozenset(
            str(line["key"]) for line in self._lines() if line.get("event") == "handing-over"
        )


def _batches(deliveries: Sequence[Delivery], size: int) -> list[list[Delivery]]:
    return [list(deliveries[i : i + size]) for i in range(0, len(deliveries), size)]


def _hand_over(
    transport: Transport, batch: Sequence[Delivery], plan: Plan, log: DeliveryLog
) -> list[DeliveryResult]:
    log.handing_over([d.key for d in batch])
    try:
        results = transport.send([d.envelope(plan.message) for d in batch])
    except Exception as error:  # a transport's bug must not lose the rest of the send
        _log.warning("a %s transport raised %s", transport.channel.value, type(error).__name__)
        results = [
            DeliveryResult.failed(
                d.key, f"the transport raised {type(error).__name__}", retryable=True
            )
            for d in batch
        ]
    if not isinstance(results, list) or not all(isinstance(r, DeliveryResult) for r in results):
        _log.warning(
            "a %s transport returned something other than results", transport.channel.value
        )
        results = []
    by_key = {r.key: r for r in results}
    answered = [
        by_key.get(d.key)
        or DeliveryResult.failed(d.key, "no answer from the transport", retryable=True)
        for d in batch
    ]
    log.answered(answered)
    return answered


def send(
    plan: Plan,
    transports: Mapping[Channel, Transport],
    *,
    log: DeliveryLog,
    sent_at: datetime,
    attempts: int = 3,
    batch_size: int = 50,
    retry_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    settled: Callable[[DeliveryResult], None] | None = None,
) -> AuditRecord:
    """Hand *plan*'s deliveries to *transports* and return what happened.

    Deliveries the *log* already holds a final answer for (accepted or
    rejected) are not sent again. *sent_at* is when the send started (a
    timezone-aware time: the caller's clock, not ours). Between attempts it
    waits *retry_delay* seconds, doubling each time, through *sleep*.
    *settled*, when given, is called once for each delivery handed over, as
    soon as it is done with: its final answer, a failure not to be retried,
    or the failure of its last attempt (a progress bar counts these).
    """
    if attempts < 1 or batch_size < 1:
        msg = "attempts and batch_size must be at least 1"
        raise UsageError(msg)
    known = log.results()
    results: dict[str, DeliveryResult] = {k: r for k, r in known.items() if r.status in FINAL}
    tries = _Tries(attempts, batch_size, retry_delay, sleep, settled)
    for channel in dict.fromkeys(d.channel for d in plan.deliveries):
        todo = [d for d in plan.deliveries if d.channel is channel and d.key not in results]
        transport = transports.get(channel)
        if transport is not None and transport.channel is not channel:
            msg = f"the transport given for {channel.value} delivers {transport.channel.value}"
            raise UsageError(msg)
        if transport is None:
            reason = f"no transport for {channel.value}"
            for delivery in todo:
                results[delivery.key] = DeliveryResult.failed(delivery.key, reason, retryable=False)
            continue
        tries.deliver(transport, todo, plan, log, results)
    outcomes = [Outcome(d, results.get(d.key)) for d in plan.deliveries]
    return AuditRecord(
        plan.message, plan.at, utc(sent_at), outcomes, plan.unreachable, plan.fallbacks
    )


@attrs.frozen
class _Tries:
    """How :func:`send` tries one channel's deliveries: in batches, retried, each settled once."""

    attempts: int
    batch_size: int
    retry_delay: float
    sleep: Callable[[float], None]
    settled: Callable[[DeliveryResult], None] | None

    def deliver(
        self,
        transport: Transport,
        todo: Sequence[Delivery],
        plan: Plan,
        log: DeliveryLog,
        results: dict[str, DeliveryResult],
    ) -> None:
        """Hand *todo* to *transport*, retrying what may be; each answer goes in *results*."""
        for attempt in range(self.attempts):
            last = attempt + 1 == self.attempts
            retry = []
            for batch in _batches(todo, self.batch_size):
                for result in _hand_over(transport, batch, plan, log):
                    results[result.key] = result
                    again = result.status is DeliveryStatus.FAILED and result.retryable
                    if again:
                        retry.append(result.key)
                    if self.settled is not None and (last or not again):
                        self.settled(result)
            if not retry or last:
                break
            _log.info(
                "retrying %d %s deliveries (attempt %d of %d)",
                len(retry),
                transport.channel.value,
                attempt + 2,
                self.attempts,
            )
            self.sleep(self.retry_delay * 2**attempt)
            todo = [d for d in todo if d.key in retry]
