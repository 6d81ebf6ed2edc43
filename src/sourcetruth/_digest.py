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

:func:`name_key` is a record's name as possible duplicates compare it (rule
12), in NFC and case-folded, so a store can find the records of one name by
an index.
"""

from __future__ import annotations

import hashlib
from typing import Final

from sourcetruth._names import name_text
from sourcetruth.model import ContactData

__all__ = ["DEPARTED", "name_key", "record_digest"]

_blake2b: Final = hashlib.blake2b


def _canonical(data: ContactData | None) -> str:
    if data is None:
        return "None"
    return ascii(
        (
            name_text(data.given_name),
            name_text(data.family_name),
            data.role.value,
            [(p.number, p.type.value) for p in data.phones],
            [(e.address, e.type.value) for e in data.emails],
            [
                (r.pupil, r.priority, r.parental_responsibility, r.receives_messages)
                for r in data.relationships
            ],
            data.year_group,
            data.registration_group,
        )
    )


def record_digest(data: ContactData | None) -> str:
    """The digest of a record version's *data* (None: the record is departed).

    Raises AttributeError for data whose enum fields hold something else.
    """
    return _blake2b(_canonical(data).encode("ascii"), digest_size=16).hexdigest()


#: The digest of a departed record's data.
DEPARTED: Final = record_digest(None)


def name_key(data: ContactData | None) -> str:
    """*data*'s name, trimmed and case-folded, as one text ("" when departed or nameless)."""
    if data is None:
        return ""
    given = name_text(name_text(data.given_name).strip().casefold())
    family = name_text(name_text(data.family_name).strip().casefold())
    if not (given or family):
        return ""
    return ascii((given, family))
