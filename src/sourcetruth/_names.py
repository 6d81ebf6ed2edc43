"""Names compare as text, not as code points (package-private).

A name can reach the book in two Unicode forms that a person cannot tell
apart: composed (NFC, "é" as one code point) and decomposed (NFD, "e" and a
combining accent), as macOS file systems and some exports write it. The book
stores a name as the source sent it; wherever it decides whether a name
changed (a sync's comparison of records, the record digest, the name that
possible duplicates share, the report's field changes) it compares the NFC
form, so the two spellings of one name are no change.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import attrs

from sourcetruth.model import ContactData

__all__ = ["NAME_FIELDS", "name_text", "same_data"]

#: The fields that hold a person's name.
NAME_FIELDS: Final = ("given_name", "family_name")


def name_text(value: str) -> str:
    """*value* in Unicode NFC, the form in which names compare."""
    if value.isascii():
        return value  # nearly every name, and already NFC: spare the look-up
    return unicodedata.normalize("NFC", value)


def _names_in_nfc(data: ContactData) -> ContactData:
    return attrs.evolve(
        data, given_name=name_text(data.given_name), family_name=name_text(data.family_name)
    )


def same_data(old: ContactData | None, new: ContactData | None) -> bool:
    """Whether *old* and *new* are the same data, their names compared in NFC."""
    if old == new:
        return True
    if old is None or new is None:
        return False
    names = (old.given_name, old.family_name, new.given_name, new.family_name)
    if all(name.isascii() for name in names):
        return False  # ASCII names are their own NFC: the data differ elsewhere
    return _names_in_nfc(old) == _names_in_nfc(new)
