"""Synthetic schools: deterministic, fictional, and shaped like the real thing.

:func:`school` builds the MIS of a school of a given number of contacts
(pupils, guardians, staff and governors) and a small local address book;
:meth:`School.next_night` gives the same school a night later, with a
fraction of phones and emails changed, leavers and joiners. They feed the
benchmarks (``benchmarks/scale.py``), demos and tests: plain Python, no
Hypothesis, no pytest. ``import sourcetruth`` does not import this module.

The shape
---------

- **Pupils** in year groups ``R`` and ``1`` to ``13`` (an all-through
  school, or a trust of them) and registration groups such as ``9B``; pupils
  from year 7 mostly have a school email address.
- **Families**: 1 to 3 children (siblings) and 1 to 3 guardians, so
  siblings share guardians. Each guardian has a relationship to every child
  of the family, with priority 1 to 3 (their order in the family); some
  guardians of priority 2 or 3 have no parental responsibility. A
  household often shares a landline, and sometimes one email address.
- **Staff** are about 8% of contacts, **governors** about 0.3%; the rest
  are pupils and guardians. The address book holds about 1% more: external
  governors and coaches. "Contacts" counts pupils, guardians, staff and
  governors: the MIS records, exactly as many as asked.

Fictional values only
---------------------

Mobile numbers are Ofcom's drama numbers 07700 900000 to 900999, landlines
01632 960000 to 960999, written in a few common formats (``07700 900123``,
``07700900123``, ``+44 7700 900123``). These ranges hold 1,000 numbers
each, so at any size beyond a few hundred contacts numbers repeat across
households; that is fine for reconciliation (a number is a value, not an
identity), but it means a phone normaliser with a cache sees few distinct
numbers. Email addresses are unique per person (or per household when
shared) under ``parent.test``, ``school.test`` and ``example.org``. Names
come from short built-in lists, so names repeat too.

Determinism
-----------

Everything is drawn from ``random.Random(seed)`` (never the global
generator) in a fixed order, and nothing iterates over a set or a dict
whose order depends on hashing: the same (contacts, seed) gives the same
records in the same order in every run and under every ``PYTHONHASHSEED``.
Records are sorted by key. Keys are a prefix (``P`` pupil, ``G`` guardian,
``S`` staff, ``GOV`` governor, ``AB`` address book) and a serial number
that is never reused, so a joiner never takes a leaver's key.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Final

import attrs
from attrs import field, frozen

from sourcetruth._util import to_tuple as _tuple
from sourcetruth.adapters._files import write_atomic
from sourcetruth.adapters.sources.oneroster import COVERS, write_bundle
from sourcetruth.adapters.sources.tabular import CsvMapping, EmailColumn, PhoneColumn
from sourcetruth.adapters.sources.tabular import write_csv as _write_csv
from sourcetruth.model import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
    SourceKind,
)
from sourcetruth.policy import Policy, Schedule, Source

__all__ = [
    "NIGHTLY",
    "SIZES",
    "School",
    "policy",
    "school",
    "write_csv",
    "write_oneroster",
]

#: The benchmark sizes, in contacts: a school, a trust, a local authority.
SIZES: Final[Mapping[str, int]] = MappingProxyType({"S": 3_000, "M": 100_000, "L": 1_000_000})

#: The MIS's schedule in :func:`policy`: nightly at 02:00, London time.
NIGHTLY: Final = Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London")

_STAFF: Final = 0.08
_GOVERNORS: Final = 0.003
_ADDRESS_BOOK: Final = 0.01
_WIDTH: Final = 7  # digits of a key's serial number

_YEARS: Final = ("R", *(str(n) for n in range(1, 14)))
_SECONDARY: Final = frozenset(_YEARS[7:])  # years 7 to 13
_FORMS: Final = "ABCDEF"
_GIVEN: Final = (
    "Aisha", "Alex", "Amara", "Ben", "Chloe", "Daniel", "Ebony", "Eli", "Fatima", "Finn",
    "Grace", "Hamza", "Hannah", "Isaac", "Ivy", "Jack", "Jade", "Kai", "Leah", "Leo",
    "Maya", "Mohammed", "Nia", "Noah", "Olivia", "Omar", "Priya", "Reuben", "Rosa", "Sam",
    "Sofia", "Theo", "Uma", "Victor", "Willow", "Yusuf", "Zara", "Zoe",
)  # fmt: skip
_FAMILY: Final = (
    "Adeyemi", "Ahmed", "Baker", "Brown", "Campbell", "Chen", "Davies", "Evans", "Fraser",
    "Green", "Hughes", "Iqbal", "Jones", "Kaur", "Kowalski", "Lewis", "Murphy", "Nguyen",
    "Novak", "Okafor", "Patel", "Quinn", "Roberts", "Shah", "Singh", "Smith", "Taylor",
    "Thomas", "Walker", "Williams", "Wilson", "Wright", "Young",
)  # fmt: skip
# How many children, and how many guardians, a family has: (count, weight).
_CHILDREN: Final = ((1, 45), (2, 40), (3, 15))
_GUARDIANS: Final = ((1, 25), (2, 65), (3, 10))


def _weighted(rng: random.Random, table: tuple[tuple[int, int], ...]) -> int:
    pick = rng.randrange(sum(weight for _, weight in table))
    for value, weight in table:
        if pick < weight:
            return value
        pick -= weight
    raise AssertionError  # pragma: no cover


def _serial(key: str) -> int:
    return int(key[-_WIDTH:])


@frozen
class School:
    """One school's MIS records and its local address book, at one night.

    ``records`` are the MIS's pupils, guardians, staff and governors, sorted
    by key; ``address_book`` the local contacts (external governors,
    coaches), keyed without a source prefix: save them as
    ``address-book:KEY``. ``serial`` is the next unused key number (0: one
    past the largest in the keys).
    """

    source: str
    records: tuple[Record, ...] = field(converter=_tuple, repr=False)
    address_book: tuple[Record, ...] = field(default=(), converter=_tuple, repr=False)
    serial: int = field(default=0, kw_only=True, repr=False)

    def snapshot(self, extracted_at: datetime) -> Snapshot:
        """A full snapshot of the MIS as extracted at *extracted_at*."""
        return Snapshot(self.source, extracted_at, self.records)

    def next_night(
        self,
        *,
        seed: int,
        changed: float = 0.01,
        leavers: float = 0.005,
        joiners: float = 0.005,
    ) -> School:
        """The school a night later: some changes, some leavers, some joiners.

        ``changed`` is the fraction of all records that get a new phone
        number or email address (a different number, not a reformatted
        one), drawn from the people who stay and have a phone or email.
        ``leavers`` is the fraction of pupils who leave, and with them every
        guardian who has no other pupil left; a guardian with another pupil
        left loses the relationship to the leaver. ``joiners`` is the
        fraction of pupils that arrive, in new families with new guardians,
        under new keys. Every other record is the same object as before, so
        an unchanged record costs nothing to build (or to compare, by
        identity, in a store). Deterministic for (this school, *seed*).
        """
        for name, value in (("changed", changed), ("leavers", leavers), ("joiners", joiners)):
            if not 0 <= value <= 1:
                msg = f"{name} is a fraction from 0 to 1"
                raise ValueError(msg)
        rng = random.Random(seed)
        pupils = [r.key for r in self.records if r.data.role is Role.PUPIL]
        leaving = set(rng.sample(pupils, round(leavers * len(pupils))))
        gone, replaced = self._leave(leaving)
        eligible = [
            r.key for r in self.records if r.key not in gone and (r.data.phones or r.data.emails)
        ]
        chosen = rng.sample(eligible, min(len(eligible), round(changed * len(self.records))))
        serial = self.serial or 1 + max(
            (_serial(r.key) for r in (*self.records, *self.address_book)), default=0
        )
        maker = _Maker(rng, serial)
        by_key = {r.key: r for r in self.records} if chosen else {}
        for key in chosen:
            record = replaced[key] if key in replaced else by_key[key]
            replaced[key] = Record(key, maker.contact_change(record.data))
        arrived = maker.joiners(round(joiners * len(pupils)))
        records = [replaced.get(r.key, r) for r in self.records if r.key not in gone]
        if arrived:
            records.extend(arrived)
            records.sort(key=attrgetter("key"))
        return School(self.source, tuple(records), self.address_book, serial=maker.serial)

    def _leave(self, leaving: set[str]) -> tuple[set[str], dict[str, Record]]:
        """The keys gone with the pupils *leaving*, and the guardians who lose a pupil but stay."""
        gone = set(leaving)
        replaced: dict[str, Record] = {}
        for record in self.records:
            data = record.data
            if data.role is not Role.GUARDIAN:
                continue
            links = data.relationships
            if not any(rel.pupil in leaving for rel in links):
                continue
            kept = tuple(rel for rel in links if rel.pupil not in leaving)
            if kept:
                replaced[record.key] = Record(record.key, attrs.evolve(data, relationships=kept))
            else:
                gone.add(record.key)
        return gone, replaced


class _Maker:
    """Draws people from one random generator and numbers their keys."""

    def __init__(self, rng: random.Random, serial: int = 1) -> None:
        self.rng = rng
        self.serial = serial

    def key(self, prefix: str) -> str:
        key = f"{prefix}{self.serial:0{_WIDTH}d}"
        self.serial += 1
        return key

    def mobile(self) -> str:
        n = self.rng.randrange(1000)
        style = self.rng.randrange(10)
        if style < 6:
            return f"07700 900{n:03d}"
        if style < 9:
            return f"07700900{n:03d}"
        return f"+44 7700 900{n:03d}"

    def landline(self) -> str:
        n = self.rng.randrange(1000)
        return f"01632 960{n:03d}" if self.rng.randrange(4) else f"01632960{n:03d}"

    def email(self, given: str, family: str, domain: str) -> str:
        local = f"{given}.{family}{self.serial}".lower()
        if domain == "parent.test" and self.rng.randrange(30) == 0:
            domain = "Parent.TEST"  # the same address to anyone who compares properly
        return f"{local}@{domain}"

    def given(self) -> str:
        return self.rng.choice(_GIVEN)

    def surname(self) -> str:
        return self.rng.choice(_FAMILY)

    def family(self, max_children: int = 3, max_people: int | None = None) -> list[Record]:
        """One family: its children (pupils) and their guardians, in that order."""
        rng = self.rng
        children = min(_weighted(rng, _CHILDREN), max_children)
        guardians = _weighted(rng, _GUARDIANS)
        if max_people is not None:
            children = min(children, max_people - 1)
            guardians = min(guardians, max_people - children)
        surname = self.surname()
        records = [self.pupil(surname) for _ in range(children)]
        pupils = [r.key for r in records]
        landline = self.landline() if rng.randrange(5) < 3 else ""
        shared = ""
        if guardians > 1 and rng.randrange(10) == 0:
            shared = self.email("the", f"{surname}family", "parent.test")
        records += (
            self.guardian(priority, surname, pupils, landline=landline, shared=shared)
            for priority in range(1, guardians + 1)
        )
        return records

    def joiners(self, wanted: int) -> list[Record]:
        """New families until they hold *wanted* pupils."""
        arrived: list[Record] = []
        while wanted > 0:
            family = self.family(max_children=wanted)
            wanted -= sum(1 for r in family if r.data.role is Role.PUPIL)
            arrived.extend(family)
        return arrived

    def pupil(self, surname: str) -> Record:
        """A child of a family: a year group, a form, and from year 7 mostly a school email."""
        rng = self.rng
        key = self.key("P")
        year = rng.choice(_YEARS)
        given = self.given()
        emails: tuple[Email, ...] = ()
        if year in _SECONDARY and rng.randrange(5):
            emails = (Email(self.email(given[0], surname, "school.test"), EmailType.WORK),)
        data = ContactData(
            given,
            surname,
            Role.PUPIL,
            emails=emails,
            year_group=year,
            registration_group=f"{year}{rng.choice(_FORMS)}",
        )
        return Record(key, data)

    def guardian(
        self, priority: int, surname: str, pupils: list[str], *, landline: str, shared: str
    ) -> Record:
        """A guardian of all *pupils*, with the family's *landline* and *shared* email, if any."""
        rng = self.rng
        responsibility = not (
            (priority == 3 and rng.randrange(2)) or (priority == 2 and rng.randrange(20) == 0)
        )
        given = self.given()
        family = surname if rng.randrange(10) < 7 else self.surname()
        phones = []
        if rng.randrange(20):
            phones.append(Phone(self.mobile(), PhoneType.MOBILE))
        if landline:
            phones.append(Phone(landline, PhoneType.HOME))
        address = shared or (self.email(given, family, "parent.test") if rng.randrange(10) else "")
        return Record(
            self.key("G"),
            ContactData(
                given,
                family,
                Role.GUARDIAN,
                phones=phones,
                emails=(Email(address, EmailType.HOME),) if address else (),
                relationships=tuple(
                    Relationship(p, priority, parental_responsibility=responsibility)
                    for p in pupils
                ),
            ),
        )

    def worker(self, prefix: str, role: Role, domain: str, mobile_in: int) -> Record:
        """A member of staff, a governor or an address-book contact."""
        given, family = self.given(), self.surname()
        phones = (
            (Phone(self.mobile(), PhoneType.MOBILE),) if self.rng.randrange(10) < mobile_in else ()
        )
        email_type = EmailType.WORK if role is Role.STAFF else EmailType.OTHER
        return Record(
            self.key(prefix),
            ContactData(
                given,
                family,
                role,
                phones=phones,
                emails=(Email(self.email(given, family, domain), email_type),),
            ),
        )

    def contact_change(self, data: ContactData) -> ContactData:
        """*data* with a new mobile number or a new email address (never the same one)."""
        rng = self.rng
        mobiles = [i for i, p in enumerate(data.phones) if p.type is PhoneType.MOBILE]
        if data.emails and (not mobiles or rng.randrange(2)):
            old = data.emails[0]
            local, _, domain = old.address.rpartition("@")
            address = f"{local.split('.')[0]}.new{self.serial}@{domain.lower()}"
            self.serial += 1
            return attrs.evolve(data, emails=(Email(address, old.type), *data.emails[1:]))
        if not mobiles:
            return attrs.evolve(data, phones=(Phone(self.mobile()), *data.phones))
        i = mobiles[0]
        digits = data.phones[i].number[-3:]
        number = self.mobile()
        while number[-3:] == digits:
            number = self.mobile()
        phones = list(data.phones)
        phones[i] = Phone(number, PhoneType.MOBILE)
        return attrs.evolve(data, phones=phones)


