"""The read models' pure part: given events, the rows they make (no database)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketflow.contracts import sla_events as s
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.projector.domain import agents, backlog, backlog_history, metrics, sla_board, tickets
from ticketflow.projector.domain.clocks import follow_clock, sla_state
from ticketflow.projector.domain.desk_time import RegistryDeskTime

TICKET = uuid.UUID("018f0000-0000-7000-8000-0000000000aa")
FRIDAY_1830 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # Moscow time: half an hour before the box desk closes
DESK_TIME = RegistryDeskTime(load_desks())
_positions = itertools.count(1)


def at(event: Any, when: datetime = FRIDAY_1830) -> EventEnvelope:
    stream = ("sla-" if isinstance(event, s.SlaEvent.__args__) else "ticket-") + str(TICKET)  # type: ignore[attr-defined]
    return EventEnvelope(uuid.uuid4(), stream, 1, when, 1, event, position=next(_positions))


OPENED = t.TicketOpened(TICKET, "bitrix24-box", "box", ChatRef("bitrix24", "p", "d"), Requester("admin"), "slow", "m1",
                        FRIDAY_1830)  # fmt: skip
STARTED = s.SlaClockStarted(TICKET, "first_response", "box/normal", 7200, FRIDAY_1830, FRIDAY_1830 + timedelta(hours=3))


def test_a_clock_follows_its_events_and_a_restart_forgets_the_breach() -> None:
    clock = follow_clock(None, STARTED)
    assert clock is not None and (clock.state, clock.breached) == ("running", False)
    clock = follow_clock(clock, s.SlaBreached(TICKET, "first_response", STARTED.deadline, STARTED.deadline))
    assert clock is not None and clock.breached and sla_state([clock]) == "breached"
    kept = follow_clock(clock, s.SlaRecalculated(TICKET, "first_response", "keep_elapsed", "priority", STARTED.deadline,
                                                 STARTED.deadline, 3600))  # fmt: skip
    restarted = follow_clock(clock, s.SlaRecalculated(TICKET, "first_response", "restart", "priority",
                                                      STARTED.deadline, FRIDAY_1830, 3600))  # fmt: skip
    assert kept is not None and kept.breached and restarted is not None and not restarted.breached
    assert follow_clock(None, s.SlaMet(TICKET, "first_response", FRIDAY_1830, 10)) is None  # no such clock


def test_a_tickets_sla_state_is_its_worst_clock() -> None:
    running = follow_clock(None, STARTED)
    assert running is not None
    paused = follow_clock(running, s.SlaClockPaused(TICKET, "first_response", FRIDAY_1830, 60))
    met = follow_clock(running, s.SlaMet(TICKET, "first_response", FRIDAY_1830, 60))
    warned = follow_clock(running, s.SlaWarning(TICKET, "first_response", 0.5, STARTED.deadline, FRIDAY_1830))
    assert paused and met and warned
    assert [sla_state(c) for c in ([], [met], [running, met], [warned, met], [paused, warned])] == [
        "none", "met", "running", "warning", "paused"
    ]  # fmt: skip


def test_first_response_counts_business_seconds_of_the_desk_calendar() -> None:
    row = metrics.apply(None, at(OPENED), DESK_TIME)
    monday_1030 = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
    row = metrics.apply(row, at(t.AgentReplied(TICKET, "ann", "r1", "hi"), monday_1030), DESK_TIME)
    assert row is not None and row.first_response_s == 3600  # 18:30-19:00 on Friday, 10:00-10:30 on Monday
    assert row.day == FRIDAY_1830.date() and row.excluded is None
    row = metrics.apply(row, at(t.TicketReferred(TICKET, "custom_development", "partners")), DESK_TIME)
    assert row is not None and row.excluded == "referred"


def test_sla_board_rows_are_the_pending_clocks_and_leave_with_the_ticket() -> None:
    ticket = sla_board.apply(None, at(OPENED), DESK_TIME.queue_track)
    ticket = sla_board.apply(ticket, at(STARTED), DESK_TIME.queue_track)
    assert ticket is not None and [r.state for r in sla_board.board_rows(ticket)] == ["running"]
    ticket = sla_board.apply(ticket, at(t.TicketRouted(TICKET, "box-l2", "l2", "high", "r")), DESK_TIME.queue_track)
    assert ticket is not None and sla_board.board_rows(ticket)[0].queue_id == "box-l2"
    met = sla_board.apply(ticket, at(s.SlaMet(TICKET, "first_response", FRIDAY_1830, 60)), DESK_TIME.queue_track)
    assert met is not None and sla_board.board_rows(met) == []
    assert sla_board.apply(ticket, at(t.TicketMerged(TICKET, uuid.uuid4(), "lead")), DESK_TIME.queue_track) is None


def test_the_backlog_and_agent_load_follow_the_lifecycle() -> None:
    events = [OPENED, t.PreflightPassed(TICKET, "performance"), t.TicketRouted(TICKET, "box-l1", "l1", "normal", "r"),
              t.TicketAssigned(TICKET, "ann", "round_robin")]  # fmt: skip
    row: Any = None
    held: Any = None
    for event in events:
        row, held = backlog.apply(row, at(event)), agents.apply_ticket(held, at(event))
    assert (row.status, row.queue_id, row.assignee) == ("assigned", "box-l1", "ann")
    assert held.assignee == "ann" and held.status == "assigned"
    assert backlog.apply(row, at(t.TicketClosed(TICKET, "done", "ann"))) is None
    detail = None
    for event in events:
        detail = tickets.apply(detail, at(event))
    assert detail is not None and tickets.list_row(detail).priority_rank == 2 and detail.status == "assigned"


def test_the_backlog_history_moves_a_ticket_in_the_hour_of_the_event_that_moved_it() -> None:
    hour = FRIDAY_1830.replace(minute=0)
    row, moves = backlog_history.apply(None, at(OPENED))
    assert row is not None and moves == []  # opened: not waiting in a queue yet
    row, moves = backlog_history.apply(row, at(t.PreflightPassed(TICKET, "performance")))
    assert moves == [backlog_history.Move("bitrix24-box", "", hour, +1)]  # ready: waiting for routing
    later = FRIDAY_1830 + timedelta(hours=2, minutes=45)  # an event's own time, whenever it is projected
    row, moves = backlog_history.apply(row, at(t.TicketRouted(TICKET, "box-l1", "l1", "normal", "r"), later))
    assert moves == [backlog_history.Move("bitrix24-box", "", hour + timedelta(hours=3), -1),
                     backlog_history.Move("bitrix24-box", "box-l1", hour + timedelta(hours=3), +1)]  # fmt: skip
    row, moves = backlog_history.apply(row, at(t.TicketAssigned(TICKET, "ann", "round_robin")))
    assert moves == [] and row is not None and row.assignee == "ann"  # still in box-l1's backlog
    merged, moves = backlog_history.apply(row, at(t.TicketMerged(TICKET, uuid.uuid4(), "lead")))
    assert merged is not None and [m.change for m in moves] == [-1]  # merged: out, but kept (a merge may be undone)
    resolved, moves = backlog_history.apply(row, at(t.TicketResolved(TICKET, "done", "ann")))
    assert resolved is not None and [m.change for m in moves] == [-1]
    closed, moves = backlog_history.apply(resolved, at(t.TicketClosed(TICKET, "confirmed", "admin")))
    assert closed is None and moves == []  # closed for good: the row goes, already out of the backlog
    assert backlog_history.apply(None, at(t.TicketResolved(TICKET, "x", "ann"))) == (None, [])  # never opened here
