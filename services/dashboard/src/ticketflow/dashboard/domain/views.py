"""How values are shown (pure): durations, ages, and the time left on an SLA clock in business time, counted
in the calendar of the clock's track (minutes when the desk is closed do not count down)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketflow.calendar import BusinessCalendar, CalendarError

_UNITS = {"en": ("d", "h", "min"), "ru": ("дн", "ч", "мин")}


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def duration(seconds: float, lang: str) -> str:
    """ "2 d 3 h", "3 h 5 min", "7 min" (the two largest units; under a minute is "0 min")."""
    d, h, m = _UNITS.get(lang, _UNITS["en"])
    total = int(abs(seconds)) // 60
    days, hours, minutes = total // 1440, total // 60 % 24, total % 60
    if days:
        return f"{days} {d} {hours} {h}"
    if hours:
        return f"{hours} {h} {minutes} {m}"
    return f"{minutes} {m}"


def span(seconds: int, lang: str) -> str:
    """A bucket bound of business time: minutes under an hour, else whole hours ("15 min", "8 h")."""
    _, h, m = _UNITS.get(lang, _UNITS["en"])
    return f"{seconds // 60} {m}" if seconds < 3600 else f"{seconds // 3600:g} {h}"


def buckets(responses: dict[str, Any], lang: str) -> list[tuple[str, float | None]]:
    """(the bucket's range, tickets) of the query API's first-response distribution: "5 min-15 min", "≥ 40 h"."""
    points: list[tuple[str, float | None]] = []
    for bucket in responses["buckets"]:
        low, high = bucket["from_seconds"], bucket["to_seconds"]
        if high is None:
            label = f"≥ {span(low, lang)}"
        else:
            label = f"< {span(high, lang)}" if low == 0 else f"{span(low, lang)}–{span(high, lang)}"
        points.append((label, float(bucket["tickets"])))
    return points


def bucket_ticks(responses: dict[str, Any], lang: str) -> dict[int, str]:
    """Short labels under the distribution's bars: each bucket by its upper bound ("< 15 min", "≥ 40 h")."""
    ticks = {}
    for i, bucket in enumerate(responses["buckets"]):
        high = bucket["to_seconds"]
        ticks[i] = f"≥ {span(bucket['from_seconds'], lang)}" if high is None else f"< {span(high, lang)}"
    return ticks


def age(since: str | None, now: datetime, lang: str) -> str:
    start = parse_time(since)
    return duration((now - start).total_seconds(), lang) if start else ""


def business_left(calendar: BusinessCalendar | None, deadline: str | None, now: datetime) -> int | None:
    """Business seconds until the deadline (negative: overdue by that much); None without a deadline or a
    calendar (a desk or track no longer configured)."""
    due = parse_time(deadline)
    if due is None or calendar is None:
        return None
    if due >= now:
        return calendar.business_seconds_between(now, due)
    return -calendar.business_seconds_between(due, now)


COUNTDOWN_WINDOW = timedelta(days=2)  # the open intervals the browser gets, from the start of the UTC day


@dataclass(frozen=True)
class Countdown:
    """What the browser needs to count a running clock down every second in business time: the business
    seconds left at `reference` (negative: overdue), and the calendar's open intervals from `reference` on
    (epoch seconds). Left at an instant t = `left` - open seconds in [reference, t]: it stands still while the
    desk is closed. `reference` is the start of the UTC day, so the page's fragment stays the same all day
    (the live stream sends a fragment only when it changed)."""

    reference: int
    left: int
    open: list[tuple[int, int]]


def countdown(calendar: BusinessCalendar | None, deadline: str | None, now: datetime) -> Countdown | None:
    """The countdown of a running clock (None without a deadline or a calendar)."""
    due = parse_time(deadline)
    if due is None or calendar is None:
        return None
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    left = business_left(calendar, deadline, day)
    assert left is not None
    start, end = int(day.timestamp()), int((day + COUNTDOWN_WINDOW).timestamp())
    return Countdown(start, left, open_intervals(calendar, start, end))


def open_intervals(calendar: BusinessCalendar, start: int, end: int) -> list[tuple[int, int]]:
    """The calendar's open stretches within [start, end) (epoch seconds)."""
    found: list[tuple[int, int]] = []
    at = calendar.next_opening_ts(start)
    while at < end:
        try:
            closing = calendar.next_closing_ts(at)
        except CalendarError:  # never closes
            closing = end
        found.append((at, min(closing, end)))
        at = calendar.next_opening_ts(closing) if closing < end else end
    return found


def preflight_checks(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of the latest preflight outcome in a ticket's timeline (each: name, passed, remediation)."""
    for entry in reversed(timeline):
        if entry["type"] in ("PreflightPassed", "PreflightFailed"):
            checks: list[dict[str, Any]] = entry["detail"].get("checks", [])
            return checks
    return []
