"""Test helpers: a small school in the week of Monday 23 November 2026.

Imported by name (`from school import ...`): a module called `conftest` would
clash with `docs/conftest.py`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs

from sourcetruth import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Policy,
    Record,
    Relationship,
    Role,
    Schedule,
    Snapshot,
    Source,
    SourceKind,
)

#: The project's root folder, and the real-world files beside it (skip when absent).
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"

LONDON = ZoneInfo("Europe/London")
NIGHTLY = Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London")


def emails_typed_other(snapshot: Snapshot) -> Snapshot:
    """*snapshot* with every email's type OTHER: for a format, like OneRoster, that has none."""
    fitted = [
        attrs.evolve(
            r,
            data=attrs.evolve(
                r.data, emails=[Email(e.address, EmailType.OTHER) for e in r.data.emails]
            ),
        )
        for r in snapshot.records
    ]
    return attrs.evolve(snapshot, records=fitted)


def london(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A wall-clock time in Europe/London in 2026 (November unless told)."""
    return datetime(2026, month, day, hour, minute, tzinfo=LONDON)


def mis_policy(**kwargs: object) -> Policy:
    """An MIS feed covering everything, and an import that covers names and contacts."""
    return Policy(
        sources=(
            Source("mis", SourceKind.MIS, schedule=NIGHTLY),
            Source(
                "import",
                SourceKind.IMPORT,
                covers=frozenset({"given_name", "family_name", "phones", "emails"}),
            ),
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def pupil(key: str, year: str, reg: str, given: str = "Pat", family: str = "Pupil") -> Record:
    return Record(
        key, ContactData(given, family, Role.PUPIL, year_group=year, registration_group=reg)
    )


def guardian(
    key: str,
    *pupils: str,
    mobile: str = "",
    email: str = "",
    given: str = "Alex",
    family: str = "Parent",
    receives: bool = True,
) -> Record:
    return Record(
        key,
        ContactData(
            given,
            family,
            Role.GUARDIAN,
            phones=(Phone(mobile, PhoneType.MOBILE),) if mobile else (),
            emails=(Email(email),) if email else (),
            relationships=tuple(Relationship(p, receives_messages=receives) for p in pupils),
        ),
    )


def staff(key: str, *, mobile: str = "", email: str = "", given: str = "Sam") -> Record:
    return Record(
        key,
        ContactData(
            given,
            "Staff",
            Role.STAFF,
            phones=(Phone(mobile),) if mobile else (),
            emails=(Email(email),) if email else (),
        ),
    )


def school(*changes: Record) -> list[Record]:
    """The MIS of a small school; *changes* replace records with the same key."""
    base = [
        pupil("P9", "9", "9B", given="Nina"),
        pupil("P8", "8", "8A", given="Omar"),
        pupil("P9b", "9", "9C", given="Ivy"),
        guardian("G9", "P9", mobile="07700 900101", email="g9@parent.test", given="Gita"),
        guardian("G8", "P8", mobile="07700 900102", email="g8@parent.test", given="Hal"),
        guardian("GOV", "P9b", mobile="07700 900103", email="pg.old@parent.test", given="Paula"),
        staff("S1", mobile="07700 900201", email="s1@school.test", given="Steve"),
    ]
    by_key = {r.key: r for r in base}
    by_key.update({r.key: r for r in changes})
    return list(by_key.values())


def full(at: datetime, records: list[Record], source: str = "mis") -> Snapshot:
    return Snapshot(source, at, tuple(records))
