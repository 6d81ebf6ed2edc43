"""The outbox: a transport that delivers nowhere and keeps what it is given.

The :class:`~sourcetruth.protocols.Transport` protocol it satisfies is in the
core (:mod:`sourcetruth.protocols`). A transport takes a batch of
:class:`Envelope`\\ s, each one planned delivery of one message to one
address on one channel, and returns one :class:`DeliveryResult` per envelope,
in the same order: accepted, rejected (the address or content was refused:
retrying will not help) or failed (something went wrong on the way;
``retryable`` says whether to try again). Each envelope carries an
idempotency ``key``, the same on every retry of the same delivery.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from sourcetruth.adapters._files import private_folder, write_atomic
from sourcetruth.messages import DeliveryResult, Envelope
from sourcetruth.model import Channel

# What the old path sourcetruth.adapters.transport (an alias of this module)
# exported besides the outbox: still importable from there for one release.
from sourcetruth.messages import DeliveryStatus as DeliveryStatus  # isort: skip
from sourcetruth.protocols import Transport as Transport  # isort: skip

__all__ = ["OutboxTransport", "outbox_copy"]


class OutboxTransport:
    """A transport that delivers nowhere: it keeps what it is given, for the demo and tests.

    In memory by default; with *folder*, each envelope is also written there
    as a JSON file named by its key, so a developer can read what would have
    gone out: owner-only (``0600``), in a folder made owner-only (``0700``,
    and each folder made above it), never written through a link. It honours
    idempotency keys: an envelope whose key it already holds is accepted
    again and not kept twice.
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
        private_folder(self._folder)
        path = self._folder / f"{envelope.key}.json"
        write_atomic(path, json.dumps(outbox_copy(envelope), indent=2, sort_keys=True).encode())


def outbox_copy(envelope: Envelope) -> dict[str, str | None]:
    """What an outbox keeps of *envelope*: its key, channel, address, name and text."""
    return {
        "key": envelope.key,
        "channel": envelope.channel.value,
        "address": envelope.address,
        "name": envelope.name,
        "subject": envelope.subject,
        "body": envelope.body,
        "html": envelope.html,
    }
