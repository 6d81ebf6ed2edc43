"""Worklists for the people who keep the data right: pure queries over a book.

- :func:`update_at_source`: every local edit that was ``lost`` (nobody
  updated the source), and every edit still in force, with who made it and
  when it will end. The data manager's to-do list.
- :func:`before_next_sync`: which local edits the next scheduled sync of a
  source would end, from a dry run of the snapshot when one is at hand,
  otherwise from the edits' lifetimes and the schedule.
- :func:`two_feeds`: people present in an MIS feed and an import (rule 12).
- :func:`data_quality`: values kept raw because they do not normalise, links
  to pupils that are not there, and guardians no channel can reach.

None of them reads a clock: the time is an argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from attrs import field, frozen

from sourcetruth._util import to_tuple
from sourcetruth.audience import EffectiveCache, usable_address
from sourcetruth.duplicates import possible_duplicates
from sourcetruth.merge import dry_run
from sourcetruth.model import (
    KEPT_AT_SYNC,
    Book,
    Channel,
    EndedOverride,
    Override,
    OverrideOutcome,
    Role,
    Snapshot,
    split_record_id,
    utc,
)
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy
from sourcetruth.report import PossibleDuplicate
from sourcetruth.schedule import next_sync
from sourcetruth.view import CurrentContact

__all__ = [
    "DataProblem",
    "EditInForce",
    "NextSyncEnds",
    "UpdateAtSource",
    "before_next_sync",
    "count_by_source",
    "data_quality",
    "two_feeds",
    "update_at_source",
]


@frozen
class EditInForce:
    """A local edit still in force, and when it will end (None: no schedule says)."""

    override: Override
    ends_at: datetime | None


@frozen
class UpdateAtSource:
    """What to update at the source: edits lost at a sync, and edits still in force."""

    lost: tuple[EndedOverride, ...] = field(converter=to_tuple)
    in_force: tuple[EditInForce, ...] = field(converter=to_tuple)


def _owning_source(override: Override) -> str:
    return split_record_id(override.record)[0]


def _next_sync_ends(override: Override) -> bool:
    """Whether the next sync of the owning source ends *override*, whatever it reads."""
    return not KEPT_AT_SYNC[override.lifetime]


def _ends_at(override: Override, policy: Policy, at: datetime) -> datetime | None:
    source = policy.source(_owning_source(override))
    candidates = []
    if _next_sync_ends(override) and source.schedule is not None:
        candidates.append(next_sync(source.schedule, at))
    if override.until is not None:
        candidates.append(override.until)
    return min(candidates) if candidates else None


def _in_force(book: Book, at: datetime) -> Iterator[Override]:
    for contact_id in sorted(book.overrides):
        for override in book.overrides[contact_id]:
            if override.active_at(at):
                yield override


def update_at_source(
    book: Book, *, policy: Policy, at: datetime, since: datetime | None = None
) -> UpdateAtSource:
    """Edits ended as ``lost`` (since *since*, if given) and edits in force at *at*."""
    at = utc(at)
    lost = [
        ended
        for contact_id in sorted(book.ended_overrides)
        for ended in book.ended_overrides[contact_id]
        if ended.outcome is OverrideOutcome.LOST
        and ended.ended_at <= at
        and (since is None or ended.ended_at >= utc(since))
    ]
    lost.sort(key=lambda e: (e.ended_at, e.override.contact_id, e.override.field))
    live = [EditInForce(o, _ends_at(o, policy, at)) for o in _in_force(book, at)]
    return UpdateAtSource(lost, live)


@frozen
class NextSyncEnds:
    """Edits the next sync of a source would end, and how (when a dry run could tell)."""

    source: str
    at: datetime | None
    ending: tuple[Override, ...] = field(converter=to_tuple)
    outcomes: tuple[EndedOverride, ...] = field(default=(), converter=to_tuple)


def before_next_sync(
    book: Book,
    source: str,
    *,
    policy: Policy,
    at: datetime,
    snapshot: Snapshot | None = None,
) -> NextSyncEnds:
    """Which local edits *source*'s next scheduled sync after *at* would end.

    With *snapshot* (the export that sync will read), a dry run gives each
    edit's outcome (``confirmed``, ``superseded`` or ``lost``); without one,
    the edits whose lifetime ends at that sync are listed.
    """
    at = utc(at)
    schedule = policy.source(source).schedule
    when = None if schedule is None else next_sync(schedule, at)
    if snapshot is not None:
        # The sync runs no earlier than the book's last change or the export's reading.
        run_at = max(t for t in (at, book.updated_at, snapshot.extracted_at) if t is not None)
        report = dry_run(book, snapshot, policy=policy, at=run_at, by="report")
        ended = tuple(
            e
            for e in report.overrides_ended
            if _owning_source(e.override) == source and e.sync is not None
        )  # edits whose own time ran out are not this sync's doing
        return NextSyncEnds(source, when, tuple(e.override for e in ended), ended)
    ending = [
        o
        for o in _in_force(book, at)
        if _owning_source(o) == source
        and _next_sync_ends(o)
        and (o.until is None or when is None or o.until > when)
    ]
    return NextSyncEnds(source, when, ending)


def two_feeds(book: Book, *, policy: Policy) -> tuple[PossibleDuplicate, ...]:
    """People present in an MIS feed and in an import, not linked (rule 12)."""
    return possible_duplicates(book, policy=policy)


@frozen
class DataProblem:
    """One thing wrong with the data: ``kind`` is ``unnormalised``, ``dangling-link``
    or ``unreachable``; ``field`` names the field; ``detail`` says what, never the value.
    ``source`` is the source the field's value came from (None: no source's).
    """

    contact_id: str
    kind: str
    field: str
    detail: str
    source: str | None = None


def count_by_source(
    problems: Iterable[DataProblem], *, kind: str = "unnormalised", field: str = "phones"
) -> dict[str, int]:
    """How many of *problems* of *kind* in *field* came from each source, by source name.

    With the defaults: the phone numbers each source sent that are not valid.
    """
    counted = Counter(p.source or "(none)" for p in problems if p.kind == kind and p.field == field)
    return dict(sorted(counted.items()))


def data_quality(book: Book, *, policy: Policy, at: datetime) -> tuple[DataProblem, ...]:
    """Problems in the effective data at *at*, by contact then kind."""
    at = utc(at)
    # The current view holds each address normalised: only those that failed are read again.
    everyone = EffectiveCache(book, policy, at).entries()
    present = {cid: e for cid, e in everyone.items() if not e.departed}
    found: list[DataProblem] = []
    for contact_id, entry in sorted(present.items()):
        data = entry.data
        phones_from, emails_from = _source_of(entry, "phones"), _source_of(entry, "emails")
        region = policy.region_of(phones_from)
        for index, (phone, value) in enumerate(zip(data.phones, entry.phones, strict=True)):
            if value is None:
                detail = f"phone {index + 1}: {normalise_phone(phone.number, region).problem}"
                found.append(DataProblem(contact_id, "unnormalised", "phones", detail, phones_from))
        for index, (email, value) in enumerate(zip(data.emails, entry.emails, strict=True)):
            if value is None:
                detail = f"email {index + 1}: {normalise_email(email.address).problem}"
                found.append(DataProblem(contact_id, "unnormalised", "emails", detail, emails_from))
        source = entry.relationships_source
        for relationship in data.relationships:
            pupil = relationship.pupil if source is None else f"{source}:{relationship.pupil}"
            target = present.get(pupil)
            if target is None or target.data.role is not Role.PUPIL:
                detail = f"the link to pupil {relationship.pupil} points to no present pupil"
                found.append(DataProblem(contact_id, "dangling-link", "relationships", detail))
        if data.role is Role.GUARDIAN and not any(
            usable_address(data, channel, region)[0] for channel in Channel
        ):
            detail = "no usable mobile number and no usable email address"
            found.append(DataProblem(contact_id, "unreachable", "phones", detail, phones_from))
    return tuple(found)


def _source_of(entry: CurrentContact, field_name: str) -> str | None:
    origin = entry.origin(field_name)
    return None if origin is None else origin.source
