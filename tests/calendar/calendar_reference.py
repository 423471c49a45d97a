"""A deliberately naive business calendar: walks the clock minute by minute, reading wall time.

It shares only `BusinessCalendar.hours_on` (the day rules, tested by example elsewhere) with the real
implementation. Within one minute openness cannot change (all boundaries and DST transitions of the
tested zones fall on whole minutes), so stepping by minute segments is exact to the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from functools import lru_cache

from ticketflow.calendar import BusinessCalendar, Hours

DAY = 86_400
STEP_LIMIT = 2_000_000


class ReferenceCalendar:
    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self.hours_on: Callable[[date], Hours] = lru_cache(maxsize=None)(calendar.hours_on)

    def is_open(self, ts: int) -> bool:
        local = datetime.fromtimestamp(ts, self.calendar.zone)
        wall = local.hour * 3600 + local.minute * 60 + local.second
        today = self.hours_on(local.date())
        yesterday = self.hours_on(local.date() - timedelta(days=1))
        return any(i.start <= wall < i.end for i in today) or any(wall + DAY < i.end for i in yesterday)

    def _segments(self, start: int) -> Iterator[tuple[int, int, bool]]:
        """(segment start, segment length, open) for consecutive pieces of at most one minute."""
        t = start
        for _ in range(STEP_LIMIT):
            end = (t // 60 + 1) * 60
            yield t, end - t, self.is_open(t)
            t = end
        raise AssertionError("reference search ran too long")

    def add_business_seconds(self, start: int, seconds: int) -> int:
        if seconds == 0:
            return self.next_opening(start)
        counted = 0
        for t, length, is_open in self._segments(start):
            if is_open:
                if counted + length >= seconds:
                    return t + (seconds - counted)
                counted += length
        raise AssertionError("unreachable")

    def next_opening(self, start: int) -> int:
        for t, _, is_open in self._segments(start):
            if is_open:
                return t
        raise AssertionError("unreachable")

    def business_seconds_between(self, a: int, b: int) -> int:
        total = 0
        for t, length, is_open in self._segments(a):
            if t >= b:
                return total
            if is_open:
                total += min(length, b - t)
        raise AssertionError("unreachable")


def day_start(zone_name: str, day: date) -> int:
    from zoneinfo import ZoneInfo

    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone_name)).timestamp())
