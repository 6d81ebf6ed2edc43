"""Reading a contact out of the book's history (package-private).

The primitives both ways of answering share: which records make up a contact
at a time and their versions then, which record's data or which override
each field takes its value from (rule 1), and where that value came from.
:mod:`sourcetruth.effective` answers from history with them, and
:mod:`sourcetruth.view` builds the current view with them, so both give the
same answer by construction.

Where a value came from is kept as an :data:`Origin` (the record version or
the override, no more) and turned into a :class:`~sourcetruth.Provenance`
only when asked (:func:`origin_provenance`): the sync a provenance names
depends on the time asked about, and most readers never ask.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from datetime import datetime
from typing import Final, NamedTuple, TypeAlias

from sourcetruth._build import provenance as _provenance
from sourcetruth._util import at_or_before
from sourcetruth.model import (
    Book,
    ContactData,
    Override,
    Provenance,
    ProvenanceKind,
    RecordState,
    RecordVersion,
    SyncRecord,
    split_record_id,
)
from sourcetruth.policy import Policy

__all__ = [
    "DEFAULT_PROVENANCE",
    "Origin",
    "Resolved",
    "SourceOrigin",
    "SyncsAt",
    "last_data",
    "latest_sync",
    "origin_provenance",
    "origin_sync",
    "overrides_at",
    "provenance_of",
    "record_provenance",
    "resolve_history",
    "resolve_id",
    "source_provenance",
    "version_at",
]


class SourceOrigin(NamedTuple):
    """A value that came from a record version; ``before``: the merge its departed record left in.

    For a departed home record, which keeps what it covers with its last
    values (rule 1), the sync a provenance names is the last one before it left.
    """

    source: str
    key: str
    version: RecordVersion
    before: int | None


#: Where a field's value came from: a record version, an override, or nowhere (None: the default).
Origin: TypeAlias = SourceOrigin | Override | None


def version_at(state: RecordState, at: datetime) -> RecordVersion | None:
    """The version of a record in force at *at*: None before the record arrived."""
    return at_or_before(state.versions, at, lambda v: v.applied_at)


def last_data(state: RecordState, upto: RecordVersion) -> RecordVersion | None:
    """The last version holding data up to (and including) version *upto*."""
    for v in reversed(state.versions[: state.versions.index(upto) + 1]):
        if v.data is not None:
            return v
    return None


def resolve_id(book: Book, contact_id: str, at: datetime | None = None) -> str:
    """Follow links: a contact linked into another answers as that one.

    At a time *at*, the links in force then; without one, those in force now.
    """
    seen = set()
    entry = book.contacts.get(contact_id)
    while entry is not None and contact_id not in seen:
        seen.add(contact_id)
        target = next((r.into for r in entry.redirects if r.active_at(at)), None)
        if target is None:
            break
        contact_id = target
        entry = book.contacts.get(contact_id)
    return contact_id


# -- provenance ------------------------------------------------------------------------


def _version_provenance(
    source: str, key: str, version: RecordVersion, sync: SyncRecord | None
) -> Provenance:
    if sync is None:
        return _provenance(
            ProvenanceKind.SOURCE,
            source,
            key,
            version.applied_at,
            version.extracted_at,
            version.applied_at,
            version.sync,
            version.by,
        )
    return _provenance(
        ProvenanceKind.SOURCE,
        source,
        key,
        version.applied_at,
        sync.extracted_at,
        sync.applied_at,
        sync.seq,
        sync.by,
    )


def record_provenance(
    state: RecordState, version: RecordVersion, sync: SyncRecord | None = None
) -> Provenance:
    """Where *version* of a record came from: the one place such a provenance is built.

    ``since`` is when the version was applied; the read it names is *sync*
    (a later sync of the source that read the record again), or without one
    the merge that applied the version.
    """
    return _version_provenance(state.source, state.key, version, sync)


def _latest_sync(book: Book, source: str, at: datetime, before: int | None) -> SyncRecord | None:
    """The latest sync of *source* at *at*, before merge *before* if it is given."""
    return latest_sync(book.syncs, source, at, before)


def latest_sync(
    of: Mapping[str, tuple[SyncRecord, ...]], source: str, at: datetime, before: int | None
) -> SyncRecord | None:
    """The latest sync of *source* among a book's syncs *of* at *at*, before merge *before*."""
    syncs = of.get(source, ())
    if before is not None:
        syncs = syncs[: bisect_left(syncs, before, key=lambda s: s.seq)]
    return at_or_before(syncs, at, lambda s: s.applied_at)


def _reading_sync(
    book: Book, source: str, version: RecordVersion, at: datetime, before: int | None
) -> SyncRecord | None:
    """The latest sync of *source* at *at* (before merge *before*) that read *version* again."""
    sync = _latest_sync(book, source, at, before)
    if sync is not None and sync.seq < version.sync:
        return None  # no sync read this version again: the merge that applied it is named
    return sync


def source_provenance(
    book: Book,
    state: RecordState,
    version: RecordVersion,
    at: datetime,
    before: int | None = None,
) -> Provenance:
    """Where *version*'s data came from, as of *at*.

    The latest sync of the source at *at* read the record again, so it is the
    one named; for a departed record (*before* = the departing merge) it is the
    last sync before it left.
    """
    sync = _reading_sync(book, state.source, version, at, before)
    return _version_provenance(state.source, state.key, version, sync)


