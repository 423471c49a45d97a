"""A ticket as this service needs to know it, folded from the ticket's own events. Pure: no I/O.

`evolve(state, event) -> state`, the house convention (`ticketflow.lifecycle.decider`): the chat and the
requester, desk, track, title, queue, priority and assignee, and the last ticket-stream version folded
in. The application service keeps these in a bounded cache and reads the stream only when the cache
cannot follow (docs/notifications.md, "Per-ticket context")."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.values import ChatRef, Requester


@dataclass(frozen=True, slots=True)
class TicketContext:
    ticket_id: uuid.UUID
    version: int = 0  # the last ticket-stream version folded in
    opened_event_id: uuid.UUID | None = None  # the TicketOpened's id: keys the one "registered" message
    desk_id: str = ""
    track_id: str = ""
    chat: ChatRef | None = None
    requester: Requester | None = None
    title: str = ""
    priority: str = "normal"
    queue_id: str | None = None
    assignee: str | None = None


def evolve(ctx: TicketContext, envelope: EventEnvelope) -> TicketContext:
    event, version = envelope.event, max(ctx.version, envelope.stream_version)
    if isinstance(event, t.TicketOpened):
        return replace(ctx, version=version, opened_event_id=envelope.event_id, desk_id=event.desk_id,
                       track_id=event.track_id, chat=event.chat, requester=event.requester, title=title_of(event.text),
                       priority=event.priority)  # fmt: skip
    if isinstance(event, t.TicketRouted):
        return replace(ctx, version=version, queue_id=event.queue_id, priority=event.priority)
    if isinstance(event, t.TicketAssigned):
        return replace(ctx, version=version, assignee=event.agent_id)
    if isinstance(event, t.TicketUnassigned) and ctx.assignee == event.agent_id:
        return replace(ctx, version=version, assignee=None)
    if isinstance(event, t.PriorityChanged):
        return replace(ctx, version=version, priority=event.to_priority)
    return replace(ctx, version=version)


def context_of(ticket_id: uuid.UUID, envelopes: Iterable[EventEnvelope], up_to: int | None = None) -> TicketContext:
    ctx = TicketContext(ticket_id)
    for envelope in envelopes:
        if up_to is None or envelope.stream_version <= up_to:
            ctx = evolve(ctx, envelope)
    return ctx


def title_of(text: str, limit: int = 80) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"
