"""Business calendars: working intervals, holidays, moved working days, business-time arithmetic."""

from ticketflow.calendar.business import BusinessCalendar, holiday_dates, supported_holiday_countries
from ticketflow.calendar.spec import (
    WEEKDAYS,
    CalendarError,
    CalendarSpec,
    HolidayDates,
    Hours,
    WorkInterval,
    check_no_overlap,
    parse_interval,
    parse_intervals,
    parse_time,
)

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarError",
    "CalendarSpec",
    "HolidayDates",
    "Hours",
    "WorkInterval",
    "check_no_overlap",
    "holiday_dates",
    "parse_interval",
    "parse_intervals",
    "parse_time",
    "supported_holiday_countries",
]
