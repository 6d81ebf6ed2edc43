"""Small helpers that several adapters share: written once, here.

Package-private: nothing outside :mod:`sourcetruth.adapters` imports this
module, and nothing in it is part of the library's API.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterable, Sequence

from sourcetruth.model import Phone, PhoneType

__all__ = ["cell", "csv_bytes", "csv_text", "is_loopback", "one_phone_per_number"]


def _number_key(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits or number.strip()


def one_phone_per_number(phones: Sequence[Phone]) -> tuple[Phone, ...]:
    """*phones* with each number once: the same number under two types is one phone.

    A number is the same when its digits are (or, with none, its trimmed
    text). The phone keeps the place and the text of its first appearance;
    its type is ``MOBILE`` when any appearance is (a number given for SMS is
    one a message can reach), else the first's.
    """
    if len(phones) < 2:
        return tuple(phones)
    kept: dict[str, Phone] = {}
    for phone in phones:
        key = _number_key(phone.number)
        first = kept.get(key)
        if first is None:
            kept[key] = phone
        elif phone.type is PhoneType.MOBILE and first.type is not PhoneType.MOBILE:
            kept[key] = Phone(first.number, PhoneType.MOBILE)
    if len(kept) == len(phones):
        return tuple(phones)
    return tuple(kept.values())


def cell(cells: Sequence[str], index: int | None) -> str:
    """The cell at *index* of a row's *cells*, or "" (no such column, or a short row)."""
    return cells[index] if index is not None and index < len(cells) else ""


def csv_text(header: Sequence[str], rows: Iterable[Iterable[str]]) -> str:
    """*header* and *rows* as RFC 4180 text: comma-separated, CRLF line ends.

    Cells are quoted only where they must be, so the same rows always give
    the same text.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Iterable[str]]) -> bytes:
    """:func:`csv_text` as UTF-8 without a byte-order mark."""
    return csv_text(header, rows).encode("utf-8")


def is_loopback(host: str) -> bool:
    """Whether *host* names this machine: ``localhost``, 127.0.0.0/8 or ::1.

    Case, a trailing dot, the brackets of an IPv6 literal and an IPv4-mapped
    IPv6 form (``::ffff:127.0.0.1``) do not hide it.
    """
    name = host.strip().rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
