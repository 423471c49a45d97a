"""The backlog's history (pure): per desk, queue and hour, how many tickets entered the backlog and how many
left it. The backlog at the end of an hour is the sum of (entered - left) of every hour up to it, counted
when asked. Hours come from the events' own times (`occurred_at`, truncated to the UTC hour), never from the
clock of the projector, so a rebuild makes the same rows; and sums commute, so tickets whose events
interleave in the log in any order still add up to the same figures.

A ticket is in the backlog of (desk, queue) while its status is one of `lifecycle.BACKLOG_STATUSES` (a
ready ticket waits for routing with no queue: `NO_QUEUE`). Routing it to another queue is one leaving and
one entering in the same hour."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.domain.lifecycle import BACKLOG_STATUSES, Lifecycle, follow, is_ticket_event

NO_QUEUE = ""  # waiting for routing (the table's key has no nulls)
GONE = frozenset({"closed", "refused"})  # finished for good: the ticket's row goes


class HistoryTicket(msgspec.Struct):
    """What the history needs to know of a ticket to see it enter or leave a queue's backlog."""

    ticket_id: uuid.UUID
    desk_id: str
    status: str
    priority: str
    queue_id: str | None = None
    assignee: str | None = None


class Move(msgspec.Struct, frozen=True):
    """One ticket entering (+1) or leaving (-1) a queue's backlog in an hour."""

    desk_id: str
    queue_id: str
    hour: datetime
    change: int


def hour_of(at: datetime) -> datetime:
    """The UTC hour an instant falls in (its start)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def place(row: HistoryTicket | None) -> str | None:
    """The queue whose backlog the ticket is in (`NO_QUEUE`: waiting for routing), None: in no backlog."""
    if row is None or row.status not in BACKLOG_STATUSES:
        return None
    return row.queue_id or NO_QUEUE


def apply(row: HistoryTicket | None, envelope: EventEnvelope) -> tuple[HistoryTicket | None, list[Move]]:
    """The ticket's row after one event, and the backlog moves the event made (in the event's hour)."""
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        if row is not None:
            return row, []
        return HistoryTicket(event.ticket_id, event.desk_id, "new", event.priority), []
    if row is None or not is_ticket_event(event):
        return row, []
    before = place(row)
    after = follow(Lifecycle(row.status, row.priority, row.queue_id, row.assignee), event)
    row = HistoryTicket(row.ticket_id, row.desk_id, after.status, after.priority, after.queue_id, after.assignee)
    now = place(row)
    if now == before:
        return (None if row.status in GONE else row), []
    hour = hour_of(envelope.occurred_at)
    moves = []
    if before is not None:
        moves.append(Move(row.desk_id, before, hour, -1))
    if now is not None:
        moves.append(Move(row.desk_id, now, hour, +1))
    return (None if row.status in GONE else row), moves
