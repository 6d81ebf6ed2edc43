"""When will it show? (rule 9)

A source's :class:`~sourcetruth.Schedule` is an RFC 5545 recurrence rule read
in the school's own wall-clock time. The rule yields each local time once: on
the autumn day when 01:30 happens twice, a 01:30 sync runs at the first of
them; on the spring day when 01:30 does not exist, it runs at the instant the
clock would have shown 01:30 (02:30 summer time). Address-book changes show
at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from sourcetruth.exceptions import UsageError
from sourcetruth.model import ADDRESS_BOOK, utc
from sourcetruth.policy import Policy, Schedule

__all__ = ["next_sync", "when_effective"]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown timezone {name!r}"
        raise UsageError(msg) from None


def next_sync(schedule: Schedule, after: datetime) -> datetime:
    """The first scheduled sync strictly after *after*, as an aware UTC time."""
    after = utc(after)
    zone = _zone(schedule.timezone)
    local = after.astimezone(zone).replace(tzinfo=None)
    # Start a day early, so that an occurrence whose wall time is shifted by a
    # clock change is not missed, and compare true instants afterwards.
    start = (local - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        rule = rrulestr(schedule.rule, dtstart=start, ignoretz=True)
    except (ValueError, TypeError):
        msg = "the schedule is not a valid RFC 5545 recurrence rule"
        raise UsageError(msg) from None
    for wall in rule:
        # fold=0: an ambiguous wall time is its first occurrence, and a wall time
        # in the spring gap is read with the offset in force before the gap.
        instant = utc(wall.replace(tzinfo=zone, fold=0))
        if instant > after:
            return instant
    msg = "the schedule has no sync after that time"
    raise UsageError(msg)


def when_effective(policy: Policy, source: str, changed_at: datetime) -> datetime:
    """When a change made in *source* at *changed_at* becomes effective in the book.

    An address-book change: at once. A source change: at its first scheduled
    sync after the change.
    """
    changed_at = utc(changed_at)
    if source == ADDRESS_BOOK:
        return changed_at
    schedule = policy.scheduled(source)
    if schedule is None:
        msg = f"source {source!r} has no schedule in the policy"
        raise UsageError(msg)
    return next_sync(schedule, changed_at)
