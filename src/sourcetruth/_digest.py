"""What a store keeps beside each record so a sync need not read it (package-private).

:func:`record_digest` is a short, stable name for the data of a record's
current version. A store keeps it beside each record, so that a full
snapshot is compared with what the book holds by digest first, and only the
records whose digest differs are read. It is BLAKE2b (16 bytes, in hex) of
a canonical text of the data: every field in the order of
:data:`~sourcetruth.model.FIELDS`, enums by value, written with
:func:`ascii` (every non-ASCII character escaped, so the text does not
depend on the Unicode tables of the Python that wrote it, nor on
``PYTHONHASHSEED``); names are taken in Unicode NFC, as they compare
(:mod:`sourcetruth._names`). Two equal values of the declared types give one
digest, and a digest equal to another says the data are equal; a value of
another type (``True`` for a priority of 1) may give another digest for
equal data, which costs a comparison, never a wrong answer (the sync
compares the data whenever digests differ).

The canonical text is written field by field (:func:`digest_of_parts`), so
that a reader that has checked each distinct cell of a column once can
digest a row from its cells' parts, before any object is built, and hand the
merge digests first (:class:`~sourcetruth.DigestedRecords`): the parts are
those :func:`record_digest` joins, so the two digests are one.

:func:`name_key` is a record's name as possible duplicates compare it (rule
12), in NFC and case-folded, so a store can find the records of one name by
an index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Final

from sourcetruth._names import name_text
from sourcetruth.digested import DigestedRecords
from sourcetruth.model import ContactData, EmailType, PhoneType, Record, Relationship

__all__ = [
    "DEPARTED",
    "digest_of_parts",
    "email_part",
    "name_key",
    "name_part",
    "named_digests",
    "phone_part",
    "record_digest",
    "relationship_part",
    "text_part",
]

_blake2b: Final = hashlib.blake2b


def text_part(value: str) -> str:
    """A text field's part of the canonical text."""
    return ascii(value)


def name_part(value: str) -> str:
    """A name's part of the canonical text: in NFC, as names compare (:mod:`._names`)."""
    return ascii(name_text(value))


def phone_part(number: str, type: PhoneType) -> str:
    """One phone's part of the canonical text (one item of the list of phones)."""
    return ascii((number, type.value))


def email_part(address: str, type: EmailType) -> str:
    """One email's part of the canonical text (one item of the list of emails)."""
    return ascii((address, type.value))


def relationship_part(relationship: Relationship) -> str:
    """One relationship's part of the canonical text (one item of the list of relationships)."""
    r = relationship
    return ascii((r.pupil, r.priority, r.parental_responsibility, r.receives_messages))


def digest_of_parts(
    given_name: str,
    family_name: str,
    role: str,
    phones: str,
    emails: str,
    relationships: str,
    year_group: str,
    registration_group: str,
) -> str:
    """The digest of the data whose fields' parts these are (each list's items joined by ", ").

    The parts are what :func:`text_part` and its siblings give, the role's
    that of ``text_part(role.value)``: a reader that checked each distinct
    cell once can digest a row from the cells' parts without building it.
    """
    canonical = _CANONICAL(
        given_name,
        family_name,
        role,
        phones,
        emails,
        relationships,
        year_group,
        registration_group,
    )
    return _blake2b(canonical.encode("ascii"), digest_size=16).hexdigest()


# The text ascii() gives of the tuple of fields (a list for each list field).
_CANONICAL: Final = "({}, {}, {}, [{}], [{}], [{}], {}, {})".format


def record_digest(data: ContactData | None) -> str:
    """The digest of a record version's *data* (None: the record is departed).

    Raises AttributeError for data whose enum fields hold something else.
    """
    if data is None:
        return _DEPARTED
    return digest_of_parts(
        name_part(data.given_name),
        name_part(data.family_name),
        ascii(data.role.value),
        ", ".join([phone_part(p.number, p.type) for p in data.phones]),
        ", ".join([email_part(e.address, e.type) for e in data.emails]),
        ", ".join([relationship_part(r) for r in data.relationships]),
        ascii(data.year_group),
        ascii(data.registration_group),
    )


_DEPARTED: Final = _blake2b(b"None", digest_size=16).hexdigest()

#: The digest of a departed record's data.
DEPARTED: Final = _DEPARTED


def named_digests(records: Sequence[Record]) -> Iterator[tuple[str, list[str] | None, str]]:
    """Each record's key, fields (sorted, or None for a whole record) and data digest, in order.

    What names a snapshot's records when it is hashed (the journal's input
    hash): digested records give theirs without being
    built, so both forms of one snapshot are named alike.
    """
    if isinstance(records, DigestedRecords):
        for key, digest in zip(records.keys, records.digests, strict=True):
            yield key, None, digest
        return
    for record in records:
        fields = None if record.fields is None else sorted(record.fields)
        yield record.key, fields, record_digest(record.data)


def name_key(data: ContactData | None) -> str:
    """*data*'s name, trimmed and case-folded, as one text ("" when departed or nameless)."""
    if data is None:
        return ""
    given = name_text(name_text(data.given_name).strip().casefold())
    family = name_text(name_text(data.family_name).strip().casefold())
    if not (given or family):
        return ""
    return ascii((given, family))
