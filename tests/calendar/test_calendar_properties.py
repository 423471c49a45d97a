"""Property tests: the fast calendar agrees with a minute-walking reference, and add/between are inverse."""

from __future__ import annotations

from datetime import date, timedelta

from calendar_reference import ReferenceCalendar, day_start
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketflow.calendar import WEEKDAYS, BusinessCalendar, CalendarSpec

ZONES = ("Europe/Moscow", "Europe/Berlin", "America/New_York")
# Windows around New Year (holidays, moved days, year boundary) and both DST transitions.
WINDOW_STARTS = (
    date(2024, 12, 20),
    date(2024, 3, 28),
    date(2024, 10, 24),
    date(2025, 3, 6),
    date(2024, 4, 24),
)
MAX_ADD = 8 * 3600
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def day_hours(draw: st.DrawFn, minute_step: int) -> list[str]:
    """0-2 non-overlapping intervals, the last one possibly running past midnight."""
    points = sorted(draw(st.sets(st.integers(0, 24 * 60 // minute_step - 1), max_size=4)))
    points = [p * minute_step for p in points[: len(points) // 2 * 2]]
    hours = [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in zip(points[::2], points[1::2], strict=True)]
    wrap: bool = draw(st.booleans())  # run the last interval past midnight
    if hours and wrap:
        start = points[-2]
        if start > 0:
            end = draw(st.integers(0, start // minute_step - 1)) * minute_step
            hours[-1] = f"{_hhmm(start)}-{_hhmm(end)}"
    return hours


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, date]:
    zone = draw(st.sampled_from(ZONES))
    # Boundaries inside a repeated DST hour are ambiguous by nature; keep DST zones on whole hours.
    minute_step = 15 if zone == "Europe/Moscow" else 60
    weekly = {day: draw(day_hours(minute_step)) for day in WEEKDAYS}
    if not any(weekly.values()):
        weekly["wed"] = ["09:00-17:00"]
    window = draw(st.sampled_from(WINDOW_STARTS))
    some_day = st.integers(0, 20).map(lambda n: window + timedelta(days=n))
    spec = CalendarSpec.from_text(
        zone,
        weekly,
        holiday_country=draw(st.sampled_from([None, "RU"])),
        holiday_hours=draw(day_hours(minute_step)),
        extra_holidays=draw(st.sets(some_day, max_size=2)),
        extra_working_days=draw(st.sets(some_day, max_size=2)),
        overrides={d: draw(day_hours(minute_step)) for d in draw(st.sets(some_day, max_size=2))},
    )
    return BusinessCalendar(spec), window


def instant(window: date, zone: str) -> st.SearchStrategy[int]:
    base = day_start(zone, window)
    return st.integers(base, base + 14 * 86_400)


@PROPERTY_SETTINGS
@given(data=st.data(), built=calendars(), seconds=st.integers(0, MAX_ADD))
def test_add_business_seconds_agrees_with_the_reference(
    data: st.DataObject, built: tuple[BusinessCalendar, date], seconds: int
) -> None:
    calendar, window = built
    start = data.draw(instant(window, calendar.spec.timezone))
    assert calendar.add_business_seconds_ts(start, seconds) == ReferenceCalendar(calendar).add_business_seconds(
        start, seconds
    )


@PROPERTY_SETTINGS
@given(data=st.data(), built=calendars(), span=st.integers(0, 4 * 86_400))
def test_between_and_is_open_agree_with_the_reference(
    data: st.DataObject, built: tuple[BusinessCalendar, date], span: int
) -> None:
    calendar, window = built
    reference = ReferenceCalendar(calendar)
    a = data.draw(instant(window, calendar.spec.timezone))
    assert calendar.business_seconds_between_ts(a, a + span) == reference.business_seconds_between(a, a + span)
    assert calendar.is_open_ts(a) == reference.is_open(a)
    assert calendar.is_open_ts(a + span) == reference.is_open(a + span)


@PROPERTY_SETTINGS
@given(data=st.data(), built=calendars(), seconds=st.integers(0, 10 * MAX_ADD))
def test_add_and_between_are_inverse(data: st.DataObject, built: tuple[BusinessCalendar, date], seconds: int) -> None:
    calendar, window = built
    start = data.draw(instant(window, calendar.spec.timezone))
    end = calendar.add_business_seconds_ts(start, seconds)
    assert end >= start
    assert calendar.business_seconds_between_ts(start, end) == seconds
    later = data.draw(st.integers(start, start + 10 * 86_400))
    worked = calendar.business_seconds_between_ts(start, later)
    if worked > 0:  # (zero means "the next opening", which may lie after `later`)
        assert calendar.add_business_seconds_ts(start, worked) <= later
    assert calendar.business_seconds_between_ts(later, start) == -calendar.business_seconds_between_ts(start, later)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    built=calendars(),
    seconds=st.lists(st.integers(0, 10 * MAX_ADD), min_size=2, max_size=2).map(sorted),
    shift=st.integers(0, 3 * 86_400),
)
def test_add_is_monotone_in_start_and_duration(
    data: st.DataObject, built: tuple[BusinessCalendar, date], seconds: list[int], shift: int
) -> None:
    calendar, window = built
    start = data.draw(instant(window, calendar.spec.timezone))
    small, large = seconds
    assert calendar.add_business_seconds_ts(start, small) <= calendar.add_business_seconds_ts(start, large)
    assert calendar.add_business_seconds_ts(start, small) <= calendar.add_business_seconds_ts(start + shift, small)


@PROPERTY_SETTINGS
@given(data=st.data(), built=calendars())
def test_between_is_additive_and_next_opening_agrees(data: st.DataObject, built: tuple[BusinessCalendar, date]) -> None:
    calendar, window = built
    a, b, c = sorted(data.draw(st.lists(instant(window, calendar.spec.timezone), min_size=3, max_size=3)))
    between = calendar.business_seconds_between_ts
    assert between(a, b) + between(b, c) == between(a, c)
    opening = calendar.next_opening_ts(a)
    assert opening == ReferenceCalendar(calendar).next_opening(a)
    assert calendar.is_open_ts(opening)
    assert between(a, opening) == 0
    closing = calendar.next_closing_ts(a)
    assert closing > opening and not calendar.is_open_ts(closing)
    assert between(opening, closing) == closing - opening
