"""What a business calendar says, in local wall-clock terms (no arithmetic here)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SECONDS_PER_DAY = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


class CalendarError(ValueError):
    """A calendar that cannot answer: bad hours, unknown zone, or no working time at all."""


@dataclass(frozen=True, slots=True, order=True)
class WorkInterval:
    """Open from `start` to `end`, in seconds after local midnight of the day it belongs to.

    `end` may exceed 86 400: a 22:00-02:00 shift is (79 200, 93 600) and ends on the next day.
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < SECONDS_PER_DAY:
            raise CalendarError(f"interval start {self.start}s is outside the day")
        if not self.start < self.end <= self.start + SECONDS_PER_DAY:
            raise CalendarError(f"interval {self.start}s-{self.end}s is empty or longer than a day")

    def __str__(self) -> str:
        return f"{_format_time(self.start)}-{_format_time(self.end % SECONDS_PER_DAY or self.end)}"


def parse_time(text: str, *, allow_24: bool = False) -> int:
    """'HH:MM' -> seconds after midnight; '24:00' only where it means 'end of the day'."""
    match = _TIME.match(text.strip())
    if match is None:
        raise CalendarError(f"invalid time {text!r}: expected HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if allow_24 and hours == 24 and minutes == 0:
        return SECONDS_PER_DAY
    if hours > 23 or minutes > 59:
        raise CalendarError(f"invalid time {text!r}: hours 00-23, minutes 00-59 (24:00 only as an end)")
    return hours * 3600 + minutes * 60


def parse_interval(text: str) -> WorkInterval:
    """'10:00-19:00'; an end at or before the start crosses midnight ('22:00-02:00')."""
    start_text, sep, end_text = text.partition("-")
    if not sep:
        raise CalendarError(f"invalid interval {text!r}: expected HH:MM-HH:MM")
    start = parse_time(start_text)
    end = parse_time(end_text, allow_24=True)
    if end == start:
        raise CalendarError(f"invalid interval {text!r}: empty (for a whole day write 00:00-24:00)")
    if end < start:
        end += SECONDS_PER_DAY
    return WorkInterval(start, end)


def parse_intervals(texts: Iterable[str]) -> tuple[WorkInterval, ...]:
    """Parse and sort one day's intervals; overlapping intervals are a configuration error."""
    intervals = tuple(sorted(parse_interval(text) for text in texts))
    check_no_overlap(intervals)
    return intervals


def check_no_overlap(intervals: tuple[WorkInterval, ...]) -> None:
    ordered = sorted(intervals, key=lambda interval: interval.start)
    for earlier, later in itertools.pairwise(ordered):
        if later.start < earlier.end:
            raise CalendarError(f"intervals {earlier} and {later} overlap")


def _format_time(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


Hours = tuple[WorkInterval, ...]


@dataclass(frozen=True, slots=True)
class HolidayDates:
    """A country's public holidays and moved working days for the years `first_year`..`last_year`,
    as one release of the `holidays` library gave them: a calendar that carries them answers the
    same in those years after the library is upgraded (a replayed history keeps its deadlines)."""

    first_year: int
    last_year: int
    public: frozenset[date] = frozenset()
    moved_working: frozenset[date] = frozenset()

    def covers(self, year: int) -> bool:
        return self.first_year <= year <= self.last_year


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    """A business calendar in the desk's own terms.

    Which hours apply on a local date, first match wins:
    1. `overrides[date]` (an empty tuple closes the day);
    2. `extra_working_days` -> `working_day_hours`;
    3. `extra_holidays` -> `holiday_hours`;
    4. a weekend day the holiday calendar declares a working day (Russia's moved working Saturday),
       when `observe_moved_working_days` -> `working_day_hours`;
    5. a public holiday of `holiday_country`/`holiday_subdivision` (including a weekday made a day off)
       -> `holiday_hours` (empty by default: closed);
    6. `weekly[weekday]` (Monday = 0).

    `working_day_hours` defaults to Monday's hours: a moved working day works like a weekday.
    """

    timezone: str
    weekly: tuple[Hours, Hours, Hours, Hours, Hours, Hours, Hours]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    holiday_hours: Hours = ()
    working_day_hours: Hours | None = None
    observe_moved_working_days: bool = True
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    overrides: Mapping[date, Hours] = field(default_factory=dict)
    # The country's dates as recorded (years it covers); other years ask the `holidays` library.
    pinned_holidays: HolidayDates | None = None

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise CalendarError(f"unknown time zone {self.timezone!r}") from error
        if len(self.weekly) != 7:
            raise CalendarError("weekly hours need exactly 7 weekdays (Monday first)")
        special = (self.holiday_hours, self.working_day_hours or ())
        for hours in (*self.weekly, *special, *self.overrides.values()):
            check_no_overlap(hours)

    @property
    def moved_day_hours(self) -> Hours:
        return self.weekly[0] if self.working_day_hours is None else self.working_day_hours

    def has_any_working_time(self) -> bool:
        """False when no rule can ever open the calendar (arithmetic on it could never finish)."""
        sources = [*self.weekly, self.holiday_hours, *self.overrides.values()]
        if self.extra_working_days or self.observe_moved_working_days:
            sources.append(self.moved_day_hours)
        return any(sources)

    @classmethod
    def from_text(
        cls,
        timezone: str,
        weekly: Mapping[str, Iterable[str]],
        *,
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        holiday_hours: Iterable[str] = (),
        working_day_hours: Iterable[str] | None = None,
        observe_moved_working_days: bool = True,
        extra_holidays: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
        overrides: Mapping[date, Iterable[str]] | None = None,
    ) -> CalendarSpec:
        """Build from 'HH:MM-HH:MM' strings keyed by 'mon'..'sun' (missing weekdays are closed)."""
        unknown = set(weekly) - set(WEEKDAYS)
        if unknown:
            raise CalendarError(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        days = tuple(parse_intervals(weekly.get(name, ())) for name in WEEKDAYS)
        return cls(
            timezone=timezone,
            weekly=(days[0], days[1], days[2], days[3], days[4], days[5], days[6]),
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
            holiday_hours=parse_intervals(holiday_hours),
            working_day_hours=None if working_day_hours is None else parse_intervals(working_day_hours),
            observe_moved_working_days=observe_moved_working_days,
            extra_holidays=frozenset(extra_holidays),
            extra_working_days=frozenset(extra_working_days),
            overrides={day: parse_intervals(hours) for day, hours in (overrides or {}).items()},
        )
