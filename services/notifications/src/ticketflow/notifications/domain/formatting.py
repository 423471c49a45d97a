"""Times, durations and support hours as text in the recipient's language and time zone. Pure.

The templates take them already formatted (docs/notifications.md): `пн 23 ноя 12:05 MSK` /
`Mon 23 Nov 12:05 MSK`, `1 ч 30 мин` / `1 h 30 min`, `пн–пт 10:00-19:00 (MSK)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_MONTHS = {
    "ru": ("янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
_DAYS = {"ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"), "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
_UNITS = {"ru": ("д", "ч", "мин"), "en": ("d", "h", "min")}
_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def language(locale: str) -> str:
    return "en" if locale.lower().startswith("en") else "ru"


def format_time(at: datetime, locale: str, timezone: str) -> str:
    """`пн 23 ноя 12:00 MSK` / `Mon 23 Nov 12:00 MSK`, in the recipient's zone."""
    lang, local = language(locale), at.astimezone(ZoneInfo(timezone))
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    return f"{day} {local.day} {month} {local:%H:%M} {local.tzname()}"


def format_duration(span: timedelta, locale: str) -> str:
    minutes = max(0, int(span.total_seconds() + 59) // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    units = _UNITS[language(locale)]
    parts = [f"{v} {u}" for v, u in zip((days, hours, mins), units, strict=True) if v]
    return " ".join(parts) or f"0 {units[2]}"


def format_overdue(span: timedelta, locale: str) -> str:
    """How late, in whole minutes elapsed (rounded down): "" under a minute, so that a breach fired at
    its deadline does not read "overdue by 0 min" (the templates leave the phrase out)."""
    minutes = int(span.total_seconds()) // 60
    return format_duration(timedelta(minutes=minutes), locale) if minutes > 0 else ""


def describe_hours(weekly: Mapping[str, Sequence[str]], locale: str, timezone: str) -> str:
    """Weekly hours as text, consecutive days with the same hours joined: `пн–пт 10:00-19:00 (MSK)`."""
    lang, groups = language(locale), list[tuple[int, int, str]]()  # (first day, last day, hours)
    for index, key in enumerate(_DAY_KEYS):
        hours = ", ".join(weekly.get(key, ()))
        if hours and groups and groups[-1][2] == hours and groups[-1][1] == index - 1:
            groups[-1] = (groups[-1][0], index, hours)
        elif hours:
            groups.append((index, index, hours))
    names = _DAYS[lang]
    text = "; ".join(
        f"{names[a]}–{names[b]} {h}" if b > a else f"{names[a]} {h}" for a, b, h in groups
    )  # fmt: skip
    zone = datetime.now(ZoneInfo(timezone)).tzname()
    return f"{text} ({zone})" if text else ("по договорённости" if lang == "ru" else "by arrangement")
