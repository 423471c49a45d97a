"""Business calendars: working intervals, holidays, moved working days, business-time arithmetic."""

from ticketflow.calendar.business import BusinessCalendar
from ticketflow.calendar.spec import (
    WEEKDAYS,
    CalendarError,
    CalendarSpec,
    Hours,
    WorkInterval,
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
    "parse_interval",
    "parse_intervals",
    "parse_time",
]
