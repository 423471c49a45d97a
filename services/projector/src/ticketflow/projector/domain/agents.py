"""Agent load (pure): each agent's status, capacity and queues from the roster events, and which tickets
count against whom (the assignee of a ticket assigned, in progress or waiting on the customer, as routing
counts capacity). Load per desk is counted when asked, from the ticket rows."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.domain.lifecycle import TERMINAL_STATUSES, Lifecycle, follow, is_ticket_event


class AgentRow(msgspec.Struct):
    agent_id: str
    status: str  # online, away, offline (offline until told otherwise, as routing assumes)
    capacity: int
    queues: list[str]
    skills: list[str]
    languages: list[str]
    updated_at: datetime


class HeldTicket(msgspec.Struct):
    """A ticket that is, or may again be, someone's work: its desk and lifecycle facts."""

    ticket_id: uuid.UUID
    desk_id: str
    status: str
    priority: str
    queue_id: str | None
    assignee: str | None


def apply_agent(agent: AgentRow | None, envelope: EventEnvelope) -> AgentRow | None:
    event = envelope.event
    if not isinstance(event, r.AgentEvent.__args__):  # type: ignore[attr-defined]
        return agent
    row = agent or AgentRow(event.agent_id, "offline", 5, [], [], ["ru"], envelope.occurred_at)
    row.updated_at = envelope.occurred_at
    match event:
        case r.AgentJoinedQueue():
            row.skills, row.languages, row.capacity = sorted(event.skills), sorted(event.languages), event.capacity
            if event.queue_id not in row.queues:
                row.queues = sorted([*row.queues, event.queue_id])
        case r.AgentLeftQueue():
            row.queues = [q for q in row.queues if q != event.queue_id]
        case r.AgentStatusChanged():
            row.status = event.status
        case r.AgentProfileUpdated():
            row.skills, row.languages, row.capacity = sorted(event.skills), sorted(event.languages), event.capacity
    return row


def apply_ticket(ticket: HeldTicket | None, envelope: EventEnvelope) -> HeldTicket | None:
    """The ticket after one lifecycle event; None once finished (a merge unassigns first, and an undone
    merge brings the ticket back before preflight, unassigned)."""
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        return ticket or HeldTicket(event.ticket_id, event.desk_id, "new", event.priority, None, None)
    if isinstance(event, t.MergeUndone):
        return HeldTicket(event.ticket_id, event.desk_id, "opened", event.priority, None, None)
    if ticket is None or not is_ticket_event(event):
        return ticket
    after = follow(Lifecycle(ticket.status, ticket.priority, ticket.queue_id, ticket.assignee), event)
    if after.status in TERMINAL_STATUSES:
        return None
    ticket.status, ticket.priority, ticket.queue_id, ticket.assignee = (
        after.status, after.priority, after.queue_id, after.assignee
    )  # fmt: skip
    return ticket
