"""One ticket event in, its notifications delivered, their outcomes in the store.

`handle(envelope)` is idempotent: deliveries are claimed per idempotency key in the ledger (a
redelivered event sends nothing new) and outcome events have ids derived from the key, so appending
them again is a no-op. It raises only when PostgreSQL fails (the handler retries, then dead-letters).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.ids import deterministic_event_id, notification_stream, sla_stream, ticket_stream
from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore import ConcurrencyError, EventStore
from ticketflow.notifications.delivery import Deliverer
from ticketflow.notifications.directory import Directory
from ticketflow.notifications.domain import (
    DeskView,
    Related,
    TicketContext,
    context_of,
    evolve,
    needs_message,
    plan_event,
    title_of,
)
from ticketflow.notifications.model import Channel, DeliveryOutcome, Notification, OutcomeStatus

log = logging.getLogger("ticketflow.notifications")
MAX_CONFLICTS = 5
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Handled:
    sent: int = 0
    dead: int = 0
    skipped: str = ""


def outcome_event(ticket_id: uuid.UUID, n: Notification, outcome: DeliveryOutcome, at: datetime) -> NewEvent | None:
    """NotificationDelivered / NotificationFailed with an id derived from the key (and the attempt
    count for failures, so a redriven-and-failed-again delivery records its new failure)."""
    attempts = max(outcome.attempts, 1)
    event: ne.NotificationEvent
    if outcome.status in (OutcomeStatus.DELIVERED, OutcomeStatus.DUPLICATE):
        event_id = deterministic_event_id("notification", n.key, "delivered")
        event = ne.NotificationDelivered(ticket_id, n.key, n.channel.value, n.recipient, n.template, at, attempts)
    elif outcome.status is OutcomeStatus.DEAD_LETTER:
        event_id = deterministic_event_id("notification", n.key, "failed", outcome.attempts)
        reason = outcome.reason or "unknown"
        event = ne.NotificationFailed(ticket_id, n.key, n.channel.value, n.recipient, n.template, reason, True, at,
                                      attempts)  # fmt: skip
    else:
        return None  # in flight elsewhere: that worker (or recover_stale) records it
    return NewEvent(event_id, event, at)


class NotificationService:
    def __init__(
        self,
        store: EventStore,
        deliverer: Deliverer,
        desks: DeskRegistry,
        directory: Directory,
        *,
        cache_size: int = 10_000,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.desks = desks
        self.directory = directory
        # Ticket contexts, newest last; bounded, so memory does not grow with the number of tickets.
        self._contexts: OrderedDict[uuid.UUID, TicketContext] = OrderedDict()
        self._cache_size = cache_size

    async def handle(self, envelope: EventEnvelope) -> Handled:
        event = envelope.event
        ticket_id: uuid.UUID | None = getattr(event, "ticket_id", None)
        if ticket_id is None or not envelope.stream_id.startswith(("ticket-", "sla-")):
            return Handled(skipped="not a ticket or SLA event")
        ctx = await self._context(ticket_id, envelope)
        if not needs_message(event):
            return Handled(skipped="no message for this event")
        planned = plan_event(envelope, ctx, self.desk_view(ctx), self.directory, await self._related(event))
        if not planned.notifications:
            return Handled(skipped=planned.note or "nobody to tell")
        outcomes = await asyncio.gather(*(self.deliverer.deliver(n) for n in planned.notifications))
        await self.record(ticket_id, list(zip(planned.notifications, outcomes, strict=True)))
        dead = sum(o.status is OutcomeStatus.DEAD_LETTER for o in outcomes)
        return Handled(sent=sum(o.sent_now for o in outcomes), dead=dead)

    async def record(self, ticket_id: uuid.UUID, results: Sequence[tuple[Notification, DeliveryOutcome]]) -> None:
        """Append the outcomes to `notification-<ticket>`; already-stored ids are skipped by the store."""
        now = datetime.now(UTC)
        events = [e for n, o in results if (e := outcome_event(ticket_id, n, o, now)) is not None]
        if not events:
            return
        stream = notification_stream(ticket_id)
        for _ in range(MAX_CONFLICTS):
            head = await self.store.pool.fetchval(
                "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream
            )
            try:
                await self.store.append(stream, head, events)
                return
            except ConcurrencyError:
                continue  # another writer (a redrive) appended meanwhile: read the head again
        raise ConcurrencyError(stream, -1, -1)

    def desk_view(self, ctx: TicketContext) -> DeskView:
        directory = self.directory
        try:
            desk = self.desks.desk(ctx.desk_id)
        except KeyError:
            return DeskView(timezone="Europe/Moscow", partners_url=directory.partners_url(ctx.desk_id))
        calendar, weekly = None, {}
        track = next((tr for tr in desk.tracks if tr.id == ctx.track_id), None)
        if track is not None:
            calendar = self.desks.calendar(desk.id, track.id)
            config = next(c for c in desk.calendars if c.id == track.calendar)
            weekly = {day: tuple(getattr(config.weekly, day)) for day in DAY_KEYS}
        return DeskView(
            timezone=desk.timezone,
            calendar=calendar,
            weekly_hours=weekly,
            email=desk.notifications.email,
            email_relay=directory.email_relay(desk.id),
            partners_url=directory.partners_url(desk.id),
        )

    async def _context(self, ticket_id: uuid.UUID, envelope: EventEnvelope) -> TicketContext:
        """Ticket events in order extend the cached context; anything else reads the ticket stream."""
        cached = self._contexts.get(ticket_id)
        is_ticket_event = envelope.stream_id == ticket_stream(ticket_id)
        if cached is not None and is_ticket_event and envelope.stream_version == cached.version + 1:
            ctx = evolve(cached, envelope)
        elif cached is not None and is_ticket_event and envelope.stream_version <= cached.version:
            ctx = cached  # a redelivery: what it changed is already in
        elif isinstance(envelope.event, t.TicketOpened):
            ctx = evolve(TicketContext(ticket_id), envelope)
        else:
            stored = await self.store.read_stream(ticket_stream(ticket_id))
            ctx = context_of(ticket_id, stored, envelope.stream_version if is_ticket_event else None)
        self._contexts[ticket_id] = ctx
        self._contexts.move_to_end(ticket_id)
        while len(self._contexts) > self._cache_size:
            self._contexts.popitem(last=False)
        return ctx

    async def _related(self, event: Any) -> Related:
        if isinstance(event, t.DuplicateSuspected):
            stored = await self.store.read_stream(ticket_stream(event.duplicate_of), 1)
            opened = next((e.event for e in stored if isinstance(e.event, t.TicketOpened)), None)
            return Related(duplicate_title=title_of(opened.text) if opened else "")
        if isinstance(event, t.TicketAssigned):
            deadlines = [e.event for e in await self.store.read_stream(sla_stream(event.ticket_id))]
            started = [e.deadline for e in deadlines if isinstance(e, sla.SlaClockStarted | sla.SlaClockResumed)]
            return Related(deadline=started[-1] if started else None)
        return Related()

    async def record_by_keys(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Outcome events for deliveries finished outside `handle` (redrive, recover_stale): the
        ledger row says what was sent, the store says which ticket the event belongs to."""
        final = [o for o in outcomes if o.status in (OutcomeStatus.DELIVERED, OutcomeStatus.DEAD_LETTER)]
        if not final:
            return 0
        rows = await self.store.pool.fetch(
            "SELECT d.*, e.stream_id FROM notification_deliveries d"
            " LEFT JOIN events e ON e.event_id = CASE WHEN d.event_id ~* '^[0-9a-f-]{36}$'"
            " THEN d.event_id::uuid END WHERE d.idempotency_key = ANY($1::text[])",
            [o.key for o in final],
        )
        by_key = {r["idempotency_key"]: r for r in rows}
        per_ticket: dict[uuid.UUID, list[tuple[Notification, DeliveryOutcome]]] = {}
        for outcome in final:
            row = by_key.get(outcome.key)
            if row is None or row["stream_id"] is None:
                log.warning("notifications: no ticket found for delivery %s; outcome not recorded", outcome.key)
                continue
            ticket_id = uuid.UUID(row["stream_id"].split("-", 1)[1])
            n = Notification(outcome.key, row["event_id"], Channel(row["channel"]), row["recipient"],
                             row["destination"], row["address"], row["template"], row["locale"])  # fmt: skip
            per_ticket.setdefault(ticket_id, []).append((n, outcome))
        for ticket_id, results in per_ticket.items():
            await self.record(ticket_id, results)
        return sum(len(r) for r in per_ticket.values())

    async def redrive_temporary(self, *, older_than: float, limit: int = 500) -> int:
        """Redrive dead letters whose cause was temporary (destination down or slow: tries used up,
        backlog full, Retry-After too long) once they are `older_than` seconds old; permanent causes
        (credentials, addresses, templates, garbage answers) wait for a person. Returns how many."""
        keys = [
            r["idempotency_key"]
            for r in await self.store.pool.fetch(
                "SELECT idempotency_key FROM notification_deliveries WHERE status = 'dead'"
                " AND updated_at < now() - make_interval(secs => $1)"
                " AND (last_error LIKE 'gave up after %' OR last_error LIKE 'destination backlog full%'"
                "      OR last_error LIKE '%more than we hold a delivery')"
                " ORDER BY updated_at LIMIT $2",
                older_than,
                limit,
            )
        ]
        if not keys:
            return 0
        outcomes = await self.deliverer.redrive(keys, limit=limit)
        await self.record_by_keys(outcomes)
        return len(outcomes)
