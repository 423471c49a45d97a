"""Business calendars: working intervals, holidays, moved working days, business-time arithmetic."""

from ticketflow.calendar.business import BusinessCalendar, supported_holiday_countries
from ticketflow.calendar.spec import (
    WEEKDAYS,
    CalendarError,
    CalendarSpec,
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
    "Hours",
    "WorkInterval",
    "check_no_overlap",
    "parse_interval",
    "parse_intervals",
    "parse_time",
    "supported_holiday_countries",
]
