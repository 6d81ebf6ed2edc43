"""Writing a snapshot as a OneRoster 1.1 or 1.2 CSV bundle: :func:`write_bundle`.

What it writes, :mod:`sourcetruth.adapters.sources.oneroster` reads back equal
for every covered field of the records the format can carry (see there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

from attrs import frozen

from sourcetruth.adapters._files import private_folder, write_atomic
from sourcetruth.adapters._util import csv_bytes
from sourcetruth.adapters.sources._oneroster_format import (
    MANIFEST,
    MANIFEST_COLUMNS,
    ORG_COLUMNS,
    ORGS,
    ROLE_COLUMNS,
    ROLES,
    USERS,
    USERS_11,
    USERS_12,
)
from sourcetruth.exceptions import AdapterError, UsageError
from sourcetruth.model import ContactData, PhoneType, Role, Snapshot, SnapshotKind, utc

__all__ = ["write_bundle"]

_ORG_ID: Final = "school"

_FILES_11: Final = (
    "academicSessions",
    "categories",
    "classes",
    "classResources",
    "courses",
    "courseResources",
    "demographics",
    "enrollments",
    "lineItems",
    "orgs",
    "resources",
    "results",
    "users",
)
_FILES_12: Final = (
    "academicSessions",
    "categories",
    "classes",
    "classResources",
    "courses",
    "courseResources",
    "demographics",
    "enrollments",
    "lineItemLearningObjectiveIds",
    "lineItems",
    "lineItemScoreScales",
    "orgs",
    "resources",
    "resultLearningObjectiveIds",
    "results",
    "resultScoreScales",
    "roles",
    "scoreScales",
    "userProfiles",
    "userResources",
    "users",
)
_WRITTEN_ROLES: Final = {
    Role.PUPIL: "student",
    Role.GUARDIAN: "guardian",
    Role.STAFF: "teacher",
    # Not OneRoster roles: written as extension values, read back as OTHER.
    Role.GOVERNOR: "ext:governor",
    Role.OTHER: "ext:other",
}


def _stamp(at: datetime) -> str:
    at = utc(at)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def write_bundle(
    snapshot: Snapshot, directory: str | os.PathLike[str], *, version: str = "1.2"
) -> None:
    """Write *snapshot* as a OneRoster *version* ("1.1" or "1.2") bundle into *directory*.

    A full snapshot becomes a bulk bundle, a delta a delta one whose removed
    keys are users with status ``tobedeleted``. The bundle holds
    ``manifest.csv``, ``users.csv``, ``orgs.csv`` (one org, ``school``) and
    for 1.2 ``roles.csv``. Rows are sorted by key and the bytes are UTF-8 with
    ``\\r\\n`` line ends, so one snapshot always gives the same files.

    Values the format cannot carry are left out: phones other than the first
    mobile and the first home one, emails after the first, an email's type
    (read back as ``OTHER``), registration groups. A relationship (its pupil
    a key of this snapshot's source) is written on both sides (the
    guardian's and the pupil's ``agentSourcedIds``; the pupil's only when
    the pupil is in the snapshot), so the bundle is read with the default
    ``guardian_agents_complete=True``; in 1.2 a record that holds
    relationships without being a guardian gets a secondary guardian role,
    so that it reads back. Raises :class:`~sourcetruth.UsageError` for an
    unknown version or keys that clash, :class:`~sourcetruth.AdapterError`
    when writing fails.
    """
    _check_writable(snapshot, version)
    _write(Path(directory), _bundle(snapshot, version))


def _check_writable(snapshot: Snapshot, version: str) -> None:
    """A :class:`~sourcetruth.UsageError` when *snapshot* cannot be a *version* bundle."""
    if version not in ("1.1", "1.2"):
        msg = f"write_bundle writes OneRoster 1.1 or 1.2, not {version!r}"
        raise UsageError(msg)
    keys = [r.key for r in snapshot.records]
    if len(set(keys)) != len(keys):
        msg = "two records of the snapshot share a key"
        raise UsageError(msg)
    if set(keys) & set(snapshot.removed):
        msg = "the snapshot both changes and removes a key"
        raise UsageError(msg)
    if any(not k or k != k.strip() for k in [*keys, *snapshot.removed]):
        msg = "a key is empty or has spaces around it, which a bundle cannot carry"
        raise UsageError(msg)


@frozen
class _Stamp:
    """What a bundle's rows say of their status and date: empty in bulk, filled in a delta."""

    status: str
    date: str

    @classmethod
    def of(cls, snapshot: Snapshot) -> _Stamp:
        if snapshot.kind is SnapshotKind.DELTA:
            return cls("active", _stamp(snapshot.extracted_at))
        return cls("", "")


