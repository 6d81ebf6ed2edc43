"""Rule 9: when will a change show? Schedules in Europe/London, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from school import LONDON, london, mis_policy
from sourcetruth import (
    ADDRESS_BOOK,
    Policy,
    Schedule,
    Source,
    SourceKind,
    UsageError,
    next_sync,
    when_effective,
)

NIGHTLY = Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London")
HALF_PAST_ONE = Schedule("FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "Europe/London")
WEEKDAYS = Schedule("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=2;BYMINUTE=0", "Europe/London")


def syncs_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every sync strictly after *start* and before *end*, by iterating next_sync."""
    found = []
    current = next_sync(schedule, start)
    while current < end:
        found.append(current)
        current = next_sync(schedule, current)
    return found


class TestNextSync:
    def test_next_two_oclock_after_an_ordinary_afternoon(self) -> None:
        """From Tuesday 15:30 the next nightly sync is Wednesday 02:00 London time."""
        assert next_sync(NIGHTLY, london(24, 15, 30)) == london(25, 2)

    def test_result_is_an_aware_utc_instant(self) -> None:
        """The answer is timezone-aware (in UTC), whatever zone the question used."""
        result = next_sync(NIGHTLY, london(24, 15, 30))
        assert result.utcoffset() == timedelta(0)
        assert result == datetime(2026, 11, 25, 2, tzinfo=UTC)

    def test_same_instant_asked_in_another_zone_gives_same_answer(self) -> None:
        """The question's zone does not matter, only the instant."""
        in_utc = london(24, 15, 30).astimezone(UTC)
        assert next_sync(NIGHTLY, in_utc) == next_sync(NIGHTLY, london(24, 15, 30))

    def test_before_two_on_the_same_night(self) -> None:
        """At 01:59 the next sync is the same night's 02:00, not the next day's."""
        assert next_sync(NIGHTLY, london(25, 1, 59)) == london(25, 2)

    def test_summer_two_oclock_is_one_oclock_utc(self) -> None:
        """In British Summer Time, 02:00 London is 01:00 UTC."""
        result = next_sync(NIGHTLY, london(15, 12, month=6))
        assert result == datetime(2026, 6, 16, 1, tzinfo=UTC)

    def test_weekday_rule_skips_the_weekend(self) -> None:
        """From Friday afternoon, a weekday-only rule next syncs on Monday 02:00."""
        friday = london(27, 15)
        assert friday.weekday() == 4
        assert next_sync(WEEKDAYS, friday) == london(30, 2)

    def test_weekday_rule_runs_every_weekday_once_in_a_week(self) -> None:
        """Over a full week the weekday rule yields Mon-Fri 02:00 and nothing else."""
        found = syncs_between(WEEKDAYS, london(22, 12), london(29, 12))
        assert [d.astimezone(LONDON).weekday() for d in found] == [0, 1, 2, 3, 4]
        assert all(d.astimezone(LONDON).hour == 2 for d in found)


class TestChangeAtASyncTime:
    def test_change_exactly_at_sync_time_shows_at_the_next(self) -> None:
        """A change made at the very instant of a sync missed it: it shows the next night."""
        assert next_sync(NIGHTLY, london(25, 2)) == london(26, 2)
        assert when_effective(mis_policy(), "mis", london(25, 2)) == london(26, 2)

    def test_change_just_before_sync_time_shows_at_it(self) -> None:
        """A change a minute before the sync is picked up by it."""
        assert when_effective(mis_policy(), "mis", london(25, 1, 59)) == london(25, 2)


