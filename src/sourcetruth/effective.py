"""The effective contact at any time, and why each value is what it is (rules 1, 8, 10).

A book keeps history: record versions, overrides, links. From it this module
answers for any time, past or present: which records make up a contact then,
which value of each field wins (the home's for what it covers, then the
other sources in the policy's order, then overrides in force), and where
that value came from (:class:`~sourcetruth.Provenance`, built from a record
version in one place, :func:`record_provenance`). :func:`explain` adds the
overrides that touched a field and the later change the time asked about did
not yet include. :func:`comparable` is the form in which values are compared.

The merge, the audiences and the worklists read contacts through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

import attrs
from attrs import frozen

from sourcetruth._util import at_or_before
from sourcetruth.exceptions import UnknownContactError
from sourcetruth.model import (
    FIELDS,
    Book,
    Contact,
    ContactData,
    EndedOverride,
    Override,
    Provenance,
    ProvenanceKind,
    RecordState,
    RecordVersion,
    SyncRecord,
    check_fields,
    data_from,
    split_record_id,
    utc,
)
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy

__all__ = [
    "Explanation",
    "OverrideEvent",
    "comparable",
    "contact_at",
    "contacts_at",
    "effective_contact",
    "explain",
    "last_data",
    "record_provenance",
    "resolve_id",
    "source_provenance",
    "version_at",
]


def comparable(field_name: str, value: Any, region: str = "GB") -> Any:
    """The form of a field value used to decide whether it changed (rule 10).

    Phone numbers compare in E.164 and email addresses with the domain
    case-folded and trimmed, each with its type and in order; a value that
    does not normalise compares by its trimmed raw text.
    """
    if field_name == "phones":
        return tuple(
            (p.type, normalise_phone(p.number, region).comparable(p.number)) for p in value
        )
    if field_name == "emails":
        return tuple((e.type, normalise_email(e.address).comparable(e.address)) for e in value)
    if isinstance(value, str):
        return value.strip()
    return value


# -- a record's history ----------------------------------------------------------------


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


def record_provenance(
    state: RecordState, version: RecordVersion, sync: SyncRecord | None = None
) -> Provenance:
    """Where *version* of a record came from: the one place such a provenance is built.

    ``since`` is when the version was applied; the read it names is *sync*
    (a later sync of the source that read the record again), or without one
    the merge that applied the version.
    """
    if sync is None:
        read_at, applied_at, seq, by = (
            version.extracted_at,
            version.applied_at,
            version.sync,
            version.by,
        )
    else:
        read_at, applied_at, seq, by = sync.extracted_at, sync.applied_at, sync.seq, sync.by
    return Provenance(
        ProvenanceKind.SOURCE,
        state.source,
        state.key,
        since=version.applied_at,
        read_at=read_at,
        applied_at=applied_at,
        sync=seq,
        by=by,
    )


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
    syncs = book.syncs.get(state.source, ())
    if before is not None:
        syncs = tuple(s for s in syncs if s.seq < before)
    sync = at_or_before(syncs, at, lambda s: s.applied_at)
    if sync is not None and sync.seq < version.sync:
        sync = None  # no sync read this version again: the merge that applied it is named
    return record_provenance(state, version, sync)


def _override_provenance(override: Override) -> Provenance:
    return Provenance(
        ProvenanceKind.OVERRIDE,
        override.source,
        split_record_id(override.record)[1],
        since=override.set_at,
        applied_at=override.set_at,
        by=override.set_by,
    )


_DEFAULT: Final = Provenance(ProvenanceKind.DEFAULT)


# -- the effective contact ---------------------------------------------------------------

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


def _covered(
    book: Book, present: list[_Present], policy: Policy, at: datetime
) -> tuple[dict[str, ContactData], dict[str, Provenance], int]:
    """Each covered field's winning record data and its provenance (rule 1).

    Returns the data each field takes its value from, the provenance of each,
    and how many records' data supply values.
    """
    home_state = present[0][0]
    parts: dict[str, ContactData] = {}
    provenance: dict[str, Provenance] = {}
    taken: list[ContactData] = []  # the data the values come from, one entry each
    for state, version in present:
        if version.data is not None:
            data = version.data
            prov = source_provenance(book, state, version, at)
        else:
            # The home owns what it covers, even when it left (rule 1), with
            # its last known values; a departed lower source stops filling.
            held = last_data(state, version) if state is home_state else None
            if held is None or held.data is None:
                continue
            data = held.data
            prov = source_provenance(book, state, held, at, before=version.sync)
        for name in policy.source(state.source).covers:
            if name not in parts:
                parts[name] = data
                provenance[name] = prov
                if not taken or taken[-1] is not data:
                    taken.append(data)
    return parts, provenance, len(taken)


def _overrides_at(book: Book, contact_id: str, at: datetime) -> list[Override]:
    if contact_id not in book.overrides and contact_id not in book.ended_overrides:
        return []  # most contacts: never edited
    found = [o for o in book.overrides.get(contact_id, ()) if o.active_at(at)]
    found += [
        e.override
        for e in book.ended_overrides.get(contact_id, ())
        if e.override.active_at(at) and at < e.ended_at
    ]
    return sorted(found, key=lambda o: (o.set_at, o.field))


def effective_contact(book: Book, contact_id: str, policy: Policy, at: datetime) -> Contact | None:
    """The contact *contact_id* at *at* (a UTC time), or None if it did not exist then.

    Links are not followed: :func:`contact_at` does that.
    """
    present = _present(book, contact_id, policy, at)
    if not present:
        return None
    parts, provenance, sources = _covered(book, present, policy, at)
    active = _overrides_at(book, contact_id, at)
    for o in active:
        parts[o.field] = o.value
        provenance[o.field] = _override_provenance(o)
    home_state, home_version = present[0]
    departed = home_version.data is None
    # Most contacts take every field from their home record: that record's
    # data is then the effective data, with no copy to make.
    whole = sources == 1 and len(parts) == len(FIELDS) and not active
    return Contact(
        id=contact_id,
        home=home_state.id,
        data=parts[FIELDS[0]] if whole else data_from(parts),
        provenance={name: provenance.get(name, _DEFAULT) for name in FIELDS},
        departed=departed,
        departed_at=home_version.applied_at if departed else None,
        overrides=tuple(active),
    )


def contact_at(book: Book, contact_id: str, *, policy: Policy, at: datetime) -> Contact:
    """The effective contact at *at*, past or present (links followed)."""
    at = utc(at)
    contact = effective_contact(book, resolve_id(book, contact_id, at), policy, at)
    if contact is None:
        msg = f"the book holds no contact {contact_id!r} at that time"
        raise UnknownContactError(msg)
    return contact


def contacts_at(book: Book, *, policy: Policy, at: datetime) -> Iterator[Contact]:
    """Every contact that exists at *at*, departed ones included, by id."""
    at = utc(at)
    for cid in sorted(book.contacts):
        contact = effective_contact(book, cid, policy, at)
        if contact is not None:
            yield contact


# -- explain -------------------------------------------------------------------------


@frozen
class OverrideEvent:
    """An override that touched a field: in force at the time asked, or ended and how."""

    override: Override
    ended: EndedOverride | None


@frozen
class Explanation:
    """Why a field has its value at a time (rule 8).

    ``value``/``provenance``: the effective value and where it came from.
    ``overrides``: every override on this field set up to that time, with its
    outcome if it has ended. ``later``: the first later version of the home
    record with a different value for this field (the change the asked time
    did not yet include), if the book has one.
    """

    contact_id: str
    field: str
    at: datetime = attrs.field(converter=utc)
    value: ContactData
    provenance: Provenance
    overrides: tuple[OverrideEvent, ...]
    later: Provenance | None
    later_value: ContactData | None

    @property
    def effective_value(self) -> Any:
        return self.value.get(self.field)


def _events(book: Book, contact_id: str, field_name: str, at: datetime) -> list[OverrideEvent]:
    """The overrides of one field of a contact set up to *at*, ended or not, oldest first."""
    events = [
        OverrideEvent(e.override, e)
        for e in book.ended_overrides.get(contact_id, ())
        if e.override.field == field_name and e.override.set_at <= at
    ]
    events += [
        OverrideEvent(o, None)
        for o in book.overrides.get(contact_id, ())
        if o.field == field_name and o.set_at <= at
    ]
    events.sort(key=lambda ev: ev.override.set_at)
    return events


def _later(
    book: Book, contact: Contact, field_name: str, region: str, at: datetime
) -> tuple[Provenance | None, ContactData | None]:
    """The first version after *at* of the record a field's value came from that differs."""
    prov = contact.provenance[field_name]
    if prov.source is None or prov.record_key is None:
        return None, None
    state = book.records[prov.source][prov.record_key]
    now = comparable(field_name, contact.data.get(field_name), region)
    for version in state.versions:
        if version.applied_at <= at or version.data is None:
            continue
        value = version.data.get(field_name)
        if comparable(field_name, value, region) != now:
            later = source_provenance(book, state, version, version.applied_at)
            return later, version.data.only((field_name,))
    return None, None


def explain(
    book: Book, contact_id: str, field_name: str, *, policy: Policy, at: datetime
) -> Explanation:
    """The value of one field at *at*, where it came from, and what touched it."""
    check_fields((field_name,))
    contact = contact_at(book, contact_id, policy=policy, at=at)
    at = utc(at)
    events = _events(book, contact.id, field_name, at)
    later, later_value = _later(book, contact, field_name, policy.default_region, at)
    return Explanation(
        contact_id=contact.id,
        field=field_name,
        at=at,
        value=contact.data.only((field_name,)),
        provenance=contact.provenance[field_name],
        overrides=tuple(events),
        later=later,
        later_value=later_value,
    )
