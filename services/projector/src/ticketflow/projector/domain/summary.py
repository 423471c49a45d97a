"""Pure projection logic: how each event changes a ticket's dashboard summary. No I/O."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts import notification_events as n
from ticketflow.contracts import sla_events as s
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.lifecycle import Status, TicketState, evolve


class TicketSummary(msgspec.Struct):
    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    platform: str
    requester_id: str
    status: str
    priority: str
    opened_at: datetime
    updated_at: datetime
    last_position: int
    category: str | None = None
    queue_id: str | None = None
    assignee: str | None = None
    customer_messages: int = 1
    agent_replies: int = 0
    reopen_count: int = 0
    sla_excluded: bool = False
    sla_warnings: int = 0
    sla_breaches: int = 0
    notifications_failed: int = 0
    merged_into: uuid.UUID | None = None
    # For the agent only (issue 14): another requester's look-alike ticket, the latest suggested, and
    # the known problem an agent linked the ticket to.
    suggested_duplicate_of: uuid.UUID | None = None
    known_problem_of: uuid.UUID | None = None
    # Messages that left for the chat without an answer saying whether they arrived (issue 16): the agent
    # checks the chat.
    notifications_unknown: int = 0


COLUMNS = tuple(TicketSummary.__struct_fields__)


def apply(summary: TicketSummary | None, envelope: EventEnvelope) -> TicketSummary | None:
    """The summary after one event. Ticket status follows the lifecycle decider's own `evolve`,
    so the dashboard can never disagree with the rules about what a status means."""
    event = envelope.event
    position = envelope.position or 0
    if isinstance(event, t.TicketOpened):
        return TicketSummary(
            event.ticket_id,
            event.desk_id,
            event.track_id,
            event.chat.platform,
            event.requester.user_id,
            Status.OPENED.value,
            event.priority,
            event.opened_at,
            envelope.occurred_at,
            position,
        )
    if summary is None:
        return None  # an SLA or notification event for a ticket this read model never saw opened
    summary.updated_at = envelope.occurred_at
    summary.last_position = position
    if isinstance(event, s.SlaWarning):
        summary.sla_warnings += 1
    elif isinstance(event, s.SlaBreached):
        summary.sla_breaches += 1
    elif isinstance(event, n.NotificationFailed):
        summary.notifications_failed += 1
    elif isinstance(event, n.NotificationOutcomeUnknown):
        summary.notifications_unknown += 1
    elif isinstance(event, t.CustomerMessageAdded):
        summary.customer_messages += 1
    elif isinstance(event, t.AgentReplied):
        summary.agent_replies += 1
    if isinstance(event, t.TicketEvent):  # type: ignore[misc,arg-type]
        _follow_lifecycle(summary, event)
    if isinstance(event, t.TicketReferred):
        summary.sla_excluded = True  # out of scope: must not count against SLA statistics
    elif isinstance(event, t.DuplicateSuggested):
        summary.suggested_duplicate_of = event.candidate_id
    elif isinstance(event, t.KnownProblemLinked):
        summary.known_problem_of = event.problem_ticket_id
    return summary


def _follow_lifecycle(summary: TicketSummary, event: t.TicketEvent) -> None:
    state = evolve(
        TicketState(
            ticket_id=summary.ticket_id,
            status=Status(summary.status),
            priority=summary.priority,  # type: ignore[arg-type]
            category=summary.category,
            queue_id=summary.queue_id,
            assignee=summary.assignee,
            reopen_count=summary.reopen_count,
            merged_into=summary.merged_into,
        ),
        event,
    )
    summary.merged_into = state.merged_into
    summary.status = state.status.value
    summary.priority = state.priority
    summary.category = state.category
    summary.queue_id = state.queue_id
    summary.assignee = state.assignee
    summary.reopen_count = state.reopen_count
