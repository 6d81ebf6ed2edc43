"""Export the effective book as CSV, for a school to check or to load elsewhere.

One row per contact, the values in force at the time asked for: what a
message sent then would use. Phone numbers are written in E.164 where they
normalise (raw otherwise), so they load into any other system unchanged.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@``
as a formula (some after trimming spaces, tabs, line breaks and invisible
marks, some reading the full-width forms too), so a name like
``=HYPERLINK(...)`` typed into a source could run on the school's machine
when the export is opened. Every such cell is written with a leading
apostrophe, which spreadsheets read as "this is text"; the check looks past
the leading spacing and invisible characters a program might trim. The one
exception is a phone cell holding only E.164 numbers (``+447700900123;
+441632960001``): it has no letters, so it can name no function and no cell,
and it must stay usable as numbers by whatever loads the file (a spreadsheet
that opens the file directly shows such a cell as a number: import the
column as text). The neutralising happens here, on export only; the book
keeps values exactly as the sources gave them.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Final

from sourcetruth.adapters._files import write_atomic
from sourcetruth.adapters._util import csv_text
from sourcetruth.effective import contacts_at
from sourcetruth.exceptions import AdapterError
from sourcetruth.model import Book, Contact, PhoneType, record_id
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy

__all__ = ["COLUMNS", "export_csv", "neutralise", "write_export"]

#: The export's columns, in order. Several values in one cell are separated by "; ".
COLUMNS: Final = (
    "contact_id",
    "home",
    "role",
    "given_name",
    "family_name",
    "year_group",
    "registration_group",
    "mobile_phones",
    "other_phones",
    "emails",
    "guardian_of",
    "departed_at",
)

# The four formula starters, their full-width forms, and the tab and line
# breaks that some programs read as the start of a cell.
_TRIGGERS: Final = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def _first_significant(cell: str) -> str:
    """The first character a spreadsheet acts on: spacing and invisible marks skipped."""
    for char in cell:
        if char in _TRIGGERS:
            return char
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs"):
            continue  # some programs trim these before reading a formula
        return char
    return ""


_E164_LIST: Final = re.compile(r"\+[1-9]\d{1,14}(; \+[1-9]\d{1,14})*")
_PHONE_COLUMNS: Final = frozenset({"mobile_phones", "other_phones"})


def neutralise(cell: str, *, column: str = "") -> str:
    """*cell* made safe to open in a spreadsheet (see the module's documentation)."""
    if _first_significant(cell) not in _TRIGGERS:
        return cell
    if column in _PHONE_COLUMNS and _E164_LIST.fullmatch(cell):
        return cell
    return "'" + cell


def _row(contact: Contact, region: str) -> dict[str, str]:
    data = contact.data

    def phone(number: str) -> str:
        return normalise_phone(number, region).comparable(number)

    def email(address: str) -> str:
        return normalise_email(address).comparable(address)

    mobiles = [phone(p.number) for p in data.phones if p.type is PhoneType.MOBILE]
    others = [phone(p.number) for p in data.phones if p.type is not PhoneType.MOBILE]
    departed = "" if contact.departed_at is None else contact.departed_at.isoformat()
    # A relationship names a pupil by its key in the source that gave it; the
    # export names the pupil's contact id, which the contact_id column matches.
    pupils_from = contact.provenance["relationships"].source
    return {
        "contact_id": contact.id,
        "home": contact.home,
        "role": data.role.value,
        "given_name": data.given_name,
        "family_name": data.family_name,
        "year_group": data.year_group,
        "registration_group": data.registration_group,
        "mobile_phones": "; ".join(dict.fromkeys(mobiles)),
        "other_phones": "; ".join(dict.fromkeys(others)),
        "emails": "; ".join(dict.fromkeys(email(e.address) for e in data.emails)),
        "guardian_of": "; ".join(
            r.pupil if pupils_from is None else record_id(pupils_from, r.pupil)
            for r in data.relationships
        ),
        "departed_at": departed,
    }


def export_csv(book: Book, *, policy: Policy, at: datetime, include_departed: bool = False) -> str:
    """The book's effective contacts at *at* as CSV text (header first, CRLF lines).

    Rows are sorted by contact id, so the same book gives the same bytes.
    Departed contacts are left out unless *include_departed*.
    """
    rows = (
        _row(contact, policy.region_of(contact.provenance["phones"].source))
        for contact in contacts_at(book, policy=policy, at=at)
        if include_departed or not contact.departed
    )
    return csv_text(
        COLUMNS, ([neutralise(row[column], column=column) for column in COLUMNS] for row in rows)
    )


def write_export(
    path: str | os.PathLike[str],
    book: Book,
    *,
    policy: Policy,
    at: datetime,
    include_departed: bool = False,
) -> None:
    """Write :func:`export_csv` to *path* as UTF-8 with a byte-order mark.

    The mark is what makes spreadsheet programs read the file as UTF-8
    rather than the machine's legacy code page. The file is written to a
    temporary name beside *path* and then moved into place, so a reader
    never sees half an export. It holds the book's personal data, so it is
    readable by its owner only.
    """
    target = Path(path)
    text = export_csv(book, policy=policy, at=at, include_departed=include_departed)
    try:
        write_atomic(target, b"\xef\xbb\xbf" + text.encode("utf-8"))
    except OSError as error:
        msg = f"cannot write the export to {os.fspath(target)}: {error.strerror}"
        raise AdapterError(msg) from None
