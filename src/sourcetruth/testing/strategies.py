"""Hypothesis strategies for the sourcetruth model.

Use them to test code built on sourcetruth (an adapter, a store, a report)
against the same kinds of data the library's own property tests use::

    from hypothesis import given
    from sourcetruth.testing import strategies as sts

    @given(sts.snapshots(source="mis"))
    def test_my_store_round_trips(snapshot): ...

Every personal value is fictional and safe to publish: phone numbers are
Ofcom's drama numbers (07700 900000-900999 and 01632 960000-960999) written
the many ways people type them, and email addresses are at ``.test`` or
``example.org`` domains, with the domain's case and the surrounding
whitespace varied. Times are always timezone-aware (Europe/London or UTC).

Each strategy shrinks towards the plainest example: ``07700 900000``, the
first name and domain of the lists below, few records, full coverage, the
default guard. The package's ``hypothesis`` entry point makes
:func:`hypothesis.strategies.from_type` use these strategies for :class:`~sourcetruth.ContactData`,
:class:`~sourcetruth.Record`, :class:`~sourcetruth.Snapshot`,
:class:`~sourcetruth.Phone`, :class:`~sourcetruth.Email`,
:class:`~sourcetruth.Contact`, :class:`~sourcetruth.Override`,
:class:`~sourcetruth.GroupDefinition` and :class:`~sourcetruth.Policy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from sourcetruth.changes import SetOverride
from sourcetruth.effective import contact_at
from sourcetruth.merge import merge
from sourcetruth.model import (
    FIELDS,
    Book,
    Contact,
    ContactData,
    Email,
    EmailType,
    GroupDefinition,
    Override,
    OverrideLifetime,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Rule,
    Snapshot,
    SnapshotKind,
    SourceKind,
    record_id,
    unknown_fields,
)
from sourcetruth.policy import DEFAULT_GUARD, DepartureGuard, Policy, Schedule, Source

__all__ = [
    "EMAIL_DOMAINS",
    "FAMILY_NAMES",
    "GIVEN_NAMES",
    "LONDON",
    "NIGHTLY",
    "YEAR_GROUPS",
    "aware_datetimes",
    "contact_data",
    "contacts",
    "email_addresses",
    "emails",
    "groups",
    "overrides",
    "phone_numbers",
    "phones",
    "policies",
    "record_keys",
    "records",
    "rules",
    "set_overrides",
    "snapshots",
]

#: The school's own timezone.
LONDON: Final = ZoneInfo("Europe/London")
#: The nightly 02:00 sync of the scenarios.
NIGHTLY: Final = Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London")

#: Given names the strategies draw from (fiction).
GIVEN_NAMES: Final = ("Nina", "Omar", "Gita", "Paula", "Steve", "Zofia", "Kwame", "Aoife")
#: Family names the strategies draw from.
FAMILY_NAMES: Final = ("Okafor", "Nowak", "Singh", "Byrne", "Lindqvist", "Moreau")
#: Year groups the strategies draw from.
YEAR_GROUPS: Final = ("7", "8", "9", "10", "11")
#: Email domains the strategies draw from: reserved for documentation and tests.
EMAIL_DOMAINS: Final = ("example.org", "parent.test", "school.test", "example.test")
_LOCAL_PARTS: Final = ("pat", "office", "sam.jones", "g.parent", "n_okafor", "chair+gov")

#: Ofcom drama ranges: (national prefix without the 0, block of 1000 numbers).
_DRAMA_RANGES: Final = (("7700", "900"), ("1632", "960"))

_TIME_MIN: Final = datetime(2024, 1, 1, tzinfo=UTC)
_TIME_MAX: Final = datetime(2031, 1, 1, tzinfo=UTC)

# Each writes (prefix, block, last three digits) the way some person or MIS might.
_PHONE_STYLES: Final[tuple[Callable[[str, str, str], str], ...]] = (
    lambda p, b, n: f"0{p} {b}{n}",
    lambda p, b, n: f"+44 {p} {b}{n}",
    lambda p, b, n: f"0{p}{b}{n}",
    lambda p, b, n: f"+44{p}{b}{n}",
    lambda p, b, n: f"(0{p}) {b} {n}",
    lambda p, b, n: f"0044 {p} {b}{n}",
    lambda p, b, n: f"+44 (0){p} {b}{n}",
    lambda p, b, n: f"0{p}-{b}-{n}",
    lambda p, b, n: f" 0{p} {b}{n} ",
)

_CASINGS: Final[tuple[Callable[[str], str], ...]] = (str.lower, str.upper, str.title)
_SPACES: Final = ("", " ", "  ", "\t", "\n")


def aware_datetimes(
    *, min_value: datetime = _TIME_MIN, max_value: datetime = _TIME_MAX
) -> st.SearchStrategy[datetime]:
    """Timezone-aware instants from *min_value* to *max_value*, in Europe/London or UTC.

    Every value is a real instant (never a wall time lost to a clock change).
    Shrinks towards *min_value*, shown in Europe/London.
    """
    if min_value.tzinfo is None or max_value.tzinfo is None:
        msg = "min_value and max_value must be timezone-aware"
        raise InvalidArgument(msg)
    lo = min_value.astimezone(UTC).replace(tzinfo=None)
    hi = max_value.astimezone(UTC).replace(tzinfo=None)
    if lo > hi:
        msg = "min_value is after max_value"
        raise InvalidArgument(msg)
    return st.builds(
        lambda naive, zone: naive.replace(tzinfo=UTC).astimezone(zone),
        st.datetimes(lo, hi),
        st.sampled_from((LONDON, UTC)),
    )


def _drama_parts(number: str) -> tuple[str, str, str]:
    for prefix, block in _DRAMA_RANGES:
        head = f"+44{prefix}{block}"
        rest = number[len(head) :]
        if number.startswith(head) and len(rest) == 3 and rest.isdigit():
            return prefix, block, rest
    msg = f"{number!r} is not an E.164 Ofcom drama number"
    raise InvalidArgument(msg)


def phone_numbers(*, number: str | None = None) -> st.SearchStrategy[str]:
    """Ofcom drama numbers as text, in the formats people type.

    With *number* (an E.164 drama number such as ``"+447700900123"``), only
    the ways of writing that one number. Shrinks towards ``"07700 900000"``
    (the first range, the first number, the plain national format).
    """
    styles = st.sampled_from(_PHONE_STYLES)
    if number is not None:
        prefix, block, rest = _drama_parts(number)
        return styles.map(lambda style: style(prefix, block, rest))
    return st.builds(
        lambda drama, n, style: style(drama[0], drama[1], f"{n:03d}"),
        st.sampled_from(_DRAMA_RANGES),
        st.integers(0, 999),
        styles,
    )


def phones(
    *, types: Sequence[PhoneType] = tuple(PhoneType), number: str | None = None
) -> st.SearchStrategy[Phone]:
    """A :class:`~sourcetruth.Phone` of one of *types*, number from :func:`phone_numbers`.

    Shrinks towards the first of *types* (a mobile by default) and ``07700 900000``.
    """
    if not types:
        msg = "types must not be empty"
        raise InvalidArgument(msg)
    return st.builds(Phone, phone_numbers(number=number), st.sampled_from(tuple(types)))


def email_addresses(*, address: str | None = None) -> st.SearchStrategy[str]:
    """Email addresses at ``.test`` or ``example.org`` domains, as people type them.

    The domain's case and the whitespace around the address vary; the local
    part is kept as written (only its server may call it case-blind). With
    *address* (``local@domain``), only the ways of writing that address.
    Shrinks towards ``"pat@example.org"`` with no added whitespace.
    """
    if address is not None:
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            msg = "address must look like local@domain"
            raise InvalidArgument(msg)
        locals_: st.SearchStrategy[str] = st.just(local)
        domains: st.SearchStrategy[str] = st.just(domain)
    else:
        locals_ = st.builds(
            lambda stem, n: f"{stem}{n}" if n else stem,
            st.sampled_from(_LOCAL_PARTS),
            st.integers(0, 99),
        )
        domains = st.sampled_from(EMAIL_DOMAINS)
    return st.builds(
        lambda before, local, domain, case, after: f"{before}{local}@{case(domain)}{after}",
        st.sampled_from(_SPACES),
        locals_,
        domains,
        st.sampled_from(_CASINGS),
        st.sampled_from(_SPACES),
    )


def emails(
    *, types: Sequence[EmailType] = tuple(EmailType), address: str | None = None
) -> st.SearchStrategy[Email]:
    """An :class:`~sourcetruth.Email` of one of *types*, from :func:`email_addresses`.

    Shrinks towards the first of *types* and ``pat@example.org``.
    """
    if not types:
        msg = "types must not be empty"
        raise InvalidArgument(msg)
    return st.builds(Email, email_addresses(address=address), st.sampled_from(tuple(types)))


def record_keys(*, prefix: str = "K", count: int = 40) -> st.SearchStrategy[str]:
    """Stable record keys ``K00`` .. ``K39``, a small pool so that draws collide.

    Shrinks towards ``K00``.
    """
    if count < 1:
        msg = "count must be at least 1"
        raise InvalidArgument(msg)
    width = len(str(count - 1))
    return st.integers(0, count - 1).map(lambda i: f"{prefix}{i:0{width}d}")


_ROLES: Final = (Role.GUARDIAN, Role.PUPIL, Role.STAFF, Role.GOVERNOR, Role.OTHER)


@st.composite
def _contact_data(draw: st.DrawFn, role: Role | None, pupils: tuple[str, ...]) -> ContactData:
    chosen = draw(st.sampled_from(_ROLES)) if role is None else role
    year = reg = ""
    if chosen is Role.PUPIL:
        year = draw(st.sampled_from(YEAR_GROUPS))
        reg = year + draw(st.sampled_from("ABC"))
    relationships: list[Relationship] = []
    if chosen is Role.GUARDIAN and pupils:
        for pupil in draw(st.lists(st.sampled_from(pupils), max_size=2, unique=True)):
            relationships.append(
                Relationship(
                    pupil,
                    priority=draw(st.integers(1, 3)),
                    parental_responsibility=draw(st.booleans()),
                    receives_messages=not draw(st.booleans()),
                )
            )
    return ContactData(
        given_name=draw(st.sampled_from(GIVEN_NAMES)),
        family_name=draw(st.sampled_from(FAMILY_NAMES)),
        role=chosen,
        phones=draw(st.lists(phones(), max_size=2)),
        emails=draw(st.lists(emails(), max_size=2)),
        relationships=relationships,
        year_group=year,
        registration_group=reg,
    )


def contact_data(
    *, role: Role | None = None, pupils: Sequence[str] = ()
) -> st.SearchStrategy[ContactData]:
    """What a source might say about a person: every field filled as its role suggests.

    *role* fixes the role; otherwise any. A pupil gets a year and registration
    group; a guardian gets relationships to up to two of *pupils* (keys in
    the same source). Shrinks towards a guardian named Nina Okafor with no
    phones, emails or relationships.
    """
    return _contact_data(role, tuple(pupils))


def records(
    *,
    keys: st.SearchStrategy[str] | None = None,
    role: Role | None = None,
    pupils: Sequence[str] = (),
) -> st.SearchStrategy[Record]:
    """A :class:`~sourcetruth.Record` under a key from *keys* (:func:`record_keys` by default).

    Its data comes from :func:`contact_data` with *role* and *pupils*.
    Shrinks as its key and data do.
    """
    return st.builds(
        Record, record_keys() if keys is None else keys, contact_data(role=role, pupils=pupils)
    )


def _times(at: datetime | st.SearchStrategy[datetime] | None) -> st.SearchStrategy[datetime]:
    if at is None:
        return aware_datetimes()
    if isinstance(at, datetime):
        if at.tzinfo is None:
            msg = "at must be timezone-aware"
            raise InvalidArgument(msg)
        return st.just(at)
    return at


@st.composite
def _snapshots(
    draw: st.DrawFn,
    source: str,
    at: st.SearchStrategy[datetime],
    min_size: int,
    max_size: int,
    keys: st.SearchStrategy[str],
    kind: SnapshotKind,
    removable: tuple[str, ...],
) -> Snapshot:
    chosen = draw(st.lists(keys, min_size=min_size, max_size=max_size, unique=True))
    n_pupils = draw(st.integers(0, len(chosen)))
    pupil_keys = chosen[:n_pupils]
    found = [Record(k, draw(contact_data(role=Role.PUPIL))) for k in pupil_keys]
    found += [Record(k, draw(contact_data(pupils=pupil_keys))) for k in chosen[n_pupils:]]
    removed: list[str] = []
    if kind is SnapshotKind.DELTA:
        others = sorted(set(removable) - set(chosen))
        if others:
            removed = draw(st.lists(st.sampled_from(others), unique=True))
    return Snapshot(source, draw(at), tuple(found), kind, tuple(removed))


def snapshots(
    *,
    source: str = "mis",
    at: datetime | st.SearchStrategy[datetime] | None = None,
    min_size: int = 1,
    max_size: int = 12,
    keys: st.SearchStrategy[str] | None = None,
    kind: SnapshotKind = SnapshotKind.FULL,
    removable: Sequence[str] = (),
) -> st.SearchStrategy[Snapshot]:
    """A snapshot of *source* extracted at *at* (a time, a strategy, or any aware time).

    Its records have unique keys from *keys* (:func:`record_keys` by
    default): some pupils, and others (guardians among them, related to
    those pupils). A ``DELTA`` may also remove some of *removable* that it
    does not change. Shrinks towards *min_size* records, no pupils, nothing
    removed.
    """
    if min_size < 0 or max_size < min_size:
        msg = "need 0 <= min_size <= max_size"
        raise InvalidArgument(msg)
    if kind is SnapshotKind.FULL and min_size < 1:
        msg = "a full snapshot holds at least one record"
        raise InvalidArgument(msg)
    return _snapshots(
        source,
        _times(at),
        min_size,
        max_size,
        record_keys() if keys is None else keys,
        kind,
        tuple(removable),
    )


@st.composite
def _set_overrides(
    draw: st.DrawFn,
    contact_ids: tuple[str, ...],
    fields: tuple[str, ...],
    lifetimes: tuple[OverrideLifetime, ...],
    after: datetime | None,
) -> SetOverride:
    name = draw(st.sampled_from(fields))
    value = draw(contact_data()).only((name,))
    lifetime = draw(st.sampled_from(lifetimes))
    until = None
    if lifetime is OverrideLifetime.UNTIL:
        assert after is not None
        until = after + draw(st.integers(1, 96).map(lambda h: timedelta(hours=h)))
    return SetOverride(draw(st.sampled_from(contact_ids)), name, value, lifetime, until)


def set_overrides(
    *,
    contact_ids: Sequence[str],
    fields: Sequence[str] = ("phones", "emails", "given_name", "family_name"),
    lifetimes: Sequence[OverrideLifetime] | None = None,
    after: datetime | None = None,
) -> st.SearchStrategy[SetOverride]:
    """A :class:`~sourcetruth.SetOverride` of one of *fields* for one of *contact_ids*.

    Lifetimes are drawn from *lifetimes*: by default ``NEXT_SYNC`` and
    ``SOURCE_CHANGE``, and ``UNTIL`` too when *after* (the time the override
    will be set) is given; ``until`` is then 1 to 96 hours after it. Shrinks
    towards the first contact and field, ``NEXT_SYNC``, and an empty value.
    """
    if not contact_ids or not fields:
        msg = "contact_ids and fields must not be empty"
        raise InvalidArgument(msg)
    unknown = unknown_fields(fields)
    if unknown:
        msg = f"unknown fields {unknown}"
        raise InvalidArgument(msg)
    if lifetimes is None:
        lifetimes = tuple(
            lt for lt in OverrideLifetime if after is not None or lt is not OverrideLifetime.UNTIL
        )
    if not lifetimes:
        msg = "lifetimes must not be empty"
        raise InvalidArgument(msg)
    if OverrideLifetime.UNTIL in lifetimes and after is None:
        msg = "an UNTIL lifetime needs 'after', the time it is set"
        raise InvalidArgument(msg)
    return _set_overrides(tuple(contact_ids), tuple(fields), tuple(lifetimes), after)


@st.composite
def _synced(draw: st.DrawFn, source: str, overridden: bool | None) -> tuple[Contact, Book]:
    at = draw(aware_datetimes())
    record = draw(records())
    policy = Policy(sources=(Source(source, SourceKind.MIS),))
    book = merge(Book(), Snapshot(source, at, [record]), policy=policy, at=at, by="nightly sync")
    contact_id = record_id(source, record.key)
    result = book.book
    if draw(st.booleans()) if overridden is None else overridden:
        at += timedelta(hours=draw(st.integers(1, 12)))
        edit = draw(set_overrides(contact_ids=(contact_id,)))
        result = merge(result, edit, policy=policy, at=at, by="office").book
    return contact_at(result, contact_id, policy=policy, at=at), result


def contacts(*, source: str = "mis", overridden: bool | None = None) -> st.SearchStrategy[Contact]:
    """An effective :class:`~sourcetruth.Contact` with real provenance.

    It is made the way the library makes one: a record of *source* merged
    into an empty book and read back, and, when *overridden* is true (or at
    random when None), a local edit of one field on top, which then shows in
    its provenance and ``overrides``. Shrinks as :func:`records` does, and
    towards no override.
    """
    return _synced(source, overridden).map(lambda pair: pair[0])


def overrides(*, source: str = "mis") -> st.SearchStrategy[Override]:
    """A temporary :class:`~sourcetruth.Override` as the merge records one.

    A contact of *source* is synced and then edited (see :func:`contacts`);
    the override is the one that edit made, with its base value, owning
    record, author and lifetime. Its value may equal its base: a person may
    set the value the source already holds, and the next sync confirms it.
    """
    return _synced(source, True).map(lambda pair: pair[0].overrides[0])


def rules() -> st.SearchStrategy[Rule]:
    """A group :class:`~sourcetruth.Rule` over roles, year groups and registration groups.

    Shrinks towards the empty rule (everyone) that is not ``guardians_of``. A
    ``guardians_of`` rule selects pupils, so it never names roles.
    """
    year_groups = st.frozensets(st.sampled_from(YEAR_GROUPS), max_size=2)
    registration_groups = st.frozensets(
        st.builds(str.__add__, st.sampled_from(YEAR_GROUPS), st.sampled_from("ABC")),
        max_size=1,
    )
    plain = st.builds(
        Rule,
        roles=st.frozensets(st.sampled_from(_ROLES), max_size=2),
        year_groups=year_groups,
        registration_groups=registration_groups,
    )
    of_guardians = st.builds(
        Rule,
        year_groups=year_groups,
        registration_groups=registration_groups,
        guardians_of=st.just(True),
        max_priority=st.none() | st.integers(1, 3),
    )
    return plain | of_guardians


def groups(
    *,
    contact_ids: Sequence[str] = (),
    names: Sequence[str] = ("Governors", "Staff", "Year 9 parents"),
) -> st.SearchStrategy[GroupDefinition]:
    """A group named from *names*, with static members from *contact_ids* and maybe a rule.

    Shrinks towards the first name, no members and no rule.
    """
    if not names:
        msg = "names must not be empty"
        raise InvalidArgument(msg)
    members: st.SearchStrategy[frozenset[str]] = (
        st.frozensets(st.sampled_from(tuple(contact_ids))) if contact_ids else st.just(frozenset())
    )
    return st.builds(GroupDefinition, st.sampled_from(tuple(names)), members, st.none() | rules())


_IMPORT_FIELDS: Final = ("given_name", "family_name", "phones", "emails", "role")


@st.composite
def _policies(draw: st.DrawFn, imports: bool | None, guard: DepartureGuard | None) -> Policy:
    left_out = draw(st.sets(st.sampled_from(FIELDS), max_size=len(FIELDS) - 1))
    sources = [
        Source(
            "mis",
            SourceKind.MIS,
            covers=frozenset(f for f in FIELDS if f not in left_out),
            schedule=NIGHTLY,
        )
    ]
    if draw(st.booleans()) if imports is None else imports:
        covers = draw(st.sets(st.sampled_from(_IMPORT_FIELDS), min_size=1))
        sources.append(Source("import", SourceKind.IMPORT, covers=frozenset(covers)))
    if guard is None:
        guard = draw(
            st.just(DEFAULT_GUARD)
            | st.builds(
                DepartureGuard,
                max_count=st.integers(1, 10),
                max_fraction=st.sampled_from((0.1, 0.2, 0.5)),
                min_count=st.integers(1, 5),
                enabled=st.booleans(),
            )
        )
    return Policy(sources=tuple(sources), guard=guard)


def policies(
    *, imports: bool | None = None, guard: DepartureGuard | None = None
) -> st.SearchStrategy[Policy]:
    """A policy with an MIS named ``"mis"`` and, maybe, an import named ``"import"``.

    The MIS syncs nightly at 02:00 (:data:`NIGHTLY`) and covers a random
    non-empty set of fields; the import, present when *imports* is true (or
    at random when None), covers some names, contacts and the role. The
    guard is *guard*, or drawn. Shrinks towards an MIS covering every field,
    no import, and the default guard.
    """
    return _policies(imports, guard)
