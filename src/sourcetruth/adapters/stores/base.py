"""What every store shares: one merge applied to a store, the usual way in.

A store satisfies :class:`~sourcetruth.protocols.Store`: it holds one book and
its journal of :class:`~sourcetruth.journal.Run`\\ s, and commits a merge's
result with its run atomically. :func:`apply` loads, merges and commits. Time
travel needs nothing from the store: the book keeps its own history, so
:func:`sourcetruth.contact_at` and :func:`sourcetruth.explain` answer for any
past time from the loaded book. The built-in stores are
:mod:`~sourcetruth.adapters.stores.sqlite` and
:mod:`~sourcetruth.adapters.stores.jsonstore`.
"""

from __future__ import annotations

from datetime import datetime

from sourcetruth.exceptions import ConflictError
from sourcetruth.journal import Run, erased_by, input_hash, redact, run_of
from sourcetruth.merge import Change, merge
from sourcetruth.policy import Policy
from sourcetruth.protocols import Store
from sourcetruth.report import MergeResult

# The journal's names and the protocol are re-exported: a store's author needs them here.
__all__ = [
    "ConflictError",
    "Run",
    "Store",
    "apply",
    "erased_by",
    "input_hash",
    "redact",
    "run_of",
]


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
    run = run_of(before, (change,), result.report, at=at, by=by, run_id=run_id)
    store.commit(before, result, run)
    return result
