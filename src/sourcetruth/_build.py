"""Model values built from parts already checked: the readers' bulk path (package-private).

A reader of a million rows builds a million records, each with its contact
data, phones and emails. The public constructors check every value (its
type, a tuple of the right things) and that is right for everyone else; a
reader that made each part itself, of the right type, from its own checked
parsing would only pay for those checks again. These builders set the slots
directly, as :func:`sourcetruth.model.data_from` does, and give values equal
to (and hashing as) what the public constructors give for the same parts: a
property test compares the two.

The caller's promise is the constructors' checks: strings where a field holds
text, the enum members, tuples of the model's own classes, and for
:func:`record` a ``fields`` that is None or a non-empty frozenset of
:data:`~sourcetruth.model.FIELDS`.

The merge has the same bulk path: an initial sync makes, for every contact,
its record's first version and state, its membership and entry, and the
report's field changes, each one-field :class:`~sourcetruth.ContactData`
(:func:`only`). Their times are the merge's own, already in UTC, and their
values come from the model's checked values, so the builders below take
them as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sourcetruth.model import (
    FIELDS,
    ContactData,
    ContactEntry,
    Email,
    EmailType,
    Membership,
    Phone,
    PhoneType,
    Provenance,
    ProvenanceKind,
    Record,
    RecordState,
    RecordVersion,
    Relationship,
    Role,
)
from sourcetruth.report import FieldChange

__all__ = [
    "contact_data",
    "contact_entry",
    "email",
    "field_change",
    "membership",
    "only",
    "only_fields",
    "phone",
    "record",
    "record_state",
    "record_version",
    "relationship",
]

_new = object.__new__
_put = object.__setattr__


def _setter(cls: type, name: str) -> Any:
    # The slot's own descriptor: no attribute lookup by name, no frozen check.
    return cls.__dict__[name].__set__


_phone_number: Final = _setter(Phone, "number")
_phone_type: Final = _setter(Phone, "type")
_email_address: Final = _setter(Email, "address")
_email_type: Final = _setter(Email, "type")
_pupil: Final = _setter(Relationship, "pupil")
_priority: Final = _setter(Relationship, "priority")
_responsible: Final = _setter(Relationship, "parental_responsibility")
_receives: Final = _setter(Relationship, "receives_messages")
_given: Final = _setter(ContactData, "given_name")
_family: Final = _setter(ContactData, "family_name")
_role: Final = _setter(ContactData, "role")
_phones: Final = _setter(ContactData, "phones")
_emails: Final = _setter(ContactData, "emails")
_relationships: Final = _setter(ContactData, "relationships")
_year: Final = _setter(ContactData, "year_group")
_registration: Final = _setter(ContactData, "registration_group")
_key: Final = _setter(Record, "key")
_data: Final = _setter(Record, "data")
_fields: Final = _setter(Record, "fields")
_version_data: Final = _setter(RecordVersion, "data")
_version_applied: Final = _setter(RecordVersion, "applied_at")
_version_extracted: Final = _setter(RecordVersion, "extracted_at")
_version_sync: Final = _setter(RecordVersion, "sync")
_version_by: Final = _setter(RecordVersion, "by")
_state_source: Final = _setter(RecordState, "source")
_state_key: Final = _setter(RecordState, "key")
_state_contact: Final = _setter(RecordState, "contact_id")
_state_versions: Final = _setter(RecordState, "versions")
_member_record: Final = _setter(Membership, "record")
_member_since: Final = _setter(Membership, "since")
_member_until: Final = _setter(Membership, "until")
_entry_id: Final = _setter(ContactEntry, "id")
_entry_members: Final = _setter(ContactEntry, "members")
_entry_redirects: Final = _setter(ContactEntry, "redirects")
_change_contact: Final = _setter(FieldChange, "contact_id")
_change_field: Final = _setter(FieldChange, "field")
_change_before: Final = _setter(FieldChange, "before")
_change_after: Final = _setter(FieldChange, "after")
_change_before_provenance: Final = _setter(FieldChange, "before_provenance")
_change_after_provenance: Final = _setter(FieldChange, "after_provenance")
#: Each field's slot setter and empty value, in the order of FIELDS.
_EMPTY_SLOTS: Final = tuple(
    (_setter(ContactData, name), getattr(ContactData(), name)) for name in FIELDS
)
_SLOT: Final = {name: _setter(ContactData, name) for name in FIELDS}


def phone(number: str, type: PhoneType) -> Phone:
    """``Phone(number, type)`` without its checks."""
    value: Phone = _new(Phone)
    _phone_number(value, number)
    _phone_type(value, type)
    return value


def email(address: str, type: EmailType) -> Email:
    """``Email(address, type)`` without its checks."""
    value: Email = _new(Email)
    _email_address(value, address)
    _email_type(value, type)
    return value


def relationship(pupil: str) -> Relationship:
    """``Relationship(pupil)``, every other attribute its default."""
    value: Relationship = _new(Relationship)
    _pupil(value, pupil)
    _priority(value, 1)
    _responsible(value, True)
    _receives(value, True)
    return value


def contact_data(
    given_name: str,
    family_name: str,
    role: Role,
    phones: tuple[Phone, ...],
    emails: tuple[Email, ...],
    relationships: tuple[Relationship, ...],
    year_group: str,
    registration_group: str,
) -> ContactData:
    """``ContactData(...)`` of every field, without its conversions and checks."""
    data: ContactData = _new(ContactData)
    _given(data, given_name)
    _family(data, family_name)
    _role(data, role)
    _phones(data, phones)
    _emails(data, emails)
    _relationships(data, relationships)
    _year(data, year_group)
    _registration(data, registration_group)
    return data


def record(key: str, data: ContactData, fields: frozenset[str] | None = None) -> Record:
    """``Record(key, data, fields)`` without its checks."""
    value: Record = _new(Record)
    _key(value, key)
    _data(value, data)
    _fields(value, fields)
    return value


def provenance(
    kind: ProvenanceKind,
    source: str | None,
    key: str | None,
    since: datetime | None,
    read_at: datetime | None,
    applied_at: datetime | None,
    sync: int | None,
    by: str | None,
) -> Provenance:
    """``Provenance(...)`` from times the model already holds in UTC, without its converters.

    The current view and history build one per field asked about, and a plan
    one per contact reached.
    """
    made: Provenance = _new(Provenance)
    _put(made, "kind", kind)
    _put(made, "source", source)
    _put(made, "record_key", key)
    _put(made, "since", since)
    _put(made, "read_at", read_at)
    _put(made, "applied_at", applied_at)
    _put(made, "sync", sync)
    _put(made, "by", by)
    return made


def only(data: ContactData, name: str) -> ContactData:
    """``data.only((name,))`` for one field *name* of :data:`~sourcetruth.model.FIELDS`."""
    made: ContactData = _new(ContactData)
    for put, empty in _EMPTY_SLOTS:
        put(made, empty)
    _SLOT[name](made, getattr(data, name))
    return made


def only_fields(data: ContactData, keep: tuple[bool, ...]) -> ContactData:
    """``data.only(names)`` of the fields whose flag in *keep* (one per FIELDS, in order) is set."""
    made: ContactData = _new(ContactData)
    for (put, empty), name, kept in zip(_EMPTY_SLOTS, FIELDS, keep, strict=True):
        put(made, getattr(data, name) if kept else empty)
    return made


def record_version(
    data: ContactData | None, applied_at: datetime, extracted_at: datetime, sync: int, by: str
) -> RecordVersion:
    """``RecordVersion(...)`` from times already in UTC, without its converters."""
    made: RecordVersion = _new(RecordVersion)
    _version_data(made, data)
    _version_applied(made, applied_at)
    _version_extracted(made, extracted_at)
    _version_sync(made, sync)
    _version_by(made, by)
    return made


def record_state(
    source: str, key: str, contact_id: str, versions: tuple[RecordVersion, ...]
) -> RecordState:
    """``RecordState(...)`` from a tuple of versions, without its converter."""
    made: RecordState = _new(RecordState)
    _state_source(made, source)
    _state_key(made, key)
    _state_contact(made, contact_id)
    _state_versions(made, versions)
    return made


def membership(record: str, since: datetime) -> Membership:
    """``Membership(record, since)`` (open-ended) from a time already in UTC."""
    made: Membership = _new(Membership)
    _member_record(made, record)
    _member_since(made, since)
    _member_until(made, None)
    return made


def contact_entry(contact_id: str, members: tuple[Membership, ...]) -> ContactEntry:
    """``ContactEntry(contact_id, members)`` (no redirects) from a tuple, without its converters."""
    made: ContactEntry = _new(ContactEntry)
    _entry_id(made, contact_id)
    _entry_members(made, members)
    _entry_redirects(made, ())
    return made


def field_change(
    contact_id: str,
    name: str,
    before: ContactData | None,
    after: ContactData,
    before_provenance: Provenance | None,
    after_provenance: Provenance,
) -> FieldChange:
    """``FieldChange(...)`` (it has no checks: this only sets its slots the short way)."""
    made: FieldChange = _new(FieldChange)
    _change_contact(made, contact_id)
    _change_field(made, name)
    _change_before(made, before)
    _change_after(made, after)
    _change_before_provenance(made, before_provenance)
    _change_after_provenance(made, after_provenance)
    return made
