"""What delivers a message: the transport protocol, its results, and an outbox.

A transport takes a batch of :class:`Envelope`\\ s (defined, with the
results, in :mod:`sourcetruth.messages`), each one planned delivery
of one message to one address on one channel, and returns one
:class:`DeliveryResult` per envelope, in the same order: accepted, rejected
(the address or content was refused: retrying will not help) or failed
(something went wrong on the way; ``retryable`` says whether to try again).
A transport never raises for one bad address: every envelope gets a result.

Each envelope carries an idempotency ``key``, the same on every retry of the
same delivery. A transport that can pass it on (an HTTP gateway's
idempotency header, an email's ``Message-ID``) does, so a retry after a
timeout never sends twice to a transport that honours it.

Credentials never appear in a transport's ``repr``, in its log lines or in its
errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from sourcetruth.adapters._files import write_atomic
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel

__all__ = [
    "DeliveryResult",
    "DeliveryStatus",
    "Envelope",
    "OutboxTransport",
    "Transport",
]


@runtime_checkable
class Transport(Protocol):
    """Delivers envelopes of one channel."""

    @property
    def channel(self) -> Channel: ...

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]: ...


class OutboxTransport:
    """A transport that delivers nowhere: it keeps what it is given, for the demo and tests.

    In memory by default; with *folder*, each envelope is also written there
    as a JSON file named by its key, so a developer can read what would have
    gone out. It honours idempotency keys: an envelope whose key it already
    holds is accepted again and not kept twice.
    """

    def __init__(self, channel: Channel, folder: str | os.PathLike[str] | None = None) -> None:
        self._channel = channel
        self._folder = None if folder is None else Path(folder)
        self.sent: dict[str, Envelope] = {}

    def __repr__(self) -> str:
        return f"OutboxTransport({self._channel.value!r}, held={len(self.sent)})"

    @property
    def channel(self) -> Channel:
        return self._channel

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        results = []
        for envelope in batch:
            if envelope.channel is not self._channel:
                results.append(DeliveryResult.rejected(envelope.key, "wrong channel"))
                continue
            if envelope.key not in self.sent:
                self.sent[envelope.key] = envelope
                if self._folder is not None:
                    self._write(envelope)
            results.append(DeliveryResult.accepted(envelope.key, reference=envelope.key))
        return results

    def _write(self, envelope: Envelope) -> None:
        assert self._folder is not None
        self._folder.mkdir(parents=True, exist_ok=True)
        body = {
            "key": envelope.key,
            "channel": envelope.channel.value,
            "address": envelope.address,
            "name": envelope.name,
            "subject": envelope.subject,
            "body": envelope.body,
            "html": envelope.html,
        }
        path = self._folder / f"{envelope.key}.json"
        write_atomic(path, json.dumps(body, indent=2, sort_keys=True).encode("utf-8"))