def override_provenance(override: Override) -> Provenance:
    """Where an overridden value came from: the edit, who made it and when."""
    return _provenance(
        ProvenanceKind.OVERRIDE,
        override.source,
        split_record_id(override.record)[1],
        override.set_at,
        None,
        override.set_at,
        None,
        override.set_by,
    )


DEFAULT_PROVENANCE: Final = Provenance(ProvenanceKind.DEFAULT)


#: The latest sync of a source (before a merge) at one time, by (source, merge), for one reader.
SyncsAt = dict[tuple[str, int | None], SyncRecord | None]


def origin_provenance(
    book: Book, origin: Origin, at: datetime, syncs_at: SyncsAt | None = None
) -> Provenance:
    """The provenance, as of *at*, of a value that came from *origin*.

    *syncs_at* keeps, across the calls of one reader at one time, the
    latest sync of each source that it looked up.
    """
    if isinstance(origin, SourceOrigin) and syncs_at is None:
        source, key, version, before = origin
        sync = _reading_sync(book, source, version, at, before)
        return _version_provenance(source, key, version, sync)
    syncs = {} if syncs_at is None else syncs_at
    return provenance_of(origin, origin_sync(book.syncs, origin, at, syncs))


def origin_sync(
    of: Mapping[str, tuple[SyncRecord, ...]], origin: Origin, at: datetime, syncs_at: SyncsAt
) -> SyncRecord | None:
    """The sync that the provenance of *origin* as of *at* names (None: its own merge, or none).

    All that :func:`provenance_of` needs besides the origin, from a book's
    syncs *of* (which a book holds in memory, whatever its store).
    """
    if not isinstance(origin, SourceOrigin):
        return None
    source, _, version, before = origin
    if (source, before) in syncs_at:
        sync = syncs_at[source, before]
    else:
        sync = syncs_at[source, before] = latest_sync(of, source, at, before)
    if sync is not None and sync.seq < version.sync:
        return None
    return sync


def provenance_of(origin: Origin, sync: SyncRecord | None) -> Provenance:
    """The provenance of a value from *origin*, naming *sync* (from :func:`origin_sync`)."""
    if origin is None:
        return DEFAULT_PROVENANCE
    if isinstance(origin, SourceOrigin):
        return _version_provenance(origin.source, origin.key, origin.version, sync)
    return override_provenance(origin)


# -- which value wins --------------------------------------------------------------------

#: A record of a contact and its version at the time asked about.
_Present = tuple[RecordState, RecordVersion]


def _present(book: Book, contact_id: str, policy: Policy, at: datetime) -> list[_Present]:
    """The records that make up the contact at *at*, with their versions then, home first."""
    entry = book.contacts.get(contact_id)
    if entry is None:
        return []
    present: list[_Present] = []
    for m in entry.members:
        if not m.active_at(at):
            continue
        source, key = split_record_id(m.record)
        state = book.records.get(source, {}).get(key)
        if state is None:  # erased (rule 13)
            continue
        version = version_at(state, at)
        if version is not None:
            present.append((state, version))
    # Among local records (one may arrive with a link), the contact's own comes first.
    if len(present) > 1:
        present.sort(key=lambda sv: (policy.rank(sv[0].source), sv[0].key != contact_id))
    return present


def overrides_at(book: Book, contact_id: str, at: datetime) -> list[Override]:
    """The overrides of a contact in force at *at*, oldest first."""
    if contact_id not in book.overrides and contact_id not in book.ended_overrides:
        return []  # most contacts: never edited
    found = [o for o in book.overrides.get(contact_id, ()) if o.active_at(at)]
    found += [
        e.override
        for e in book.ended_overrides.get(contact_id, ())
        if e.override.active_at(at) and at < e.ended_at
    ]
    return sorted(found, key=lambda o: (o.set_at, o.field))


class Resolved(NamedTuple):
    """A contact at one time, as history says: each field's winning data and its origin.

    ``parts`` maps each field that has a value to the data it takes it from
    (the fields absent are empty); ``sources``: how many records' data supply
    values; ``active``: the overrides in force, oldest first.
    """

    home: RecordState
    home_version: RecordVersion
    parts: dict[str, ContactData]
    origins: dict[str, Origin]
    sources: int
    active: list[Override]


def resolve_history(book: Book, contact_id: str, policy: Policy, at: datetime) -> Resolved | None:
    """Which value of each field wins for *contact_id* at *at* (rule 1); None if it did not exist.

    The home's data for what it covers, then the other sources' in the
    policy's order, then the overrides in force. Links are not followed.
    """
    present = _present(book, contact_id, policy, at)
    if not present:
        return None
    home_state, home_version = present[0]
    parts: dict[str, ContactData] = {}
    origins: dict[str, Origin] = {}
    taken: list[ContactData] = []  # the data the values come from, one entry each
    for state, version in present:
        if version.data is not None:
            data = version.data
            origin = SourceOrigin(state.source, state.key, version, None)
        else:
            # The home owns what it covers, even when it left (rule 1), with
            # its last known values; a departed lower source stops filling.
            held = last_data(state, version) if state is home_state else None
            if held is None or held.data is None:
                continue
            data = held.data
            origin = SourceOrigin(state.source, state.key, held, version.sync)
        for name in policy.source(state.source).covers:
            if name not in parts:
                parts[name] = data
                origins[name] = origin
                if not taken or taken[-1] is not data:
                    taken.append(data)
    active = overrides_at(book, contact_id, at)
    for o in active:
        parts[o.field] = o.value
        origins[o.field] = o
    return Resolved(home_state, home_version, parts, origins, len(taken), active)
