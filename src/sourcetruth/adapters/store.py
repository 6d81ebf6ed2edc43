"""Keeping the book: the store protocol, the journal of runs, and one merge applied to a store.

A store holds one book and a journal. :meth:`Store.commit` writes the result of
one merge and its :class:`Run` together, atomically: after a crash at any
point, the store holds the book entirely as it was or entirely as the merge
left it, and the journal says which. :func:`apply` is the usual way in: load,
merge, commit. Time travel needs nothing from the store: the book keeps its
own history, so :func:`sourcetruth.contact_at` and :func:`sourcetruth.explain`
answer for any past time from the loaded book.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol, runtime_checkable

from attrs import frozen

from sourcetruth.exceptions import SourceTruthError
from sourcetruth.merge import Change, MergeResult, Report, merge
from sourcetruth.model import Book, utc
from sourcetruth.policy import Policy
from sourcetruth.serialise import dumps

__all__ = ["ConflictError", "Run", "Store", "apply", "input_hash"]


class ConflictError(SourceTruthError):
    """The store's book changed since it was loaded: load again and merge again."""


@frozen
class Run:
    """One merge as the journal keeps it.

    ``id`` names the run (the caller's, or the input's hash and the book's
    sequence number); ``input_hash`` is the SHA-256 of the change merged, so
    a repeated input is recognisable; ``report`` is the change set the merge
    planned and applied (or held); ``status`` is the report's.
    """

    id: str
    at: datetime
    by: str
    input_hash: str
    status: str
    report: Report


def input_hash(change: Change) -> str:
    """The SHA-256 of a change's canonical serialised form."""
    return hashlib.sha256(dumps(change).encode("utf-8")).hexdigest()


@runtime_checkable
class Store(Protocol):
    """Where a book lives between runs."""

    def load(self) -> Book: ...

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Replace *before* with ``result.book`` and journal *run*, all or nothing.

        Raises :class:`ConflictError` when the store no longer holds *before*.
        """
        ...

    def journal(self) -> tuple[Run, ...]: ...

    def close(self) -> None: ...


def apply(
    store: Store,
    change: Change,
    *,
    policy: Policy,
    at: datetime,
    by: str,
    run_id: str | None = None,
) -> MergeResult:
    """Load the book, merge *change*, and commit the result with its run.

    A held or unchanged merge is journalled too, so the journal shows every
    run; the book itself changes only when the merge applied something.
    """
    before = store.load()
    result = merge(before, change, policy=policy, at=at, by=by)
    digest = input_hash(change)
    run = Run(
        run_id or f"{digest[:16]}-{before.seq}",
        utc(at),
        by,
        digest,
        result.report.status.value,
        result.report,
    )
    store.commit(before, result, run)
    return result
