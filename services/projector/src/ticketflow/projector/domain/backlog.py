"""The queue backlog (pure): one row per ticket that can still come back to a queue, with what the backlog
groups by (desk, queue, priority) and what it buckets by (when the ticket was opened). Whether a row is
in the backlog follows from its status (`lifecycle.BACKLOG_STATUSES`); the age buckets are counted when
asked, since tickets age without events."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.domain.lifecycle import Lifecycle, follow, is_ticket_event

# Finished for good: the row goes. (A merged ticket stays: an agent may undo an automatic merge.)
GONE = frozenset({"closed", "refused"})


class BacklogTicket(msgspec.Struct):
    ticket_id: uuid.UUID
    desk_id: str
    status: str
    priority: str
    queue_id: str | None
    assignee: str | None
    opened_at: datetime


def apply(row: BacklogTicket | None, envelope: EventEnvelope) -> BacklogTicket | None:
    """The row after one event (None: no row; a closed or refused ticket's row is gone)."""
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        return row or BacklogTicket(event.ticket_id, event.desk_id, "new", event.priority, None, None, event.opened_at)
    if row is None or not is_ticket_event(event):
        return row
    after = follow(Lifecycle(row.status, row.priority, row.queue_id, row.assignee), event)
    if after.status in GONE:
        return None
    row.status, row.priority, row.queue_id, row.assignee = after.status, after.priority, after.queue_id, after.assignee
    return row
