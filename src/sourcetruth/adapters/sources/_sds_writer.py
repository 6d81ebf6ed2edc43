"""Writing a snapshot as School Data Sync v2.1 files: :func:`write_files`.

What it writes, :mod:`sourcetruth.adapters.sources.sds` reads back equal for
every covered field; a value SDS cannot carry is refused, never lost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from sourcetruth.adapters._files import private_folder, write_atomic
from sourcetruth.adapters._util import csv_bytes
from sourcetruth.adapters.sources._sds_format import ORGS, RELATIONSHIPS, REQUIRED, ROLES, USERS
from sourcetruth.exceptions import AdapterError, UsageError
from sourcetruth.model import (
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
    SnapshotKind,
)

__all__ = ["DEFAULT_ORG", "write_files"]

#: The org that :func:`write_files` puts every role in, unless told another.
DEFAULT_ORG: Final = "school"

# What write_files puts in roles.csv for each role it can carry.
_ROLE_VALUE: Final[Mapping[Role, str]] = {
    Role.PUPIL: "student",
    Role.STAFF: "staff",
    Role.GUARDIAN: "guardian",
    Role.OTHER: "other",
}


def _carry_problems(record: Record, pupils: set[str]) -> list[str]:
    """Why *record* cannot be written so that reading it back gives it again."""
    data = record.data
    found: list[str] = []
    if not record.key or record.key != record.key.strip():
        found.append("its key is blank or has spaces around it")
    if data.role not in _ROLE_VALUE:
        found.append(f"SDS has no role for {data.role.value}")
    found += _phone_problems(data.phones)
    found += _email_problems(data.emails, data.role)
    if data.year_group and data.role is not Role.PUPIL:
        found.append("SDS gives a year group (grade) to pupils only")
    if data.relationships and data.role is Role.PUPIL:
        found.append("a pupil cannot be a guardian in SDS")
    found += _relationship_problems(data.relationships, pupils)
    return found


def _phone_problems(phones: Sequence[Phone]) -> list[str]:
    found: list[str] = []
    kinds = [p.type for p in phones]
    if any(k not in (PhoneType.MOBILE, PhoneType.HOME) for k in kinds):
        found.append("SDS carries only a mobile (sms) and a home number (phone)")
    if kinds.count(PhoneType.MOBILE) > 1 or kinds.count(PhoneType.HOME) > 1:
        found.append("SDS carries one mobile and one home number at most")
    if kinds == [PhoneType.HOME, PhoneType.MOBILE]:
        found.append("SDS keeps no order: the mobile reads back before the home number")
    if any(not p.number.strip() for p in phones):
        found.append("a blank phone number reads back as none")
    return found


def _email_problems(emails: Sequence[Email], role: Role) -> list[str]:
    found: list[str] = []
    if len(emails) > 1:
        found.append("SDS carries one email address")
    expected = EmailType.WORK if role is Role.STAFF else EmailType.HOME
    if any(e.type is not expected for e in emails):
        found.append(f"an email read from SDS is {expected.value} for this role")
    if any(not e.address.strip() for e in emails):
        found.append("a blank email address reads back as none")
    return found


def _relationship_problems(relationships: Sequence[Relationship], pupils: set[str]) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for rel in relationships:
        if rel != Relationship(rel.pupil):
            found.append("SDS carries no priority, parental responsibility or message flag")
        if rel.pupil not in pupils:
            found.append("a relationship names a key that is not a pupil in the snapshot")
        if rel.pupil in seen:
            found.append("a relationship appears twice")
        seen.add(rel.pupil)
    return found


def write_files(
    snapshot: Snapshot, directory: str | os.PathLike[str], *, org: str = DEFAULT_ORG
) -> None:
    """Write *snapshot* as SDS v2.1 files (orgs, users, roles, relationships) in *directory*.

    The bytes depend on the snapshot alone: UTF-8 without a byte-order mark,
    CRLF line ends, users sorted by key. Every role sits in one org, *org*.
    ``username`` is required by SDS and the model has none, so the key stands
    in for it. A mobile is written to ``sms`` and a home number to ``phone``
    (read back in that order). A guardian with links has no ``roles.csv`` row (an SDS
    contact); one without links gets the role ``guardian`` so that it reads
    back as one.

    Reading the folder back gives an equal snapshot for every covered field;
    registration groups, which SDS cannot hold and this adapter does not
    cover, are not written. A value of a covered field that the format cannot
    carry (a work phone, two emails, a governor, a link with a priority) is a
    :class:`~sourcetruth.UsageError` naming the record and why, never a
    silent loss. A delta is refused: SDS files are always the whole set.
    """
    records = _writable(snapshot, org)
    _write(Path(directory), _files(records, org))


def _writable(snapshot: Snapshot, org: str) -> list[Record]:
    """*snapshot*'s records by key; a :class:`~sourcetruth.UsageError` if SDS cannot hold them."""
    if snapshot.kind is not SnapshotKind.FULL:
        msg = "SDS v2.1 files hold the whole data set: write a full snapshot"
        raise UsageError(msg)
    if not org or org != org.strip():
        msg = "org must be a non-blank id without surrounding spaces"
        raise UsageError(msg)
    records = sorted(snapshot.records, key=lambda r: r.key)
    keys = [r.key for r in records]
    if len(set(keys)) != len(keys):
        msg = "the snapshot holds two records with one key"
        raise UsageError(msg)
    pupils = {r.key for r in records if r.data.role is Role.PUPIL}
    problems = [f"record {r.key!r}: {why}" for r in records for why in _carry_problems(r, pupils)]
    if problems:
        msg = "SDS v2.1 cannot carry these values: " + "; ".join(problems)
        raise UsageError(msg)
    return records


def _files(records: Sequence[Record], org: str) -> dict[str, bytes]:
    """The four files that hold *records*, every role in *org*: name -> bytes."""
    users: list[tuple[str, ...]] = []
    roles: list[tuple[str, ...]] = []
    links: list[tuple[str, ...]] = []
    for record in records:
        data = record.data
        sms = next((p.number for p in data.phones if p.type is PhoneType.MOBILE), "")
        phone = next((p.number for p in data.phones if p.type is PhoneType.HOME), "")
        email = data.emails[0].address if data.emails else ""
        users.append((record.key, record.key, data.given_name, data.family_name, email, phone, sms))
        if data.role is not Role.GUARDIAN or not data.relationships:
            roles.append((record.key, org, _ROLE_VALUE[data.role], data.year_group, "TRUE"))
        links.extend((rel.pupil, record.key, "guardian") for rel in data.relationships)
    return {
        ORGS: csv_bytes(REQUIRED[ORGS], [(org, org, "school")]),
        USERS: csv_bytes(REQUIRED[USERS], users),
        ROLES: csv_bytes(("userSourcedId", "orgSourcedId", "role", "grade", "isPrimary"), roles),
        RELATIONSHIPS: csv_bytes(REQUIRED[RELATIONSHIPS], links),
    }


def _write(folder: Path, files: Mapping[str, bytes]) -> None:
    try:
        private_folder(folder)
        for name, content in files.items():
            write_atomic(folder / name, content)
    except OSError as error:
        msg = f"cannot write the SDS files in {folder}: {error.strerror or error}"
        raise AdapterError(msg, retryable=True) from None
