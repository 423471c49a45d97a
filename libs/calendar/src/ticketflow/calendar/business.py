"""Business-time arithmetic on a calendar, exact to the second.

The calendar is expanded once into sorted, merged open intervals in epoch seconds, with a running
total of business seconds, covering whole local years. Every query is then a `bisect` on plain int
lists, so one `add_business_seconds_ts` costs about a microsecond. The covered years grow on demand;
forward searches are bounded by `max_search_years` and raise `CalendarError` instead of looping.

Local wall times become instants with the zone's rules: a boundary in a spring-forward gap moves to
the transition instant; a boundary inside a repeated (fall-back) hour means its first occurrence.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from ticketflow.calendar.spec import SECONDS_PER_DAY, CalendarError, CalendarSpec, HolidayDates, Hours

_MIN_YEAR = 1971
_MAX_YEAR = 9998


class BusinessCalendar:
    """Answers "is it open", "when does it open" and business-second sums for one calendar."""

    def __init__(self, spec: CalendarSpec, *, max_search_years: int = 10) -> None:
        if not spec.has_any_working_time():
            raise CalendarError("calendar has no working time at all (every weekday and rule is closed)")
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.max_search_years = max_search_years
        self._years: tuple[int, int] | None = None  # covered local years [first, last)
        self._cov_lo = 0
        self._cov_hi = 0
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._cum_start: list[int] = []  # business seconds from _cov_lo to _starts[i]
        self._cum_end: list[int] = []  # ... to _ends[i]
        self._year_intervals: dict[int, list[tuple[int, int]]] = {}

    # --- which hours apply on a local date -------------------------------------------------------

    def hours_on(self, day: date) -> Hours:
        """The working intervals that start on this local date (see `CalendarSpec` for the rules)."""
        spec = self.spec
        override = spec.overrides.get(day)
        if override is not None:
            return override
        if day in spec.extra_working_days:
            return spec.moved_day_hours
        if day in spec.extra_holidays:
            return spec.holiday_hours
        pinned = spec.pinned_holidays
        if pinned is not None and pinned.covers(day.year):
            public, moved_working = pinned.public, pinned.moved_working
        else:
            public, moved_working = _public_days(spec.holiday_country, spec.holiday_subdivision, day.year)
        if spec.observe_moved_working_days and day in moved_working:
            return spec.moved_day_hours
        if day in public:
            return spec.holiday_hours
        return spec.weekly[day.weekday()]

    # --- epoch-second API (the SLA hot path) -----------------------------------------------------

    def is_open_ts(self, ts: int) -> bool:
        if not self._cov_lo <= ts < self._cov_hi:
            self._cover_instant(ts)
        i = bisect_right(self._starts, ts) - 1
        return i >= 0 and ts < self._ends[i]

    def next_opening_ts(self, ts: int) -> int:
        """`ts` itself when open, else the start of the next open interval."""
        if not self._cov_lo <= ts < self._cov_hi:
            self._cover_instant(ts)
        while True:
            i = bisect_right(self._starts, ts) - 1
            if i >= 0 and ts < self._ends[i]:
                return ts
            if i + 1 < len(self._starts):
                return self._starts[i + 1]
            self._extend_forward(ts)

    def next_closing_ts(self, ts: int) -> int:
        """When the open stretch containing (or next after) `ts` ends: the clock's next pause.

        A calendar that never closes (24/7) raises CalendarError after `max_search_years`."""
        opening = self.next_opening_ts(ts)
        while True:
            i = bisect_right(self._starts, opening) - 1
            if self._ends[i] < self._cov_hi:
                return self._ends[i]
            self._extend_forward(opening)  # clipped at the covered range: it may continue

    def add_business_seconds_ts(self, start: int, seconds: int) -> int:
        """The earliest instant T with `business_seconds_between_ts(start, T) == seconds`;
        for `seconds == 0`, `start` or the next opening if closed."""
        if seconds < 0:
            raise CalendarError(f"cannot add a negative duration ({seconds}s)")
        if seconds == 0:
            return self.next_opening_ts(start)
        if not self._cov_lo <= start < self._cov_hi:
            self._cover_instant(start)
        target = self._cumulative(start) + seconds
        while not self._cum_end or target > self._cum_end[-1]:
            self._extend_forward(start)
        i = bisect_left(self._cum_end, target)
        return self._starts[i] + (target - self._cum_start[i])

    def business_seconds_between_ts(self, a: int, b: int) -> int:
        """Open seconds in [a, b); negative when b < a."""
        if b < a:
            return -self.business_seconds_between_ts(b, a)
        if not self._cov_lo <= a < self._cov_hi:
            self._cover_instant(a)
        if not self._cov_lo <= b < self._cov_hi:
            self._cover_instant(b)
        return self._cumulative(b) - self._cumulative(a)

    def consumed_at_ts(self, start: int, target_seconds: int, fraction: float, elapsed: int = 0) -> int:
        """When `fraction` of an SLA target is used up, counting from `start` with `elapsed` business
        seconds already consumed; `start` itself when that point has already passed."""
        needed = math.ceil(round(target_seconds * fraction, 6)) - elapsed
        return start if needed <= 0 else self.add_business_seconds_ts(start, needed)

    # --- datetime API ------------------------------------------------------------------------------

    def is_open(self, t: datetime) -> bool:
        return self.is_open_ts(_epoch(t))

    def next_opening(self, t: datetime) -> datetime:
        return self._local(self.next_opening_ts(_epoch(t)))

    def next_closing(self, t: datetime) -> datetime:
        return self._local(self.next_closing_ts(_epoch(t)))

    def add_business_seconds(self, start: datetime, seconds: int) -> datetime:
        return self._local(self.add_business_seconds_ts(_epoch(start), seconds))

    def business_seconds_between(self, a: datetime, b: datetime) -> int:
        return self.business_seconds_between_ts(_epoch(a), _epoch(b))

    def consumed_at(self, start: datetime, target_seconds: int, fraction: float, elapsed: int = 0) -> datetime:
        return self._local(self.consumed_at_ts(_epoch(start), target_seconds, fraction, elapsed))

    def _local(self, ts: int) -> datetime:
        return datetime.fromtimestamp(ts, self.zone)

    # --- expansion ---------------------------------------------------------------------------------

    def _cumulative(self, ts: int) -> int:
        i = bisect_right(self._starts, ts) - 1
        if i < 0:
            return 0
        return self._cum_start[i] + min(ts, self._ends[i]) - self._starts[i]

    def _cover_instant(self, ts: int) -> None:
        year = datetime.fromtimestamp(ts, self.zone).year
        first, last = self._years or (year, year + 1)
        self._cover(min(first, year), max(last, year + 1))

    def _extend_forward(self, origin: int) -> None:
        assert self._years is not None
        first, last = self._years
        origin_year = datetime.fromtimestamp(origin, self.zone).year
        if last - origin_year >= self.max_search_years:
            raise CalendarError(f"no (or not enough) working time within {self.max_search_years} years")
        self._cover(first, last + 1)

    def _cover(self, first: int, last: int) -> None:
        if first < _MIN_YEAR or last > _MAX_YEAR:
            raise CalendarError(f"years {first}-{last - 1} are outside the supported range")
        cov_lo = _local_epoch(self.zone, date(first, 1, 1), 0)
        cov_hi = _local_epoch(self.zone, date(last, 1, 1), 0)
        # Include 31 December of the year before: its shifts may run past midnight into the range.
        raw = self._day_intervals(date(first - 1, 12, 31))
        for year in range(first, last):
            raw.extend(self._intervals_of_year(year))
        starts: list[int] = []
        ends: list[int] = []
        for start, end in raw:  # sorted by start: merge overlaps and touching intervals, then clip
            start, end = max(start, cov_lo), min(end, cov_hi)
            if start >= end:
                continue
            if ends and start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        cum_start: list[int] = []
        cum_end: list[int] = []
        total = 0
        for start, end in zip(starts, ends, strict=True):
            cum_start.append(total)
            total += end - start
            cum_end.append(total)
        self._years, self._cov_lo, self._cov_hi = (first, last), cov_lo, cov_hi
        self._starts, self._ends, self._cum_start, self._cum_end = starts, ends, cum_start, cum_end

    def _intervals_of_year(self, year: int) -> list[tuple[int, int]]:
        cached = self._year_intervals.get(year)
        if cached is None:
            cached = []
            day = date(year, 1, 1)
            while day.year == year:
                cached.extend(self._day_intervals(day))
                day += timedelta(days=1)
            self._year_intervals[year] = cached
        return cached

    def _day_intervals(self, day: date) -> list[tuple[int, int]]:
        return [
            (_local_epoch(self.zone, day, interval.start), _local_epoch(self.zone, day, interval.end))
            for interval in self.hours_on(day)
        ]


def _epoch(t: datetime) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise CalendarError(f"naive datetime {t.isoformat()}: pass a timezone-aware datetime")
    return math.floor(t.timestamp())


def _local_epoch(zone: ZoneInfo, day: date, seconds: int) -> int:
    """Epoch seconds of `seconds` after local midnight of `day` (may run into the next day)."""
    day += timedelta(days=seconds // SECONDS_PER_DAY)
    seconds %= SECONDS_PER_DAY
    naive = datetime(day.year, day.month, day.day, seconds // 3600, seconds // 60 % 60, seconds % 60)
    first = math.floor(naive.replace(tzinfo=zone).timestamp())
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) == naive:
        return first  # exists (for a repeated hour, fold=0 is the first occurrence)
    # The wall time falls in a spring-forward gap: the clock jumps past it at the transition instant.
    other = math.floor(naive.replace(tzinfo=zone, fold=1).timestamp())
    low, high = min(first, other), max(first, other)
    offset_after = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


@lru_cache(maxsize=1)
def supported_holiday_countries() -> dict[str, frozenset[str]]:
    """Country codes the `holidays` library knows, with their subdivision codes."""
    return {code: frozenset(subs) for code, subs in holidays.list_supported_countries().items()}


def holiday_dates(country: str, subdivision: str | None, first_year: int, last_year: int) -> HolidayDates:
    """The `holidays` library's dates for a country over whole years, to pin in a calendar."""
    public: set[date] = set()
    moved: set[date] = set()
    for year in range(first_year, last_year + 1):
        year_public, year_moved = _public_days(country, subdivision, year)
        public |= year_public
        moved |= year_moved
    return HolidayDates(first_year, last_year, frozenset(public), frozenset(moved))


@lru_cache(maxsize=256)
def _public_days(country: str | None, subdivision: str | None, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(public holidays, weekend days declared working days) from the `holidays` library.

    Neighbouring years are loaded too, because a transfer can cross New Year."""
    if country is None:
        return frozenset(), frozenset()
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision, years=(year - 1, year, year + 1))
    except NotImplementedError as error:
        raise CalendarError(f"unknown holiday country/subdivision {country}/{subdivision}") from error
    public = frozenset(day for day in calendar if day.year == year)
    moved_working = frozenset(day for day in calendar.weekend_workdays if day.year == year)
    return public, moved_working
