"""Given/when/then: an upgrade of the `holidays` library that changes a date under running clocks.

A calendar version records the country's dates (`PINNED_HOLIDAY_YEARS`), so new dates are a new
version: the clocks are recalculated by the policy's rule, the time used before counts in the old
dates, and the old version still answers with them (a replay after the upgrade is identical)."""

from __future__ import annotations

import uuid
from datetime import date

import msgspec
import pytest
from sla_builders import Driver, opened, passed, ts

from ticketflow.calendar import HolidayDates, holiday_dates
from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.deskconfig import load_desks
from ticketflow.sla.adapters import desk_rules
from ticketflow.sla.adapters.desk_rules import DeskRules, calendar_of_definition

TICKET = uuid.UUID("00000000-0000-7000-8000-0000000000b1")
BOX = "bitrix24-box"
TUESDAY_11 = ts(2025, 3, 4, 11)
WEDNESDAY = date(2025, 3, 5)


def upgraded_library(first_year: int, last_year: int) -> HolidayDates:
    """What a later release of the library says: Wednesday 5 March 2025 became a public holiday."""
    today = holiday_dates("RU", None, first_year, last_year)
    return HolidayDates(first_year, last_year, today.public | {WEDNESDAY}, today.moved_working)


def test_new_holiday_dates_are_a_new_calendar_version_and_clocks_are_recalculated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a box ticket (Mon-Fri 10-19 MSK, 45 business hours to resolve) started Tuesday 11:00;
    before_rules = DeskRules(load_desks())
    d = Driver(before_rules).given([(TUESDAY_11, opened(TICKET)), (TUESDAY_11, passed(TICKET))])
    assert d.state is not None
    before = d.state.calendar
    stored = before_rules.definitions()
    # when the service restarts on a library that made Wednesday a holiday (same desk configuration),
    monkeypatch.setattr(desk_rules, "holiday_dates", lambda country, sub, first, last: upgraded_library(first, last))
    after_rules = DeskRules(load_desks(), stored)
    after = after_rules.calendar_version(BOX, "box")
    assert after != before and after_rules.fingerprint() != before_rules.fingerprint()
    d.rules = after_rules
    events = [e.event for e in d.when(ts(2025, 3, 4, 20), te.TicketAssigned(TICKET, "anna", "round_robin", "routing"))]
    # then the resolution clock is recalculated (keep_elapsed): 8 hours used on Tuesday, and the 37
    # left skip the new holiday: Thu, Fri, Mon, Tue (36 hours), then Wednesday 12 March 10:00-11:00.
    [change] = [e for e in events if isinstance(e, sla.SlaRecalculated) and e.target == "resolution"]
    assert change.reason == f"calendar {before} -> {after}" and change.elapsed_seconds == 8 * 3600
    assert int(change.old_deadline.timestamp()) == ts(2025, 3, 11, 11)
    assert int(change.new_deadline.timestamp()) == ts(2025, 3, 12, 11)
    # The old version still answers with the old dates: Wednesday open, as when the clocks started.
    old, new = after_rules.calendar_of_version(before), after_rules.calendar(BOX, "box")
    assert old is not None and old.is_open_ts(ts(2025, 3, 5, 12)) and not new.is_open_ts(ts(2025, 3, 5, 12))


def test_the_same_library_gives_the_same_version_and_a_definition_without_dates_still_reads() -> None:
    rules, again = DeskRules(load_desks()), DeskRules(load_desks())
    assert rules.calendar_version(BOX, "box") == again.calendar_version(BOX, "box")
    assert rules.fingerprint() == again.fingerprint()
    # A definition stored before dates were pinned ([time zone, config]) asks the library.
    desk = load_desks().desk(BOX)
    legacy = msgspec.json.encode([desk.timezone, desk.calendars[0]])
    calendar = calendar_of_definition(legacy)
    assert calendar.is_open_ts(ts(2025, 3, 5, 12)) and not calendar.is_open_ts(ts(2025, 1, 2, 12))  # New Year
    with pytest.raises(ValueError, match="2 or 3 parts"):
        calendar_of_definition(b'["Europe/Moscow"]')
