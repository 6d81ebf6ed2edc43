"""Precedence, coverage, guards and schedules: the rules as data.

A :class:`Policy` says which sources exist, which fields each covers, in what
order sources fill the fields a contact's home does not cover, how many
departures one sync may cause before it is held, and when each source syncs.
Nothing in here reads a clock or the environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Final

import attrs
import phonenumbers
from attrs import field, frozen

from sourcetruth._util import to_frozenset, to_tuple
from sourcetruth.exceptions import UsageError
from sourcetruth.model import ADDRESS_BOOK, FIELDS, SourceKind, check_fields, check_source_name

__all__ = [
    "DEFAULT_GUARD",
    "DepartureGuard",
    "Policy",
    "Schedule",
    "Source",
    "check_region",
]


def _check_fields(_inst: object, _attr: object, value: frozenset[str]) -> None:
    check_fields(value)


@frozen
class Schedule:
    """When a source syncs: an RFC 5545 recurrence rule in a local timezone.

    ``rule`` is the RRULE value (``"FREQ=DAILY;BYHOUR=2;BYMINUTE=0"``), read in
    ``timezone``'s wall-clock time, daylight saving included.
    """

    rule: str
    timezone: str = "Europe/London"


def check_region(value: str) -> None:
    """Raise :class:`~sourcetruth.UsageError` unless *value* is a phone region code."""
    if value not in phonenumbers.SUPPORTED_REGIONS:
        # Any other value would leave every number written without +country unnormalised.
        msg = "region is not a region code for phone numbers (two capital letters, like GB)"
        raise UsageError(msg)


def _check_region(_inst: object, _attr: object, value: str | None) -> None:
    if value is not None:
        check_region(value)


@frozen
class Source:
    """A named origin of contact data and the fields it covers.

    ``region`` is the phone region its numbers written without a country code
    are read in, for a feed from another country; None: the policy's
    ``default_region``.
    """

    name: str
    kind: SourceKind
    covers: frozenset[str] = field(
        default=frozenset(FIELDS), converter=to_frozenset, validator=_check_fields
    )
    schedule: Schedule | None = None
    region: str | None = field(default=None, validator=_check_region, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_source_name(self.name)
        if (self.kind is SourceKind.ADDRESS_BOOK) != (self.name == ADDRESS_BOOK):
            msg = f"the address book is the source named {ADDRESS_BOOK!r}, of kind ADDRESS_BOOK"
            raise UsageError(msg)


def _at_least_zero(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{attr.name} must be a whole number, zero or more"
        raise UsageError(msg)


def _fraction(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        msg = f"{attr.name} must be a number from 0 to 1"
        raise UsageError(msg)


@frozen
class DepartureGuard:
    """The mass-departure guard of rule 6.

    A sync is held when the records it would depart number more than
    ``max_count``, or more than ``max_fraction`` of the source's present
    records once they are at least ``min_count``. The defaults follow two
    widely used directory syncs: 500 deletions, and 20%; ``min_count`` keeps a
    handful of leavers in a tiny source from tripping the fraction.
    """

    max_count: int = field(default=500, validator=_at_least_zero)
    max_fraction: float = field(default=0.20, validator=_fraction)
    min_count: int = field(default=5, validator=_at_least_zero)
    enabled: bool = True

    def trips(self, departures: int, population: int) -> bool:
        if not self.enabled or departures == 0:
            return False
        if departures > self.max_count:
            return True
        return departures >= self.min_count and departures > self.max_fraction * population


#: The departure guard a policy has unless it names another.
DEFAULT_GUARD: Final = DepartureGuard()

_ADDRESS_BOOK_SOURCE: Final = Source(ADDRESS_BOOK, SourceKind.ADDRESS_BOOK)


@frozen
class Policy:
    """The sources, their precedence, the guard and the phone region.

    ``default_region`` reads the numbers of every source that sets no
    ``region`` of its own.

    ``precedence`` names sources from strongest to weakest; sources left out
    follow in the order given in ``sources``. The address book is always a
    source, covering every field, and always the weakest: it owns its own
    contacts, and for a contact whose home is a feed it only keeps local
    values for fields that no feed of that contact covers.
    """

    sources: tuple[Source, ...] = field(converter=to_tuple)
    precedence: tuple[str, ...] = field(default=(), converter=to_tuple)
    guard: DepartureGuard = DEFAULT_GUARD
    default_region: str = field(default="GB", validator=_check_region)
    #: The secret of the keyed hashes that keep erased people out (rule 13).
    #: Keep it outside the book's store, so the store alone cannot tell whose
    #: records were erased.
    suppression_key: str = field(default="", repr=False)

    def __attrs_post_init__(self) -> None:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            msg = "two sources share a name"
            raise UsageError(msg)
        unknown = sorted(set(self.precedence) - set(names) - {ADDRESS_BOOK})
        if unknown:
            msg = f"precedence names unknown sources {unknown}"
            raise UsageError(msg)
        if ADDRESS_BOOK in self.precedence[:-1]:
            # Local values only ever fill what no feed covers: the address book
            # owns its own contacts and ranks below every feed.
            msg = f"{ADDRESS_BOOK!r} can only come last in the precedence"
            raise UsageError(msg)

    @classmethod
    def simple(
        cls, *sources: Source, guard: DepartureGuard = DEFAULT_GUARD, region: str = "GB"
    ) -> Policy:
        """A policy whose precedence is the order of *sources*."""
        return cls(sources=sources, guard=guard, default_region=region)

    @cached_property
    def _by_name(self) -> dict[str, Source]:
        by_name = {s.name: s for s in self.sources}
        by_name.setdefault(ADDRESS_BOOK, _ADDRESS_BOOK_SOURCE)
        return by_name

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Every source name, strongest first."""
        order = list(dict.fromkeys(self.precedence))
        order += [s.name for s in self.sources if s.name not in order and s.name != ADDRESS_BOOK]
        if ADDRESS_BOOK not in order:
            order.append(ADDRESS_BOOK)
        return tuple(order)

    @cached_property
    def _rank(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.order)}

    def source(self, name: str) -> Source:
        try:
            return self._by_name[name]
        except KeyError:
            msg = f"the policy has no source named {name!r}"
            raise UsageError(msg) from None

    def rank(self, name: str) -> int:
        """Lower is stronger."""
        self.source(name)
        return self._rank[name]

    def covers(self, source: str, field_name: str) -> bool:
        return field_name in self.source(source).covers

    def strongest(self, sources: Iterable[str]) -> str:
        return min(sources, key=self.rank)

    def scheduled(self, name: str) -> Schedule | None:
        return self.source(name).schedule

    def region_of(self, source: str | None) -> str:
        """The phone region the numbers of *source* are read in (None: the default)."""
        if source is None:
            return self.default_region
        region = self._by_name[source].region if source in self._by_name else None
        return self.default_region if region is None else region
