"""A source's sync: a snapshot applied to a draft, phase by phase (package-private).

The phases, in order: check the snapshot against the book (rule 5: order,
keys, an empty full snapshot never read as "everyone left"); skip erased
people (rule 13); make partial delta records whole; compare with the book
(what changed, who departs, of how many); stop at the same snapshot again
(rule 5) or at the departure guard (rule 6) unless confirmed; write the new
versions and the sync record; end the overrides this sync ends (rule 3, by
the lifetime table :data:`~sourcetruth.model.KEPT_AT_SYNC`); report possible
duplicates (rule 12).

The comparison costs what changed when the store keeps each record's digest:
a snapshot's records are digested and compared with the stored digests, and
only the rows that differ are read. Records handed digests first
(:class:`~sourcetruth.DigestedRecords`) are compared by the digests their
reader gave, and only those that differ, or are new, are built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import compress
from operator import countOf, ne

import attrs

from sourcetruth._digest import DEPARTED, record_digest
from sourcetruth._draft import Draft, outcome
from sourcetruth._names import same_data
from sourcetruth._overlay import changed_keys, root_of
from sourcetruth.changes import ConfirmSync
from sourcetruth.digested import DigestedRecords
from sourcetruth.duplicates import duplicates_among
from sourcetruth.exceptions import (
    ConfirmationMismatchError,
    EmptySnapshotError,
    SourceDataError,
    StaleSnapshotError,
    UsageError,
)
from sourcetruth.model import (
    KEPT_AT_SYNC,
    Book,
    Record,
    RecordState,
    Snapshot,
    SnapshotKind,
    SourceKind,
    SyncRecord,
    split_record_id,
    suppression_check,
    suppression_digest,
)
from sourcetruth.report import Held
from sourcetruth.serialise import to_primitive

__all__ = ["confirm_sync", "sync"]


def sync(draft: Draft, snapshot: Snapshot) -> Held | None:
    """Apply *snapshot*; the hold when the departure guard trips (rule 6)."""
    return _apply(draft, snapshot, None)


def confirm_sync(draft: Draft, change: ConfirmSync) -> Held | None:
    """Apply a held snapshot, for that snapshot and the book as it was when held only."""
    return _apply(draft, change.snapshot, change.token)


def _apply(draft: Draft, snapshot: Snapshot, token: str | None) -> Held | None:
    draft.source = name = snapshot.source
    last, keys = _check(draft, snapshot)
    states = draft.records.get(name, {})
    given = snapshot.records
    # A delta costs what it holds: its records' rows are read whatever the store,
    # unless its reader handed digests first.
    by_digest = snapshot.kind is SnapshotKind.FULL or isinstance(given, DigestedRecords)
    digests = _stored_digests(states) if by_digest else None
    if isinstance(given, DigestedRecords) and digests is not None:
        read, changed = _changed_by_digest(draft, name, given, states, digests)
    else:
        records = _unsuppressed(draft, snapshot, states if digests is None else digests)
        if any(r.fields is not None for r in records):
            records = _complete(records, states)
        read, changed = len(records), _changed(records, states, digests)
    departing, population = _departing(snapshot, keys, states, last, digests)
    if last is not None and snapshot.extracted_at == last.extracted_at:
        if changed or departing:
            msg = "a different snapshot with the same extraction time was already applied"
            raise StaleSnapshotError(msg, source=name)
        return None  # the same snapshot again: nothing to do (rule 5)
    held = _guard(draft, snapshot, token, departing, population)
    if held is not None:
        return held
    draft.sync = draft.seq
    _write(draft, snapshot, read, changed, departing, population)
    _end_overrides(draft, snapshot)
    if changed:
        book = draft.book()
        fresh = [book.records[name][r.key] for r in changed]
        draft.duplicates.extend(duplicates_among(book, draft.policy, fresh))
    return None


def _check(draft: Draft, snapshot: Snapshot) -> tuple[SyncRecord | None, set[str]]:
    """Refuse a snapshot the book cannot take; the source's last sync, and the snapshot's keys."""
    name = snapshot.source
    if draft.policy.source(name).kind is SourceKind.ADDRESS_BOOK:
        msg = "the address book changes by saves, not snapshots"
        raise UsageError(msg)
    if snapshot.extracted_at > draft.at:
        msg = "a snapshot cannot be applied before it was extracted"
        raise UsageError(msg)
    syncs = draft.syncs.get(name, ())
    last = syncs[-1] if syncs else None
    if last is not None and snapshot.extracted_at < last.extracted_at:
        msg = "this snapshot was read before the last one applied for its source"
        raise StaleSnapshotError(msg, source=name)
    records = snapshot.records
    listed = records.keys if isinstance(records, DigestedRecords) else [r.key for r in records]
    keys = set(listed)
    if len(keys) != len(listed):
        msg = "two records share one key"
        raise SourceDataError(msg, source=name, key=_first_repeated(listed))
    if snapshot.kind is SnapshotKind.FULL and not records:
        msg = "the snapshot holds no records: never read as 'everyone left'"
        raise EmptySnapshotError(msg, source=name)
    both = keys.intersection(snapshot.removed)
    if both:
        msg = "a delta both changes and removes one record"
        raise SourceDataError(msg, source=name, key=min(both))
    return last, keys


def _first_repeated(keys: Sequence[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _unsuppressed(draft: Draft, snapshot: Snapshot, known: Collection[str]) -> Sequence[Record]:
    """The snapshot's records less those of erased people (rule 13), who are counted.

    *known*: the keys of the source's records in the book, departed ones too.
    """
    records = snapshot.records
    if not draft.suppressed:
        return records
    erased = _erased(draft, snapshot.source, [r.key for r in records], known)
    return tuple(r for r in records if r.key not in erased)


def _erased(draft: Draft, name: str, keys: Iterable[str], known: Collection[str]) -> set[str]:
    """Those of *keys* that are erased people's (rule 13), counted as skipped.

    *known*: the keys of the source's records in the book, departed ones too.
    """
    if not draft.suppressed:
        return set()
    secret = draft.policy.suppression_key
    if suppression_check(secret) != draft.suppression_check:
        msg = (
            "the policy's suppression_key is not the one this book's erasures used, "
            "so erased people could come back: use that key"
        )
        raise UsageError(msg)
    # An erased record left the book, so only keys the book lacks can be
    # suppressed: the records of everyone present cost no hash.
    erased = {
        key
        for key in keys
        if key not in known and suppression_digest(secret, name, key) in draft.suppressed
    }
    draft.skipped = len(erased)
    return erased


def _complete(records: Sequence[Record], states: Mapping[str, RecordState]) -> tuple[Record, ...]:
    """Partial delta records made whole from the book's current version of each.

    For a person the book does not hold as present there is nothing to keep:
    the record's data, the source's best knowledge, stands for every field.
    """
    whole = []
    for record in records:
        state = states.get(record.key)
        current = None if state is None else state.current.data
        if record.fields is None:
            whole.append(record)
            continue
        if current is None:
            whole.append(Record(record.key, record.data))
            continue
        given = {name: getattr(record.data, name) for name in sorted(record.fields)}
        whole.append(Record(record.key, attrs.evolve(current, **given)))
    return tuple(whole)


def _stored_digests(states: Mapping[str, RecordState]) -> dict[str, str] | None:
    """Each record's key and current digest, when the store under *states* keeps them.

    A store's table of records may offer ``digests()`` (one query, no row
    structured); the records the merge has written over it since it was
    loaded are digested here. None for a book in memory: comparing its
    records costs no more than digesting them.
    """
    root = root_of(states)
    stored: Callable[[], dict[str, str]] | None = getattr(root, "digests", None)
    if stored is None:
        return None
    found = stored()
    if states is not root:
        write, gone = changed_keys(root, states)
        for key in write:
            found[key] = record_digest(states[key].current.data)
        for key in gone:
            found.pop(key, None)
    return found


def _changed(
    records: Sequence[Record],
    states: Mapping[str, RecordState],
    digests: Mapping[str, str] | None,
) -> list[Record]:
    """The records that are new, or whose data differs from their current version's.

    Values compare raw, but for names, which compare in NFC (a name sent in
    another Unicode form is no change, and the book keeps the form it has).

    With *digests*, a record whose digest is the stored one is unchanged
    without its row being read; any other is compared as without them, so a
    digest never decides that data differ.
    """
    if digests is None:
        # An unchanged record costs one comparison of raw values.
        return [
            r
            for r in records
            if (s := states.get(r.key)) is None or not same_data(s.versions[-1].data, r.data)
        ]
    changed = []
    for record in records:
        stored = digests.get(record.key)
        if stored is None:
            changed.append(record)
            continue
        try:
            if record_digest(record.data) == stored:
                continue
        except AttributeError:  # a value not of its field's type: compared below
            pass
        if not same_data(states[record.key].versions[-1].data, record.data):
            changed.append(record)
    return changed


def _changed_by_digest(
    draft: Draft,
    name: str,
    records: DigestedRecords,
    states: Mapping[str, RecordState],
    digests: Mapping[str, str],
) -> tuple[int, list[Record]]:
    """How many records the snapshot holds (erased people's left out), and those that changed.

    A record whose digest is the stored one is unchanged and never built.
    Any other is built, its digest checked against the one its reader gave,
    and compared as :func:`_changed` compares (a digest never decides that
    data differ).
    """
    get = digests.get
    # Compared in C, a row at a time: a million rows, of which a few differ.
    differs = map(ne, map(get, records.keys), records.digests)
    wanted = list(compress(range(len(records)), differs))
    # Every key the book lacks has no stored digest, so erased people's are among these.
    skipped = _erased(draft, name, (records.keys[i] for i in wanted), digests)
    changed = []
    for index in wanted:
        key = records.keys[index]
        if key in skipped:
            continue
        record = records.record(index)
        if record_digest(record.data) != records.digests[index]:
            msg = "a reader gave a digest that is not its record's"
            raise UsageError(msg)
        stored = get(key)
        if stored is None or states[key].versions[-1].data != record.data:
            changed.append(record)
    return len(records) - len(skipped), changed


def _departing(
    snapshot: Snapshot,
    keys: set[str],
    states: Mapping[str, RecordState],
    last: SyncRecord | None,
    digests: Mapping[str, str] | None,
) -> tuple[list[str], int]:
    """The keys of present records the snapshot makes depart, sorted, and how many are present."""
    population = 0
    if snapshot.kind is SnapshotKind.FULL and digests is not None:
        # Counted and set apart in C: a million stored digests, a handful leaving.
        population = len(digests) - countOf(digests.values(), DEPARTED)
        departing = [k for k in digests.keys() - keys if digests[k] != DEPARTED]
    elif snapshot.kind is SnapshotKind.FULL:
        departing = []
        for key, state in states.items():
            if state.versions[-1].data is not None:
                population += 1
                if key not in keys:
                    departing.append(key)
    else:
        # A delta must cost what it holds, not what the source holds.
        population = last.present if last is not None else 0
        departing = [
            k for k in set(snapshot.removed) if k in states and states[k].current.data is not None
        ]
    departing.sort()
    return departing, population


def _token(snapshot: Snapshot, book: Book) -> str:
    """Binds a confirmation to one snapshot's content and to the book as it was when held.

    The book is named by its ``seq``, which every change merged into it counts
    (a sync of any source, an edit, a link, an erasure; a held sync is none):
    once the book has changed, the departures the person checked may no longer
    be the ones the sync would make.
    """
    body = to_primitive(
        attrs.evolve(
            snapshot,
            records=sorted(snapshot.records, key=lambda r: r.key),
            removed=sorted(snapshot.removed),
        )
    )
    payload = json.dumps([body, book.seq], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _guard(
    draft: Draft,
    snapshot: Snapshot,
    token: str | None,
    departing: list[str],
    population: int,
) -> Held | None:
    """The hold when too many would depart (rule 6), unless *token* confirms this snapshot."""
    if token is not None and token != _token(snapshot, draft.old):
        msg = (
            "this confirmation was given for another snapshot, "
            "or the book has changed since the sync was held"
        )
        raise ConfirmationMismatchError(msg)
    guard = draft.policy.guard
    if token is not None or not guard.trips(len(departing), population):
        return None
    reason = (
        f"{len(departing)} of {population} present records of {snapshot.source} would depart; "
        f"the guard allows {guard.max_count} or "
        f"{guard.max_fraction:.0%}. Check the export, then confirm this snapshot."
    )
    states = draft.records.get(snapshot.source, {})
    who = tuple(sorted({states[k].contact_id for k in departing}))
    return Held(reason, len(departing), population, _token(snapshot, draft.old), who)


def _write(
    draft: Draft,
    snapshot: Snapshot,
    read: int,
    changed: list[Record],
    departing: list[str],
    population: int,
) -> None:
    """The new and changed records' versions, the departures, and the sync record."""
    name, extracted_at = snapshot.source, snapshot.extracted_at
    states = draft.records.get(name, {})
    arrived = 0
    for record in sorted(changed, key=lambda r: r.key):
        previous = states.get(record.key)
        if previous is None:
            state = draft.new_record(name, record.key, record.data, extracted_at)
            arrived += 1
        else:
            arrived += previous.current.data is None
            state = draft.put_version(previous, record.data, extracted_at)
        draft.check_values(state.id, record.data)
    present = read  # a full snapshot holds every present record
    if snapshot.kind is not SnapshotKind.FULL:
        present = population + arrived - len(departing)
    for key in departing:
        draft.put_version(states[key], None, extracted_at)
    done = SyncRecord(
        draft.seq, name, snapshot.kind, extracted_at, draft.at, draft.by, read, present
    )
    draft.syncs[name] = (*draft.syncs.get(name, ()), done)


def _end_overrides(draft: Draft, snapshot: Snapshot) -> None:
    """End the overrides of this source set before it read its data (rule 3).

    An override whose lifetime keeps it at this outcome stays in force, and
    the report says so.
    """
    name = snapshot.source
    states = draft.records.get(name, {})
    region = draft.policy.region_of(name)  # the overrides ended here are of this source's records
    for cid in sorted(draft.overrides):
        for override in draft.overrides[cid]:
            if override.source != name or override.set_at >= snapshot.extracted_at:
                continue
            data = states[split_record_id(override.record)[1]].current.data
            ended = outcome(override, data, region)
            if ended in KEPT_AT_SYNC[override.lifetime]:
                draft.overrides_kept.append(override)
                continue
            draft.end_override(override, ended)
