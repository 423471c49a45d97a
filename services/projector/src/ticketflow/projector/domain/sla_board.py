"""The SLA board (pure): every pending clock (running or paused) with what the board shows and filters on.
At risk, breached and paused are asked of it with the desk calendar (at risk within N business minutes
is a deadline before "now + N business minutes" in the clock's calendar), so nothing here depends on now.

A clock counts in the calendar of the ticket's track, or of its queue's track once routed (as the sla
service counts it): `BoardTicket.calendar_track`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec

from ticketflow.contracts import sla_events as s
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.views import SlaClock
from ticketflow.projector.domain.clocks import follow_clock, pending
from ticketflow.projector.domain.lifecycle import TERMINAL_STATUSES, Lifecycle, follow, is_ticket_event

QueueTrack = Callable[[str, str], str | None]  # (desk, queue) -> the queue's track, if the desk knows it


class BoardTicket(msgspec.Struct):
    """A ticket the board may show clocks of, and its clocks (kept in a table of their own)."""

    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    calendar_track: str
    status: str
    priority: str
    queue_id: str | None
    assignee: str | None
    clocks: dict[str, SlaClock] = msgspec.field(default_factory=dict)


class BoardClock(msgspec.Struct):
    """A row of `sla_board_clocks`: one pending clock and the ticket facts the board filters on."""

    ticket_id: uuid.UUID
    target: str
    desk_id: str
    calendar_track: str
    priority: str
    queue_id: str | None
    assignee: str | None
    state: str
    deadline: datetime | None
    breached: bool
    warning_level: float
    started_at: datetime
    paused_at: datetime | None
    policy_id: str
    target_seconds: int


def apply(ticket: BoardTicket | None, envelope: EventEnvelope, queue_track: QueueTrack) -> BoardTicket | None:
    """The ticket after one event; None once it is finished (its clocks leave the board with it). A ticket
    merged automatically stays, without clocks: an agent may undo the merge."""
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        return ticket or BoardTicket(event.ticket_id, event.desk_id, event.track_id, event.track_id, "new",
                                     event.priority, None, None)  # fmt: skip
    if ticket is None:
        return None
    if is_ticket_event(event):
        after = follow(Lifecycle(ticket.status, ticket.priority, ticket.queue_id, ticket.assignee), event)
        if after.status in TERMINAL_STATUSES and not isinstance(event, t.DuplicateSuspected):
            return None
        ticket.status, ticket.priority, ticket.queue_id, ticket.assignee = (
            after.status, after.priority, after.queue_id, after.assignee
        )  # fmt: skip
        if isinstance(event, t.TicketRouted):
            ticket.calendar_track = queue_track(ticket.desk_id, event.queue_id) or ticket.calendar_track
        if after.status in TERMINAL_STATUSES:
            ticket.clocks = {}
    elif isinstance(event, s.SlaEvent.__args__):  # type: ignore[attr-defined]
        clock = follow_clock(ticket.clocks.get(event.target), event)
        if clock is None or not pending(clock):
            ticket.clocks.pop(event.target, None)
        else:
            ticket.clocks[event.target] = clock
    return ticket


def board_rows(ticket: BoardTicket) -> list[BoardClock]:
    return [board_row(ticket, target, clock) for target, clock in ticket.clocks.items()]


def board_row(ticket: BoardTicket, target: str, clock: SlaClock) -> BoardClock:
    return BoardClock(
        ticket.ticket_id, target, ticket.desk_id, ticket.calendar_track, ticket.priority, ticket.queue_id,
        ticket.assignee, clock.state, clock.deadline, clock.breached, clock.warning_level, clock.started_at,
        clock.paused_at, clock.policy_id, clock.target_seconds,
    )  # fmt: skip
