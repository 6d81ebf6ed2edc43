"""How the conformance kit spoils an adapter's input: bytes in files, odd records in snapshots.

Package-private: :mod:`sourcetruth.testing.conformance` is the only user.
Every spoiler is deterministic, so a failing check fails the same way on
every run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from sourcetruth.model import ContactData, Record, Relationship, Snapshot

__all__ = [
    "BAD_BYTES",
    "NOT_A_NUMBER",
    "ODD_NUMBER",
    "UNKNOWN_PUPIL",
    "duplicated",
    "files_under",
    "nameless",
    "permuted",
    "spoil_a_value",
    "spoil_markup",
    "unkeyed",
    "with_a_link_to_nobody",
    "with_an_odd_number",
]

#: Not UTF-8 (0xC3 must be followed by a continuation byte), yet every one a
#: latin-1 or cp1252 character: a reader that falls back to either reads it
#: without an error.
BAD_BYTES = b"\xc3\x28\xa0\xa1"

#: A relationship priority no format writes by chance, and what it is spoilt into.
ODD_NUMBER = 48213
NOT_A_NUMBER = b"48z13"

#: A pupil key that no sample holds.
UNKNOWN_PUPIL = "KIT-NOBODY"


def files_under(directory: Path) -> list[Path]:
    """Every file under *directory*, in a fixed order."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _spoil_order(value: str) -> tuple[bool, int, str]:
    # ASCII first, so that whatever an error quoting it decodes the bytes
    # with, the value shows whole; long first, so it is not part of another.
    return (not value.isascii(), -len(value), value)


def spoil_a_value(path: Path, values: Iterable[str]) -> str | None:
    """Put :data:`BAD_BYTES` at the start of the first of *values* found in *path*.

    The bytes go inside the value, not in the markup around it, so a reader
    that decodes value by value meets them too, and the value itself stays
    whole: an error that quotes the bad cell or line shows it. Returns the
    value spoilt, or None when the file holds none of them as UTF-8.
    """
    data = path.read_bytes()
    for value in sorted(set(values), key=_spoil_order):
        at = data.find(value.encode("utf-8"))
        if at >= 0:
            path.write_bytes(data[:at] + BAD_BYTES + data[at:])
            return value
    return None


def spoil_markup(path: Path) -> None:
    """Put :data:`BAD_BYTES` after the first line of *path* (in the middle of a one-line file)."""
    data = path.read_bytes()
    cut = data.find(b"\n") + 1 or len(data) // 2
    path.write_bytes(data[:cut] + BAD_BYTES + data[cut:])


def _linked(snapshot: Snapshot) -> set[str]:
    return {rel.pupil for r in snapshot.records for rel in r.data.relationships}


def _quiet_record(snapshot: Snapshot) -> Record:
    """The last record, in key order, that no relationship names: changing it breaks no link."""
    linked = _linked(snapshot)
    quiet = [r for r in snapshot.records if r.key not in linked]
    return max(quiet or snapshot.records, key=lambda r: r.key)


def _replace(snapshot: Snapshot, old: Record, *new: Record) -> Snapshot:
    records: list[Record] = []
    for record in snapshot.records:
        records.extend(new if record is old else (record,))
    return attrs.evolve(snapshot, records=records)


def unkeyed(snapshot: Snapshot) -> tuple[Snapshot, str]:
    """*snapshot* with one record's key emptied, and the key it had."""
    record = _quiet_record(snapshot)
    return _replace(snapshot, record, attrs.evolve(record, key="")), record.key


def nameless(snapshot: Snapshot) -> tuple[Snapshot, str]:
    """*snapshot* with one record's given and family names emptied, and its key."""
    record = _quiet_record(snapshot)
    data = attrs.evolve(record.data, given_name="", family_name="")
    return _replace(snapshot, record, attrs.evolve(record, data=data)), record.key


def duplicated(snapshot: Snapshot) -> tuple[Snapshot, str]:
    """*snapshot* with a second record under one record's key, its names changed, and that key."""
    record = _quiet_record(snapshot)
    data = attrs.evolve(record.data, given_name="Kitsecond", family_name="Kitcopy")
    return _replace(snapshot, record, record, attrs.evolve(record, data=data)), record.key


def _guardian(snapshot: Snapshot) -> Record | None:
    linked = [r for r in snapshot.records if r.data.relationships]
    return min(linked, key=lambda r: r.key) if linked else None


def with_a_link_to_nobody(snapshot: Snapshot) -> tuple[Snapshot, str] | None:
    """*snapshot* with a guardian also linked to a pupil it does not hold, and the guardian's key.

    None when no record of *snapshot* has a relationship to add one beside.
    """
    guardian = _guardian(snapshot)
    if guardian is None:
        return None
    links = (*guardian.data.relationships, Relationship(UNKNOWN_PUPIL))
    data = attrs.evolve(guardian.data, relationships=links)
    return _replace(snapshot, guardian, attrs.evolve(guardian, data=data)), guardian.key


def with_an_odd_number(snapshot: Snapshot) -> Snapshot | None:
    """*snapshot* with one relationship's priority :data:`ODD_NUMBER`; None without one."""
    guardian = _guardian(snapshot)
    if guardian is None:
        return None
    first, *rest = guardian.data.relationships
    links = (attrs.evolve(first, priority=ODD_NUMBER), *rest)
    data = attrs.evolve(guardian.data, relationships=links)
    return _replace(snapshot, guardian, attrs.evolve(guardian, data=data))


def _reversed_links(data: ContactData) -> ContactData:
    return attrs.evolve(data, relationships=tuple(reversed(data.relationships)))


def permuted(snapshot: Snapshot) -> tuple[Snapshot | None, Snapshot | None]:
    """*snapshot* with its records in another order, and with each person's links reversed.

    Only these orders: the model compares a person's phones and emails in
    order (the first is the one a format lists first), so a writer and a
    reader keep theirs, while a guardian's links carry their priority in
    each link and their order means nothing. Either is None when there is
    nothing to reorder.
    """
    records = list(snapshot.records)
    rows = None
    if len(records) > 1:
        middle = len(records) // 2
        rows = attrs.evolve(snapshot, records=[*reversed(records[middle:]), *records[:middle]])
    links = None
    if any(len(r.data.relationships) > 1 for r in records):
        reordered = [attrs.evolve(r, data=_reversed_links(r.data)) for r in records]
        links = attrs.evolve(snapshot, records=reordered)
    return rows, links