def school(contacts: int, *, seed: int = 0, source: str = "mis") -> School:
    """A school of exactly *contacts* MIS records, and an address book of about 1% more.

    Deterministic for (*contacts*, *seed*): the same records in the same
    order in every run. See the module's documentation for its shape.
    """
    if contacts < 1:
        msg = "a school has at least one contact"
        raise ValueError(msg)
    maker = _Maker(random.Random(seed))
    staff = round(contacts * _STAFF)
    governors = round(contacts * _GOVERNORS)
    if staff + governors >= contacts:
        staff, governors = contacts - 1, 0
    target = contacts - staff - governors
    records: list[Record] = []
    while len(records) < target:
        remaining = target - len(records)
        if remaining == 1:
            staff += 1
            break
        records.extend(maker.family(max_people=remaining))
    records += [maker.worker("S", Role.STAFF, "school.test", 7) for _ in range(staff)]
    records += [maker.worker("GOV", Role.GOVERNOR, "example.org", 8) for _ in range(governors)]
    records.sort(key=attrgetter("key"))
    book = [
        maker.worker("AB", Role.GOVERNOR if i % 3 == 0 else Role.OTHER, "example.org", 9)
        for i in range(round(contacts * _ADDRESS_BOOK))
    ]
    return School(source, tuple(records), tuple(book), serial=maker.serial)