class TestAutumnClockChange:
    """Sunday 25 October 2026: clocks go back at 02:00 BST, so 01:30 happens twice."""

    SATURDAY = datetime(2026, 10, 24, 12, tzinfo=LONDON)
    MONDAY = datetime(2026, 10, 26, 12, tzinfo=LONDON)

    def test_one_thirty_sync_happens_exactly_once_that_day(self) -> None:
        """Iterating from Saturday, exactly one sync falls on Sunday's local date."""
        found = syncs_between(HALF_PAST_ONE, self.SATURDAY, self.MONDAY)
        on_sunday = [d for d in found if d.astimezone(LONDON).date() == date(2026, 10, 25)]
        assert len(on_sunday) == 1
        assert len(found) == 2  # Sunday's and Monday's

    def test_it_runs_at_the_first_one_thirty(self) -> None:
        """The sync is at the first 01:30 (BST), which is 00:30 UTC."""
        sunday = next_sync(HALF_PAST_ONE, self.SATURDAY)
        assert sunday == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
        assert sunday.astimezone(LONDON).utcoffset() == timedelta(hours=1)

    def test_between_the_two_one_thirties_next_is_monday(self) -> None:
        """Asked at 00:45 UTC (after the first 01:30), the next sync is Monday's."""
        after_first = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
        assert next_sync(HALF_PAST_ONE, after_first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


class TestSpringClockChange:
    """Sunday 29 March 2026: clocks go forward at 01:00 GMT, so 01:30 does not exist."""

    def test_one_thirty_sync_still_happens_that_day(self) -> None:
        """The sync still runs on Sunday's local date, once."""
        saturday = datetime(2026, 3, 28, 12, tzinfo=LONDON)
        monday = datetime(2026, 3, 30, 12, tzinfo=LONDON)
        found = syncs_between(HALF_PAST_ONE, saturday, monday)
        on_sunday = [d for d in found if d.astimezone(LONDON).date() == date(2026, 3, 29)]
        assert len(on_sunday) == 1

    def test_it_runs_at_one_thirty_utc(self) -> None:
        """It runs when the clock would have shown 01:30: 01:30 UTC (02:30 BST)."""
        saturday = datetime(2026, 3, 28, 12, tzinfo=LONDON)
        sunday = next_sync(HALF_PAST_ONE, saturday)
        assert sunday == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
        assert sunday.astimezone(LONDON).hour == 2


class TestBadQuestions:
    def test_naive_datetime_raises_usage_error(self) -> None:
        """A naive time is the caller's mistake."""
        with pytest.raises(UsageError):
            next_sync(NIGHTLY, datetime(2026, 11, 24, 15, 30))

    def test_naive_datetime_in_when_effective_raises_usage_error(self) -> None:
        """when_effective refuses a naive time too, for a source and for the address book."""
        with pytest.raises(UsageError):
            when_effective(mis_policy(), "mis", datetime(2026, 11, 24, 15, 30))
        with pytest.raises(UsageError):
            when_effective(mis_policy(), ADDRESS_BOOK, datetime(2026, 11, 24, 15, 30))

    @pytest.mark.parametrize("rule", ["FREQ=SOMETIMES;BYHOUR=2", "not a rule", ""])
    def test_invalid_rule_raises_usage_error(self, rule: str) -> None:
        """A rule that is not RFC 5545 is a UsageError."""
        with pytest.raises(UsageError):
            next_sync(Schedule(rule, "Europe/London"), london(24, 15))

    @pytest.mark.parametrize("zone", ["Europe/Atlantis", "Mars/Olympus_Mons", "../etc"])
    def test_unknown_timezone_raises_usage_error(self, zone: str) -> None:
        """A timezone name that the tz database does not know is a UsageError."""
        with pytest.raises(UsageError):
            next_sync(Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", zone), london(24, 15))

    def test_source_without_schedule_raises_usage_error(self) -> None:
        """The import in mis_policy has no schedule: when it shows cannot be answered."""
        policy = mis_policy()
        assert policy.scheduled("import") is None
        with pytest.raises(UsageError, match="schedule"):
            when_effective(policy, "import", london(24, 15))

    def test_unknown_source_raises_usage_error(self) -> None:
        """A source the policy does not name is a UsageError."""
        with pytest.raises(UsageError):
            when_effective(mis_policy(), "nope", london(24, 15))


class TestWhenEffective:
    def test_address_book_change_is_effective_at_once(self) -> None:
        """An address-book change shows at the instant it is made."""
        changed = london(26, 18, 7)
        assert when_effective(mis_policy(), ADDRESS_BOOK, changed) == changed

    def test_source_change_is_effective_at_next_scheduled_sync(self) -> None:
        """A change at the MIS on Tuesday 12:30 shows at Wednesday 02:00."""
        assert when_effective(mis_policy(), "mis", london(24, 12, 30)) == london(25, 2)

    def test_uses_the_sources_own_schedule(self) -> None:
        """Each source answers with its own schedule: a weekday feed waits over the weekend."""
        policy = Policy(sources=(Source("mis", SourceKind.MIS, schedule=WEEKDAYS),))
        assert when_effective(policy, "mis", london(28, 10)) == london(30, 2)
