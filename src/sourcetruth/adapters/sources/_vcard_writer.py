"""Writing vCard 3.0 and 4.0 (package-private): :func:`format_vcards`, for the vCard adapter.

Values are escaped and lines folded as RFC 6350 asks; the fields vCard has
no property for go out as the library's ``X-SOURCETRUTH-*`` properties
(:mod:`~sourcetruth.adapters.sources._vcard_format`), which the reader
(:mod:`~sourcetruth.adapters.sources.vcard`) takes back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Final

from sourcetruth.adapters.sources._vcard_format import (
    CHILD as _CHILD,
)
from sourcetruth.adapters.sources._vcard_format import (
    MESSAGES as _MESSAGES,
)
from sourcetruth.adapters.sources._vcard_format import (
    PRIORITY as _PRIORITY,
)
from sourcetruth.adapters.sources._vcard_format import (
    REGISTRATION_GROUP as _REGISTRATION_GROUP,
)
from sourcetruth.adapters.sources._vcard_format import (
    RESPONSIBILITY as _RESPONSIBILITY,
)
from sourcetruth.adapters.sources._vcard_format import (
    ROLE as _ROLE,
)
from sourcetruth.adapters.sources._vcard_format import (
    YEAR_GROUP as _YEAR_GROUP,
)
from sourcetruth.exceptions import UsageError
from sourcetruth.model import EmailType, PhoneType, Record

__all__ = ["check_version", "format_vcards"]

#: The versions written.
_WRITE_VERSIONS: Final = ("3.0", "4.0")

#: RFC 6350 3.2: lines SHOULD NOT be longer than 75 octets, line break excluded.
_FOLD_AT: Final = 75

_PHONE_TYPE_OUT: Final = {
    PhoneType.MOBILE: "cell",
    PhoneType.HOME: "home",
    PhoneType.WORK: "work",
    # An untyped TEL would read as "other" too; "voice" tells other programs
    # that it is a number to call.
    PhoneType.OTHER: "voice",
}
_EMAIL_TYPE_OUT: Final = {EmailType.HOME: "home", EmailType.WORK: "work", EmailType.OTHER: ""}


def _escape(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def _fold(line: str) -> str:
    """*line* folded so that no physical line is over 75 octets; characters stay whole."""
    if len(line.encode("utf-8")) <= _FOLD_AT:
        return line
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    limit = _FOLD_AT
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size, limit = [], 0, _FOLD_AT - 1  # the leading space counts
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def _is_uuid(key: str) -> bool:
    try:
        return str(uuid.UUID(key)) == key
    except ValueError:
        return False


def _uid_line(key: str, version: str) -> str:
    if version == "4.0":
        # UID is a URI in 4.0: a UUID goes as urn:uuid:, any other key as text.
        return f"UID:urn:uuid:{key}" if _is_uuid(key) else f"UID;VALUE=text:{_escape(key)}"
    if key[:9].lower() == "urn:uuid:":
        return f"UID;VALUE=text:{_escape(key)}"  # so that reading keeps the prefix
    return f"UID:{_escape(key)}"


def _card_lines(record: Record, version: str) -> list[str]:
    data = record.data
    lines = ["BEGIN:VCARD", f"VERSION:{version}", _uid_line(record.key, version)]
    display = " ".join(part for part in (data.given_name, data.family_name) if part)
    lines.append(f"FN:{_escape(display)}")
    lines.append(f"N:{_escape(data.family_name)};{_escape(data.given_name)};;;")
    for phone in data.phones:
        value_text = (
            ";VALUE=text" if version == "4.0" and phone.number[:4].lower() == "tel:" else ""
        )
        lines.append(f"TEL;TYPE={_PHONE_TYPE_OUT[phone.type]}{value_text}:{_escape(phone.number)}")
    for email in data.emails:
        kind = _EMAIL_TYPE_OUT[email.type]
        lines.append(f"EMAIL{';TYPE=' + kind if kind else ''}:{_escape(email.address)}")
    for relationship in data.relationships:
        params = (
            f"{_PRIORITY}={relationship.priority};"
            f"{_RESPONSIBILITY}={str(relationship.parental_responsibility).lower()};"
            f"{_MESSAGES}={str(relationship.receives_messages).lower()}"
        )
        head = (
            f"RELATED;TYPE=child;VALUE=text;{params}" if version == "4.0" else f"{_CHILD};{params}"
        )
        lines.append(f"{head}:{_escape(relationship.pupil)}")
    lines.append(f"{_ROLE}:{data.role.value}")
    if data.year_group:
        lines.append(f"{_YEAR_GROUP}:{_escape(data.year_group)}")
    if data.registration_group:
        lines.append(f"{_REGISTRATION_GROUP}:{_escape(data.registration_group)}")
    lines.append("END:VCARD")
    return lines


def check_version(version: str) -> None:
    if version not in _WRITE_VERSIONS:
        msg = f"vCard {version!r} cannot be written; versions are {', '.join(_WRITE_VERSIONS)}"
        raise UsageError(msg)


def format_vcards(entries: Iterable[Record], *, version: str = "4.0") -> str:
    """*entries* as vCard *version* (``"3.0"`` or ``"4.0"``) text, one card each.

    The output depends only on the records: cards are sorted by key, lines
    end with CRLF and are folded at 75 octets. Keys must be non-empty and
    unique (each becomes a ``UID``), else :class:`~sourcetruth.UsageError`.
    """
    check_version(version)
    records = sorted(entries, key=lambda record: record.key)
    seen: set[str] = set()
    out: list[str] = []
    for record in records:
        if not isinstance(record, Record):
            msg = f"expected Record entries, got {type(record).__name__}"
            raise UsageError(msg)
        if not record.key:
            msg_0 = "a record with an empty key cannot be written: its key is its UID"
            raise UsageError(msg_0)
        if record.key in seen:
            msg = f"two records with the key {record.key!r}: a vCard file holds each UID once"
            raise UsageError(msg)
        seen.add(record.key)
        if any(not r.pupil for r in record.data.relationships):
            msg = f"record {record.key!r} has a relationship without the pupil's key"
            raise UsageError(msg)
        for line in _card_lines(record, version):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                msg = f"record {record.key!r} holds a lone surrogate, which UTF-8 cannot encode"
                raise UsageError(msg) from None
            out.append(_fold(line) + "\r\n")
    return "".join(out)
