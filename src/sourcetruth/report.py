"""What a merge did: the :class:`Report`, its entries, and the operations on it.

A report says everything one merge did, or would do, or why it did nothing:
the contacts it created, each effective field value that changed, who
departed and who returned, the overrides it set, ended and kept, the values
kept raw, the possible duplicates, and the hold of a sync the departure guard
stopped. :class:`MergeResult` pairs it with the new book.

The operations that read every list of a report live here, beside it, and
name each list once (in ``_LISTS``): :func:`combine` (one report for changes
committed together), :func:`without` (a report with an erased person taken
out, rule 13) and :func:`counts` (how many entries of each kind, for a
summary).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypedDict

import attrs
from attrs import frozen

from sourcetruth.exceptions import UsageError
from sourcetruth.model import (
    Book,
    ContactData,
    EndedOverride,
    Override,
    OverrideOutcome,
    Provenance,
    utc,
)

__all__ = [
    "Counts",
    "FieldChange",
    "Held",
    "MergeResult",
    "PossibleDuplicate",
    "Report",
    "Status",
    "Unnormalised",
    "combine",
    "counts",
    "without",
]


class Status(enum.Enum):
    """How a merge ended: applied, held by the departure guard, or with nothing to change."""

    APPLIED = "applied"
    HELD = "held"
    NO_CHANGE = "no-change"


@frozen
class FieldChange:
    """An effective field value that changed, with where it came from before and after."""

    contact_id: str
    field: str
    before: ContactData | None
    after: ContactData
    before_provenance: Provenance | None
    after_provenance: Provenance

    @property
    def before_value(self) -> Any:
        return None if self.before is None else self.before.get(self.field)

    @property
    def after_value(self) -> Any:
        return self.after.get(self.field)


@frozen
class Unnormalised:
    """A value kept raw because it did not normalise (rule 10); never dropped."""

    record: str
    field: str
    index: int
    problem: str


@frozen
class PossibleDuplicate:
    """Two records from different feeds that look like one person (rule 12)."""

    record: str
    other: str
    reasons: tuple[str, ...]


@frozen
class Held:
    """Why a sync was held, and the token that confirms this snapshot only."""

    reason: str
    departures: int
    population: int
    token: str
    departing: tuple[str, ...] = ()


@frozen
class Report:
    """Everything one merge did, or would do, or why it did nothing."""

    status: Status
    change: str
    at: datetime = attrs.field(converter=utc)
    by: str
    source: str | None = None
    sync: int | None = None
    created: tuple[str, ...] = ()
    changes: tuple[FieldChange, ...] = attrs.field(default=(), repr=False)
    departed: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()
    erased: tuple[str, ...] = ()
    overrides_set: tuple[Override, ...] = attrs.field(default=(), repr=False)
    overrides_ended: tuple[EndedOverride, ...] = attrs.field(default=(), repr=False)
    overrides_kept: tuple[Override, ...] = attrs.field(default=(), repr=False)
    unnormalised: tuple[Unnormalised, ...] = ()
    duplicates: tuple[PossibleDuplicate, ...] = ()
    held: Held | None = None
    suppressed: int = 0

    @property
    def lost(self) -> tuple[EndedOverride, ...]:
        """Overrides that ended ``lost``: the value still needs updating at source."""
        return tuple(e for e in self.overrides_ended if e.outcome is OverrideOutcome.LOST)


@frozen
class MergeResult:
    """What :func:`~sourcetruth.merge` returns: the new book, and the report of the change."""

    book: Book
    report: Report


#: Whether an entry of a report's list is about erased people: it is given the
#: entry, the erased contact ids and the erased record ids.
_Erased = Callable[[Any, frozenset[str], frozenset[str]], bool]

#: Every list a report holds, each with what makes one of its entries about
#: erased people. The operations below read the lists from here.
_LISTS: Final[Mapping[str, _Erased]] = {
    "created": lambda contact_id, contacts, _: contact_id in contacts,
    "changes": lambda change, contacts, _: change.contact_id in contacts,
    "departed": lambda contact_id, contacts, _: contact_id in contacts,
    "returned": lambda contact_id, contacts, _: contact_id in contacts,
    "erased": lambda contact_id, contacts, _: contact_id in contacts,
    "overrides_set": lambda override, contacts, _: override.contact_id in contacts,
    "overrides_ended": lambda ended, contacts, _: ended.override.contact_id in contacts,
    "overrides_kept": lambda override, contacts, _: override.contact_id in contacts,
    "unnormalised": lambda value, _, records: value.record in records,
    "duplicates": lambda pair, _, records: pair.record in records or pair.other in records,
}


def _change_of(reports: Sequence[Report]) -> str:
    """What a batch of reports is about: one kind of change, a count of one kind, or a list."""
    kinds = list(dict.fromkeys(r.change for r in reports))
    if len(reports) == 1:
        return kinds[0]
    if len(kinds) == 1:
        return f"{len(reports)} x {kinds[0]}"
    return f"{len(reports)} changes: {', '.join(kinds)}"


def combine(reports: Sequence[Report]) -> Report:
    """One report for changes merged one after another and committed together."""
    if not reports:
        msg = "nothing to combine"
        raise UsageError(msg)
    statuses = {r.status for r in reports}
    # Applied if any part was; else held if any part was held: a hold is never hidden.
    status = next(s for s in (Status.APPLIED, Status.HELD, Status.NO_CHANGE) if s in statuses)
    joined: dict[str, Any] = {
        name: tuple(item for r in reports for item in getattr(r, name)) for name in _LISTS
    }
    return attrs.evolve(
        reports[-1],
        status=status,
        change=_change_of(reports),
        held=next((r.held for r in reports if r.held is not None), None),
        suppressed=sum(r.suppressed for r in reports),
        **joined,
    )


def without(report: Report, contacts: frozenset[str], records: frozenset[str]) -> Report:
    """*report* with every entry about the erased *contacts* and *records* taken out (rule 13).

    A report holds values (a field's value before and after, an override's
    value): after an erasure, no value of the erased person may stay in one.
    """
    kept: dict[str, Any] = {
        name: tuple(e for e in getattr(report, name) if not erased(e, contacts, records))
        for name, erased in _LISTS.items()
    }
    held = report.held
    if held is not None:
        held = attrs.evolve(held, departing=tuple(c for c in held.departing if c not in contacts))
    return attrs.evolve(report, held=held, **kept)


class Counts(TypedDict):
    """How many entries of each kind a report holds: a run's summary.

    ``lost`` counts the overrides that ended ``lost`` (to update at source).
    """

    created: int
    changes: int
    departed: int
    returned: int
    lost: int
    unnormalised: int
    duplicates: int


def counts(report: Report) -> Counts:
    """How many entries of each kind *report* holds."""
    return Counts(
        created=len(report.created),
        changes=len(report.changes),
        departed=len(report.departed),
        returned=len(report.returned),
        lost=len(report.lost),
        unnormalised=len(report.unnormalised),
        duplicates=len(report.duplicates),
    )
