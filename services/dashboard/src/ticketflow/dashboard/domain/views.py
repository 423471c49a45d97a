"""How values are shown (pure): durations, ages, and the time left on an SLA clock in business time, counted
in the calendar of the clock's track (minutes when the desk is closed do not count down)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ticketflow.calendar import BusinessCalendar

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


def preflight_checks(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of the latest preflight outcome in a ticket's timeline (each: name, passed, remediation)."""
    for entry in reversed(timeline):
        if entry["type"] in ("PreflightPassed", "PreflightFailed"):
            checks: list[dict[str, Any]] = entry["detail"].get("checks", [])
            return checks
    return []
