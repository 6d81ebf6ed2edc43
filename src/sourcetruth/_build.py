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
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sourcetruth.model import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Provenance,
    ProvenanceKind,
    Record,
    Relationship,
    Role,
)

__all__ = ["contact_data", "email", "phone", "record", "relationship"]

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