def policy(source: str = "mis") -> Policy:
    """The policy of the benchmarks and tests: one MIS feed, nightly at 02:00 London time.

    The MIS covers what a OneRoster bundle carries
    (:data:`~sourcetruth.adapters.sources.oneroster.COVERS`:
    names, role, phones, emails, relationships, year group), so a school's
    registration groups are kept in its records but are not effective. The
    departure guard is the default one.
    """
    return Policy(sources=(Source(source, SourceKind.MIS, covers=COVERS, schedule=NIGHTLY),))


def write_oneroster(school: School, folder: Path, *, extracted_at: datetime) -> None:
    """Write *school*'s MIS as a OneRoster 1.2 bulk bundle into *folder*.

    What the format cannot carry is left out (see
    :func:`sourcetruth.adapters.sources.oneroster.write_bundle`): registration groups,
    relationship priorities and parental responsibility, email types.
    Governors are written with an extension role and read back as ``OTHER``.
    """
    write_bundle(school.snapshot(extracted_at), folder)


#: The time written into the snapshot that :func:`write_csv` passes on; files hold none.
_NO_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)


def write_csv(school: School, path: Path) -> CsvMapping:
    """Write *school*'s guardians as a generic CSV import at *path*, and return its mapping.

    Columns: ``Id``, ``First name``, ``Last name``, ``Type``, ``Mobile``,
    ``Home``, ``Email`` and ``Children`` (the keys of the guardian's pupils,
    separated by ``;``). Relationship priorities and parental responsibility
    are not written.
    """
    mapping = CsvMapping(
        key="Id",
        given_name="First name",
        family_name="Last name",
        role="Type",
        phones=(PhoneColumn("Mobile", PhoneType.MOBILE), PhoneColumn("Home", PhoneType.HOME)),
        emails=(EmailColumn("Email", EmailType.HOME),),
        guardian_of="Children",
    )
    guardians = [r for r in school.records if r.data.role is Role.GUARDIAN]
    text = _write_csv(Snapshot(school.source, _NO_TIME, guardians), mapping)
    write_atomic(Path(path), text.encode("utf-8"))
    return mapping
