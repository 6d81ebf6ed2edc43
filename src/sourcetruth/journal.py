"""The journal: one entry per merge applied to a store, and what an erasure takes out of it.

A store keeps, beside the book, a :class:`Run` for every merge it committed
(held and unchanged ones too), so the journal shows every run. Everything
here is pure: the stores in :mod:`sourcetruth.adapters.stores` write runs,
this module says what a run holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from typing import Final

import attrs
from attrs import frozen

from sourcetruth._digest import named_digests
from sourcetruth._overlay import changed_keys
from sourcetruth.changes import Erase
from sourcetruth.digested import DigestedRecords
from sourcetruth.merge import Change
from sourcetruth.model import Book, Snapshot, record_id, utc
from sourcetruth.report import Report, without
from sourcetruth.serialise import dumps

__all__ = ["Run", "erased_by", "input_hash", "redact", "run_of"]


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
    # Only the keys the merge touched are looked at: a book may read its rows lazily.
    contacts = frozenset(changed_keys(before.contacts, after.contacts)[1])
    records = frozenset(
        record_id(source, key)
        for source, states in before.records.items()
        for key in changed_keys(states, after.records.get(source, {}))[1]
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
    """The SHA-256 of a change's canonical form.

    A snapshot is hashed as it streams, record by record (its header, then
    each record's key, fields and data digest, in the snapshot's order), never
    by serialising the whole of it: a million records would make a text of
    gigabytes. Digested records are hashed by the digests their reader gave,
    unbuilt, so a snapshot hashes the same whether its records were built.
    Any other change is small, and hashed as it serialises.
    """
    if isinstance(change, Snapshot):
        return _snapshot_hash(change)
    return hashlib.sha256(dumps(change).encode("utf-8")).hexdigest()


def _snapshot_hash(snapshot: Snapshot) -> str:
    hashed = hashlib.sha256()
    header = (
        "snapshot",
        snapshot.source,
        snapshot.kind.value,
        snapshot.extracted_at.isoformat(),
        snapshot.removed,
    )
    hashed.update(ascii(header).encode("ascii"))
    records = snapshot.records
    if isinstance(records, DigestedRecords):
        # The same text as below, ascii((key, None, digest)) a record, made a
        # page at a time in C: a million records cost no million Python steps.
        keys, digests = iter(records.keys), iter(records.digests)
        while page := "".join(
            map(_WHOLE, map(ascii, islice(keys, _PAGE)), map(ascii, islice(digests, _PAGE)))
        ):
            hashed.update(page.encode("ascii"))
        return hashed.hexdigest()
    for named in named_digests(records):
        hashed.update(ascii(named).encode("ascii"))
    return hashed.hexdigest()


#: A whole record's line in a snapshot's hash, from its key's and digest's ascii().
_WHOLE: Final = "({}, None, {})".format
_PAGE: Final = 4096


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
