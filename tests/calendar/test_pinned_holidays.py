"""Holiday dates pinned in a calendar (as a calendar version records them) against the `holidays`
library: equal when taken from it, and winning over it in the years they cover."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from ticketflow.calendar import BusinessCalendar, CalendarSpec, HolidayDates, holiday_dates

WEEKDAYS_10_19 = {day: ["10:00-19:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def moscow_weekdays(pinned: HolidayDates | None = None) -> BusinessCalendar:
    spec = CalendarSpec.from_text("Europe/Moscow", WEEKDAYS_10_19, holiday_country="RU")
    return BusinessCalendar(dataclasses.replace(spec, pinned_holidays=pinned))


def test_dates_pinned_from_the_library_answer_like_the_library_on_every_day() -> None:
    pinned = holiday_dates("RU", None, 2024, 2028)
    assert date(2025, 11, 1) in pinned.moved_working and date(2026, 1, 7) in pinned.public
    live, frozen = moscow_weekdays(), moscow_weekdays(pinned)
    day = date(2024, 1, 1)
    while day <= date(2028, 12, 31):
        assert frozen.hours_on(day) == live.hours_on(day), day
        day += timedelta(days=1)


def test_pinned_dates_win_in_the_years_they_cover_and_the_library_answers_the_others() -> None:
    # A release of the library that knew 2027 differently: Wednesday 10 March a holiday, no New Year.
    pinned = HolidayDates(2027, 2027, public=frozenset({date(2027, 3, 10)}))
    calendar = moscow_weekdays(pinned)
    assert calendar.hours_on(date(2027, 3, 10)) == ()  # pinned: closed
    assert calendar.hours_on(date(2027, 1, 1)) != ()  # a Friday the pinned dates do not close
    assert moscow_weekdays().hours_on(date(2027, 1, 1)) == ()  # ... which today's library does
    assert calendar.hours_on(date(2028, 1, 3)) == ()  # 2028 is not pinned: the library's New Year holidays
