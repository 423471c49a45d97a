"""Given a calendar from the seed rules, then it answers the hours the support teams promise."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from ticketflow.calendar import WEEKDAYS, BusinessCalendar, CalendarError, CalendarSpec, parse_interval

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=MSK)


# Bitrix24 box seed: "Поддержка работает с понедельника по пятницу с 10:00 до 19:00 по московскому времени."
BITRIX24_BOX = BusinessCalendar(
    CalendarSpec.from_text("Europe/Moscow", {day: ["10:00-19:00"] for day in WEEKDAYS[:5]}, holiday_country="RU")
)
# eXpress seed: "с 8:00 до 21:00 в будни и с 10:00 до 18:00 в выходные и праздничные дни
# (по московскому времени)".
EXPRESS_CLIENT = BusinessCalendar(
    CalendarSpec.from_text(
        "Europe/Moscow",
        {**{day: ["08:00-21:00"] for day in WEEKDAYS[:5]}, "sat": ["10:00-18:00"], "sun": ["10:00-18:00"]},
        holiday_country="RU",
        holiday_hours=["10:00-18:00"],
    )
)


def test_bitrix24_box_is_open_on_weekdays_from_10_to_19_moscow_time() -> None:
    assert not BITRIX24_BOX.is_open(msk(2024, 3, 13, 9, 59, 59))
    assert BITRIX24_BOX.is_open(msk(2024, 3, 13, 10, 0))
    assert BITRIX24_BOX.is_open(msk(2024, 3, 13, 18, 59, 59))
    assert not BITRIX24_BOX.is_open(msk(2024, 3, 13, 19, 0))
    assert not BITRIX24_BOX.is_open(msk(2024, 3, 16, 12, 0))  # Saturday


def test_bitrix24_box_clock_stops_over_the_weekend() -> None:
    friday_evening = msk(2024, 3, 15, 18, 30)
    assert BITRIX24_BOX.add_business_seconds(friday_evening, HOUR) == msk(2024, 3, 18, 10, 30)
    assert BITRIX24_BOX.next_opening(msk(2024, 3, 15, 19, 0)) == msk(2024, 3, 18, 10, 0)
    assert BITRIX24_BOX.business_seconds_between(friday_evening, msk(2024, 3, 18, 10, 30)) == HOUR


def test_next_closing_is_when_the_clock_pauses() -> None:
    assert BITRIX24_BOX.next_closing(msk(2024, 3, 13, 12, 0)) == msk(2024, 3, 13, 19, 0)
    assert BITRIX24_BOX.next_closing(msk(2024, 3, 16, 12, 0)) == msk(2024, 3, 18, 19, 0)
    always = BusinessCalendar(CalendarSpec.from_text("Europe/Moscow", {day: ["00:00-24:00"] for day in WEEKDAYS[:5]}))
    # Monday to Friday merge into one stretch, across the expansion's year boundary too.
    assert always.next_closing(msk(2024, 12, 30, 12, 0)) == msk(2025, 1, 4, 0, 0)


def test_a_deadline_ending_exactly_at_closing_time_is_closing_time_not_next_morning() -> None:
    assert BITRIX24_BOX.add_business_seconds(msk(2024, 3, 13, 10, 0), 9 * HOUR) == msk(2024, 3, 13, 19, 0)
    # ... while a zero duration at closing time means "when the clock next runs".
    assert BITRIX24_BOX.add_business_seconds(msk(2024, 3, 13, 19, 0), 0) == msk(2024, 3, 14, 10, 0)


def test_russian_public_holidays_are_closed() -> None:
    assert not BITRIX24_BOX.is_open(msk(2024, 5, 9, 12, 0))  # Victory Day, a Thursday
    assert not BITRIX24_BOX.is_open(msk(2025, 1, 3, 12, 0))  # New Year holidays
    assert BITRIX24_BOX.next_opening(msk(2024, 12, 28, 19, 0)) == msk(2025, 1, 9, 10, 0)


def test_moved_working_days_come_from_the_holidays_library() -> None:
    # 2024: Saturday 27 April is a working day, Monday 29 April a day off (and 2 Nov / 4 Nov in 2025-style).
    assert BITRIX24_BOX.is_open(msk(2024, 4, 27, 12, 0))
    assert not BITRIX24_BOX.is_open(msk(2024, 4, 29, 12, 0))
    assert BITRIX24_BOX.is_open(msk(2025, 11, 1, 12, 0))  # working Saturday
    assert not BITRIX24_BOX.is_open(msk(2025, 11, 3, 12, 0))  # Monday made a day off
    assert BITRIX24_BOX.add_business_seconds(msk(2024, 4, 26, 18, 0), 2 * HOUR) == msk(2024, 4, 27, 11, 0)


def test_express_client_support_hours_weekdays_weekends_and_holidays() -> None:
    assert EXPRESS_CLIENT.is_open(msk(2024, 3, 13, 8, 0))
    assert EXPRESS_CLIENT.is_open(msk(2024, 3, 13, 20, 59))
    assert not EXPRESS_CLIENT.is_open(msk(2024, 3, 16, 9, 59))  # Saturday opens at 10:00
    assert EXPRESS_CLIENT.is_open(msk(2024, 3, 16, 10, 0))
    assert not EXPRESS_CLIENT.is_open(msk(2024, 3, 16, 18, 0))
    # Victory Day (Thursday) has holiday hours, not weekday hours.
    assert not EXPRESS_CLIENT.is_open(msk(2024, 5, 9, 9, 0))
    assert EXPRESS_CLIENT.is_open(msk(2024, 5, 9, 17, 59))
    assert not EXPRESS_CLIENT.is_open(msk(2024, 5, 9, 20, 0))


def test_a_moved_working_saturday_works_weekday_hours() -> None:
    assert EXPRESS_CLIENT.hours_on(date(2024, 4, 27)) == (parse_interval("08:00-21:00"),)
    assert EXPRESS_CLIENT.is_open(msk(2024, 4, 27, 8, 30))


def test_configuration_can_add_and_override_days() -> None:
    calendar = BusinessCalendar(
        CalendarSpec.from_text(
            "Europe/Moscow",
            {day: ["10:00-19:00"] for day in WEEKDAYS[:5]},
            holiday_country="RU",
            extra_holidays=[date(2024, 3, 13)],
            extra_working_days=[date(2024, 5, 9)],
            overrides={date(2024, 3, 14): ["12:00-15:00"], date(2024, 3, 15): []},
        )
    )
    assert not calendar.is_open(msk(2024, 3, 13, 12, 0))
    assert not calendar.is_open(msk(2024, 3, 14, 11, 0))
    assert calendar.is_open(msk(2024, 3, 14, 14, 0))
    assert not calendar.is_open(msk(2024, 3, 15, 12, 0))
    assert calendar.is_open(msk(2024, 5, 9, 12, 0))


def test_moved_working_days_can_be_ignored() -> None:
    calendar = BusinessCalendar(
        CalendarSpec.from_text(
            "Europe/Moscow",
            {day: ["10:00-19:00"] for day in WEEKDAYS[:5]},
            holiday_country="RU",
            observe_moved_working_days=False,
        )
    )
    assert not calendar.is_open(msk(2024, 4, 27, 12, 0))


def test_a_lunch_break_pauses_the_clock() -> None:
    calendar = BusinessCalendar(
        CalendarSpec.from_text("Europe/Moscow", {day: ["09:00-13:00", "14:00-18:00"] for day in WEEKDAYS[:5]})
    )
    assert not calendar.is_open(msk(2024, 3, 13, 13, 30))
    assert calendar.add_business_seconds(msk(2024, 3, 13, 12, 30), HOUR) == msk(2024, 3, 13, 14, 30)
    assert calendar.business_seconds_between(msk(2024, 3, 13, 9, 0), msk(2024, 3, 13, 18, 0)) == 8 * HOUR


def test_a_shift_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    calendar = BusinessCalendar(CalendarSpec.from_text("Europe/Moscow", {day: ["22:00-02:00"] for day in WEEKDAYS[:5]}))
    assert calendar.add_business_seconds(msk(2024, 3, 15, 23, 0), 2 * HOUR) == msk(2024, 3, 16, 1, 0)
    assert calendar.is_open(msk(2024, 3, 16, 1, 59))  # Friday's shift, on Saturday morning
    assert not calendar.is_open(msk(2024, 3, 18, 1, 0))  # Monday 01:00: Sunday has no shift
    assert calendar.is_open(msk(2024, 3, 19, 1, 0))  # Tuesday 01:00: Monday's shift
    assert calendar.next_opening(msk(2024, 3, 16, 2, 0)) == msk(2024, 3, 18, 22, 0)


def test_shifts_crossing_new_year_are_counted_once_whichever_year_is_expanded_first() -> None:
    spec = CalendarSpec.from_text("Europe/Moscow", {day: ["22:00-02:00", "01:00-03:00"] for day in WEEKDAYS})
    late_first, early_first = BusinessCalendar(spec), BusinessCalendar(spec)
    late_first.is_open(msk(2025, 6, 1))
    early_first.is_open(msk(2024, 6, 1))
    a, b = msk(2024, 12, 31, 21, 0), msk(2025, 1, 1, 4, 0)
    for calendar in (late_first, early_first):
        assert calendar.business_seconds_between(a, b) == 5 * HOUR  # 22:00-03:00, merged
        assert calendar.add_business_seconds(a, 5 * HOUR) == msk(2025, 1, 1, 3, 0)


def test_berlin_spring_forward_day_has_one_hour_less() -> None:
    calendar = BusinessCalendar(CalendarSpec.from_text("Europe/Berlin", {day: ["01:00-05:00"] for day in WEEKDAYS}))
    day_start, day_end = datetime(2024, 3, 31, tzinfo=BERLIN), datetime(2024, 3, 31, 23, tzinfo=BERLIN)
    assert calendar.business_seconds_between(day_start, day_end) == 3 * HOUR
    # 01:30 CET + 1 h of work = 03:30 CEST: 02:xx never shows on the clock.
    assert calendar.add_business_seconds(datetime(2024, 3, 31, 1, 30, tzinfo=BERLIN), HOUR) == datetime(
        2024, 3, 31, 3, 30, tzinfo=BERLIN
    )


def test_berlin_fall_back_day_has_one_hour_more() -> None:
    calendar = BusinessCalendar(CalendarSpec.from_text("Europe/Berlin", {day: ["01:00-05:00"] for day in WEEKDAYS}))
    day_start, day_end = datetime(2024, 10, 27, tzinfo=BERLIN), datetime(2024, 10, 27, 23, tzinfo=BERLIN)
    assert calendar.business_seconds_between(day_start, day_end) == 5 * HOUR
    start = datetime(2024, 10, 27, 1, 30, tzinfo=BERLIN)
    first_230 = calendar.add_business_seconds(start, HOUR)
    second_230 = calendar.add_business_seconds(start, 2 * HOUR)
    assert (first_230.hour, first_230.utcoffset()) == (2, datetime(2024, 7, 1, tzinfo=BERLIN).utcoffset())
    assert (second_230.hour, second_230.fold) == (2, 1)


def test_new_york_gap_boundary_moves_to_the_transition() -> None:
    # 2024-03-10: clocks jump 02:00 -> 03:00; a shift starting 02:30 starts at 03:00 EDT.
    calendar = BusinessCalendar(CalendarSpec.from_text("America/New_York", {"sun": ["02:30-04:00"]}))
    assert calendar.next_opening(datetime(2024, 3, 10, 0, 0, tzinfo=NEW_YORK)) == datetime(
        2024, 3, 10, 3, 0, tzinfo=NEW_YORK
    )


def test_consumed_at_gives_warning_instants_for_fractions_of_the_target() -> None:
    monday_10 = msk(2024, 3, 18, 10, 0)
    target = 9 * HOUR
    assert BITRIX24_BOX.consumed_at(monday_10, target, 0.5) == msk(2024, 3, 18, 14, 30)
    assert BITRIX24_BOX.consumed_at(monday_10, target, 0.9) == msk(2024, 3, 18, 18, 6)
    assert BITRIX24_BOX.consumed_at(monday_10, target, 1.0, elapsed=4 * HOUR) == msk(2024, 3, 18, 15, 0)
    assert BITRIX24_BOX.consumed_at(monday_10, target, 0.5, elapsed=6 * HOUR) == monday_10


def test_a_calendar_with_no_working_time_is_refused() -> None:
    with pytest.raises(CalendarError, match="no working time"):
        BusinessCalendar(CalendarSpec.from_text("Europe/Moscow", {}))


def test_searches_are_bounded_when_working_time_is_too_rare() -> None:
    calendar = BusinessCalendar(
        CalendarSpec.from_text(
            "Europe/Moscow",
            {},
            observe_moved_working_days=False,
            overrides={date(2024, 3, 1): ["10:00-11:00"]},
        ),
        max_search_years=3,
    )
    with pytest.raises(CalendarError, match="within 3 years"):
        calendar.add_business_seconds(msk(2024, 1, 1), 2 * HOUR)
    with pytest.raises(CalendarError, match="within 3 years"):
        calendar.next_opening(msk(2024, 3, 2))


@pytest.mark.parametrize(
    ("text", "problem"),
    [("25:00-26:00", "invalid time '25:00'"), ("10:00", "expected HH:MM-HH:MM"), ("10:00-10:00", "empty")],
)
def test_bad_hours_are_explained(text: str, problem: str) -> None:
    with pytest.raises(CalendarError, match=problem):
        CalendarSpec.from_text("Europe/Moscow", {"mon": [text]})


def test_overlapping_intervals_and_unknown_zones_are_refused() -> None:
    with pytest.raises(CalendarError, match="overlap"):
        CalendarSpec.from_text("Europe/Moscow", {"mon": ["10:00-13:00", "12:00-18:00"]})
    with pytest.raises(CalendarError, match="unknown time zone"):
        CalendarSpec.from_text("Mars/Olympus", {"mon": ["10:00-13:00"]})


def test_naive_datetimes_and_negative_durations_are_refused() -> None:
    with pytest.raises(CalendarError, match="naive"):
        BITRIX24_BOX.is_open(datetime(2024, 3, 13, 12, 0))
    with pytest.raises(CalendarError, match="negative"):
        BITRIX24_BOX.add_business_seconds(msk(2024, 3, 13, 12, 0), -1)
