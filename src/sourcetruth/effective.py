"""The effective contact at any time, and why each value is what it is (rules 1, 8, 10).

A book keeps history: record versions, overrides, links. From it this module
answers for any time, past or present: which records make up a contact then,
which value of each field wins (the home's for what it covers, then the
other sources in the policy's order, then overrides in force), and where
that value came from (:class:`~sourcetruth.Provenance`, built from a record
version in one place, :func:`record_provenance`). :func:`explain` adds the
overrides that touched a field and the later change the time asked about did
not yet include. :func:`comparable` is the form in which values are compared.

For a time at or after the book's last merge, :func:`contact_at` and
:func:`contacts_at` read the current view that the merge keeps
(:mod:`sourcetruth.view`) where it holds, and history otherwise: the same
answer either way. The merge, the audiences and the worklists read contacts
through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs
from attrs import frozen

from sourcetruth._history import (
    last_data,
    origin_provenance,
    record_provenance,
    resolve_history,
    resolve_id,
    source_provenance,
    version_at,
)
from sourcetruth._names import NAME_FIELDS, name_text
from sourcetruth.exceptions import UnknownContactError
from sourcetruth.model import (
    FIELDS,
    Book,
    Contact,
    ContactData,
    EndedOverride,
    Override,
    Provenance,
    check_fields,
    data_from,
    utc,
)
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy
from sourcetruth.view import entry_holds, view_is_current

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
    does not normalise compares by its trimmed raw text. Names compare
    trimmed, in Unicode NFC.
    """
    if field_name == "phones":
        return tuple(
            (p.type, normalise_phone(p.number, region).comparable(p.number)) for p in value
        )
    if field_name == "emails":
        return tuple((e.type, normalise_email(e.address).comparable(e.address)) for e in value)
    if field_name in NAME_FIELDS:
        return name_text(value.strip())
    if isinstance(value, str):
        return value.strip()
    return value


# -- the effective contact ---------------------------------------------------------------


def effective_contact(book: Book, contact_id: str, policy: Policy, at: datetime) -> Contact | None:
    """The contact *contact_id* at *at* (a UTC time), read from history; None if it did not exist.

    Links are not followed: :func:`contact_at` does that.
    """
    resolved = resolve_history(book, contact_id, policy, at)
    if resolved is None:
        return None
    home_state, home_version, parts, origins, sources, active = resolved
    departed = home_version.data is None
    # Most contacts take every field from their home record: that record's
    # data is then the effective data, with no copy to make.
    whole = sources == 1 and len(parts) == len(FIELDS) and not active
    made: dict[int, Provenance] = {}
    provenance = {}
    for name in FIELDS:
        origin = origins.get(name)
        found = made.get(id(origin))
        if found is None:
            found = made[id(origin)] = origin_provenance(book, origin, at)
        provenance[name] = found
    return Contact(
        id=contact_id,
        home=home_state.id,
        data=parts[FIELDS[0]] if whole else data_from(parts),
        provenance=provenance,
        departed=departed,
        departed_at=home_version.applied_at if departed else None,
        overrides=tuple(active),
    )


def _current(book: Book, contact_id: str, policy: Policy, at: datetime) -> Contact | None:
    """:func:`effective_contact`, from the current view when it answers for *at*."""
    if view_is_current(book, policy, at):
        entry = book.view.get(contact_id)
        if entry is None:
            return None
        if entry_holds(entry, at):
            return entry.contact(book, at)  # type: ignore[no-any-return]
    return effective_contact(book, contact_id, policy, at)


def contact_at(book: Book, contact_id: str, *, policy: Policy, at: datetime) -> Contact:
    """The effective contact at *at*, past or present (links followed)."""
    at = utc(at)
    contact = _current(book, resolve_id(book, contact_id, at), policy, at)
    if contact is None:
        msg = f"the book holds no contact {contact_id!r} at that time"
        raise UnknownContactError(msg)
    return contact


def contacts_at(book: Book, *, policy: Policy, at: datetime) -> Iterator[Contact]:
    """Every contact that exists at *at*, departed ones included, by id."""
    at = utc(at)
    for cid in sorted(book.contacts):
        contact = _current(book, cid, policy, at)
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
    region = policy.region_of(contact.provenance[field_name].source)
    later, later_value = _later(book, contact, field_name, region, at)
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
