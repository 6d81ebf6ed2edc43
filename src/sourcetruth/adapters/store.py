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
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs
from attrs import frozen

from sourcetruth.exceptions import ConflictError
from sourcetruth.merge import Change, merge
from sourcetruth.model import Book, Erase, record_id, utc
from sourcetruth.policy import Policy
from sourcetruth.report import MergeResult, Report, without
from sourcetruth.serialise import dumps

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


def erased_by(before: Book, after: Book) -> tuple[frozenset[str], frozenset[str]]:
    """The contact ids and record ids an erasure took out of the book (rule 13)."""
    contacts = frozenset(before.contacts) - frozenset(after.contacts)
    records = frozenset(
        record_id(source, key)
        for source, states in before.records.items()
        for key in states
        if key not in after.records.get(source, {})
    )
    return contacts, records


def redact(run: Run, contacts: frozenset[str], records: frozenset[str]) -> Run:
    """*run* with every entry about the erased *contacts* and *records* taken out.

    A journal keeps each run's report, and reports hold values (a field's
    value before and after, an override's value): after an erasure, no value
    of the erased person may stay there.
    """
    redacted = without(run.report, contacts, records)
    return run if redacted == run.report else attrs.evolve(run, report=redacted)


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
    run = run_of(before, (change,), result.report, at=at, by=by, run_id=run_id)
    store.commit(before, result, run)
    return result


def run_of(
    before: Book,
    changes: Sequence[Change],
    report: Report,
    *,
    at: datetime,
    by: str,
    run_id: str | None = None,
) -> Run:
    """The journal's entry for *changes*, merged one after another into *before*.

    The input's hash is that of the one change, or of the changes' hashes in
    order for a batch (a vCard file's entries, committed as one run).
    """
    if any(isinstance(change, Erase) for change in changes):
        # An erasure's input names the person: its hash would let anyone check
        # a guess against the journal, so the journal keeps none (rule 13).
        digest = ""
    elif len(changes) == 1:
        digest = input_hash(changes[0])
    else:
        joined = "".join(input_hash(change) for change in changes)
        digest = hashlib.sha256(joined.encode()).hexdigest()
    return Run(
        run_id or f"{digest[:16] or 'erase'}-{before.seq}",
        utc(at),
        by,
        digest,
        report.status.value,
        report,
    )
