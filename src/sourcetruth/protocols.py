"""The shapes the core expects of the outside world: a store, a transport, a delivery log.

Each is a :class:`typing.Protocol`: an adapter satisfies it by having the
methods, not by inheriting. The core defines them and never implements them;
the implementations live in :mod:`sourcetruth.adapters` (stores and
transports) and :mod:`sourcetruth.app.sending` (delivery logs), and the
conformance kit in :mod:`sourcetruth.testing` checks that one keeps the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sourcetruth.journal import Run
from sourcetruth.messages import DeliveryResult, Envelope
from sourcetruth.model import Book, Channel
from sourcetruth.report import MergeResult

__all__ = ["DeliveryLog", "Store", "Transport"]


@runtime_checkable
class Store(Protocol):
    """Where a book lives between runs.

    :meth:`commit` writes the result of one merge and its :class:`Run`
    together, atomically: after a crash at any point, the store holds the book
    entirely as it was or entirely as the merge left it, and the journal says
    which.
    """

    def load(self) -> Book: ...

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Replace *before* with ``result.book`` and journal *run*, all or nothing.

        Raises :class:`~sourcetruth.exceptions.ConflictError` when the store no
        longer holds *before*.
        """
        ...

    def journal(self) -> tuple[Run, ...]: ...

    def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """Delivers envelopes of one channel.

    A transport takes a batch of :class:`~sourcetruth.messages.Envelope`\\ s and
    returns one :class:`~sourcetruth.messages.DeliveryResult` per envelope, in
    the same order. It never raises for one bad address: every envelope gets a
    result. It passes each envelope's idempotency ``key`` on where it can, so a
    retry never sends twice. Credentials never appear in its ``repr``, log
    lines or errors.
    """

    @property
    def channel(self) -> Channel: ...

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]: ...


class DeliveryLog(Protocol):
    """Where a send records, as it goes, what it handed over and what came back."""

    def handing_over(self, keys: Sequence[str]) -> None: ...

    def answered(self, results: Sequence[DeliveryResult]) -> None: ...

    def results(self) -> dict[str, DeliveryResult]: ...

    def handed_over(self) -> frozenset[str]: ...