def _bundle(snapshot: Snapshot, version: str) -> dict[str, bytes]:
    """The files of the bundle that holds *snapshot*: name -> bytes."""
    v12 = version == "1.2"
    stamp = _Stamp.of(snapshot)
    users, roles = _rows(snapshot, stamp)
    users_header = USERS_12 if v12 else USERS_11
    out = {
        MANIFEST: csv_bytes(MANIFEST_COLUMNS, _manifest_rows(snapshot, version)),
        USERS: csv_bytes(
            users_header, ([cells.get(c, "") for c in users_header] for cells in users)
        ),
        ORGS: csv_bytes(
            ORG_COLUMNS, [[_ORG_ID, stamp.status, stamp.date, "School", "school", "", ""]]
        ),
    }
    if v12:
        out[ROLES] = csv_bytes(ROLE_COLUMNS, roles)
    return out


def _manifest_rows(snapshot: Snapshot, version: str) -> list[list[str]]:
    v12 = version == "1.2"
    mode = "delta" if snapshot.kind is SnapshotKind.DELTA else "bulk"
    listed = _FILES_12 if v12 else _FILES_11
    written = {"users", "orgs", "roles"} if v12 else {"users", "orgs"}
    return [
        ["manifest.version", "1.0"],
        ["oneroster.version", version],
        *([f"file.{name}", mode if name in written else "absent"] for name in listed),
        ["source.systemName", "sourcetruth"],
        ["source.systemCode", snapshot.source],
    ]


def _agents(snapshot: Snapshot) -> dict[str, set[str]]:
    """Each record's agentSourcedIds: a link on both sides, the pupil's when it is here."""
    agents: dict[str, set[str]] = {r.key: set() for r in snapshot.records}
    for record in snapshot.records:
        for rel in record.data.relationships:
            pupil = rel.pupil
            agents[record.key].add(pupil)
            if pupil in agents:
                agents[pupil].add(record.key)
    return agents


def _rows(snapshot: Snapshot, stamp: _Stamp) -> tuple[list[dict[str, str]], list[list[str]]]:
    """The users.csv rows (by column, sorted by key) and the roles.csv rows of *snapshot*."""
    agents = _agents(snapshot)
    users: list[dict[str, str]] = []
    roles: list[list[str]] = []
    for record in sorted(snapshot.records, key=lambda r: r.key):
        key, data = record.key, record.data
        users.append(_user_cells(key, data, sorted(agents[key]), stamp))
        role = _WRITTEN_ROLES[data.role]
        roles.append([f"{key}-primary", *_role_cells(key, "primary", role, stamp)])
        if data.relationships and data.role is not Role.GUARDIAN:
            roles.append([f"{key}-guardian", *_role_cells(key, "secondary", "guardian", stamp)])
    users += (
        {
            "sourcedId": key,
            "status": "tobedeleted",
            "dateLastModified": stamp.date,
            "enabledUser": "false",
        }
        for key in snapshot.removed
    )
    users.sort(key=lambda cells: cells["sourcedId"])
    return users, roles


def _user_cells(key: str, data: ContactData, agents: list[str], stamp: _Stamp) -> dict[str, str]:
    mobile = next((p.number for p in data.phones if p.type is PhoneType.MOBILE), "")
    home = next((p.number for p in data.phones if p.type is PhoneType.HOME), "")
    return {
        "sourcedId": key,
        "status": stamp.status,
        "dateLastModified": stamp.date,
        "enabledUser": "true",
        "orgSourcedIds": _ORG_ID,
        "role": _WRITTEN_ROLES[data.role],
        "username": key,
        "givenName": data.given_name,
        "familyName": data.family_name,
        "email": data.emails[0].address if data.emails else "",
        "sms": mobile,
        "phone": home,
        "agentSourcedIds": ",".join(agents),
        "grades": data.year_group if data.role is Role.PUPIL else "",
        "primaryOrgSourcedId": _ORG_ID,
    }


def _role_cells(key: str, kind: str, role: str, stamp: _Stamp) -> list[str]:
    """A roles.csv row after its sourcedId."""
    return [stamp.status, stamp.date, key, kind, role, "", "", _ORG_ID, ""]


def _write(target: Path, files: Mapping[str, bytes]) -> None:
    try:
        private_folder(target)
        for name in sorted(files):
            write_atomic(target / name, files[name])
    except OSError as error:
        msg = (
            f"cannot write the OneRoster bundle to {os.fspath(target)!r}: {error.strerror or error}"
        )
        raise AdapterError(msg) from None
