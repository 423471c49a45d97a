"""The application service: one ticket event (or bot reply) in, its notifications delivered, their
outcomes appended to the ticket's notification stream.

`Notifications.handle(envelope)` loads what the messages need (the ticket's context from a bounded cache
or the ticket stream, facts of other streams), decides with the pure domain (`domain.messages.plan_event`),
delivers through the engine (`adapters.delivery.Deliverer`) and appends the outcome events. It is
idempotent: deliveries are claimed per idempotency key in the ledger (a redelivered event sends nothing
new) and outcome events have ids derived from the key, so appending them again is a no-op. It raises
only when PostgreSQL fails; the consumer waits the outage out and the batch comes again.

With `record=False` the outcomes are left to the caller: the Kafka consumer collects a batch's in
`BatchOutcomes` and writes them once, after the batch's deliveries settle in the ledger (`after_batch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.chat import ChatReply
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import sla_stream, ticket_stream
from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore import EventStore
from ticketflow.messaging import tracing
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.directory import Directory
from ticketflow.notifications.adapters.outcome_events import OutcomeRecorder
from ticketflow.notifications.domain.context import TicketContext, context_of, evolve, title_of
from ticketflow.notifications.domain.messages import DeskView, Related, needs_message, plan_event, plan_reply
from ticketflow.notifications.domain.model import DeliveryOutcome, OutcomeStatus
from ticketflow.notifications.domain.outcomes import Result

log = logging.getLogger("ticketflow.notifications")
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Handled:
    sent: int = 0
    dead: int = 0
    skipped: str = ""
    results: tuple[Result, ...] = ()  # for the caller to record, when asked not to record them here
    failures: tuple[tuple[str, str], ...] = ()  # (idempotency key, reason) of deliveries that are dead letters


class BatchOutcomes:
    """The outcomes of one subscription's current batch, written together once its deliveries settle:
    `add` each record's `Handled`, then `record` (the batch's `after_batch`). What a failed `record`
    held stays for the next try; a batch given back uncommitted is handled again and gives the same
    outcomes, which are kept once each (so a long outage does not pile them up). Each outcome keeps the
    trace context of the record it was handled for: its event continues that trace."""

    def __init__(self, deliverer: Deliverer, recorder: OutcomeRecorder) -> None:
        self.deliverer = deliverer
        self.recorder = recorder
        self.results: dict[tuple[str, OutcomeStatus, int], Result] = {}
        self.traces: dict[str, str] = {}  # notification key -> traceparent

    def add(self, handled: Handled) -> Handled:
        traceparent, _ = tracing.current()
        for result in handled.results:
            _, notification, outcome = result
            self.results[(notification.key, outcome.status, outcome.attempts)] = result
            if traceparent is not None:
                self.traces[notification.key] = traceparent
        return handled

    async def record(self) -> None:
        await self.deliverer.settle()  # the deliveries' ledger records first, then the outcome events
        if self.results:
            await self.recorder.record(list(self.results.values()), self.traces)
            self.results.clear()
            self.traces.clear()


class Notifications:
    """The notifications service's application: `handle` (ticket events), `reply` (the bot's replies),
    `keep_recovering` (stale claims and temporary dead letters), `redrive_temporary`."""

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
        self.recorder = OutcomeRecorder(store)
        # Ticket contexts, newest last; bounded, so memory does not grow with the number of tickets.
        self._contexts: OrderedDict[uuid.UUID, TicketContext] = OrderedDict()
        self._cache_size = cache_size

    async def handle(self, envelope: EventEnvelope, *, record: bool = True) -> Handled:
        event = envelope.event
        ticket_id: uuid.UUID | None = getattr(event, "ticket_id", None)
        if ticket_id is None or not envelope.stream_id.startswith(("ticket-", "sla-")):
            return Handled(skipped="not a ticket or SLA event")
        if not needs_message(event):
            self._follow(ticket_id, envelope)
            return Handled(skipped="no message for this event")
        ctx = await self._context(ticket_id, envelope)
        planned = plan_event(envelope, ctx, self.desk_view(ctx), self.directory, await self._related(event))
        if not planned.notifications:
            return Handled(skipped=planned.note or "nobody to tell")
        # Not recording here means a batch caller records later: it settles the ledger first, too.
        outcomes = await asyncio.gather(
            *(self.deliverer.deliver(n, record_later=not record) for n in planned.notifications)
        )
        results = tuple((ticket_id, n, o) for n, o in zip(planned.notifications, outcomes, strict=True))
        if record:
            await self.recorder.record(results)
        dead = sum(o.status is OutcomeStatus.DEAD_LETTER for o in outcomes)
        handled = Handled(sent=sum(o.sent_now for o in outcomes), dead=dead, results=() if record else results)
        log.debug("notifications: %s %s -> %s", type(event).__name__, envelope.stream_id, handled)
        return handled

    async def reply(self, reply: ChatReply, *, record: bool = True) -> Handled:
        """A bot reply from `chat.replies`: one delivery to its chat through the same ledger (a
        republished reply sends nothing new). Outcome events are written only for replies that name a
        ticket (they live in the ticket's notification stream); the ledger has every reply either way."""
        notification = plan_reply(reply)
        outcome = await self.deliverer.deliver(notification, record_later=not record)
        ticket_id = _uuid(reply.ticket_id)
        results = ((ticket_id, notification, outcome),) if ticket_id is not None else ()
        if record and results:
            await self.recorder.record(results)
        dead = outcome.status is OutcomeStatus.DEAD_LETTER
        failures = ((outcome.key, outcome.reason or "unknown"),) if dead else ()
        return Handled(sent=int(outcome.sent_now), dead=int(dead), results=() if record else results,
                       failures=failures)  # fmt: skip

    def desk_view(self, ctx: TicketContext) -> DeskView:
        directory = self.directory
        try:
            desk = self.desks.desk(ctx.desk_id)
        except KeyError:
            return DeskView(timezone="Europe/Moscow")
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
        )

    def _follow(self, ticket_id: uuid.UUID, envelope: EventEnvelope) -> None:
        """An event without a message still moves a cached context along (no I/O for it). A TicketOpened
        starts one: its message waits for PreflightPassed, which then finds chat and requester here."""
        cached = self._contexts.get(ticket_id)
        if cached is None and isinstance(envelope.event, t.TicketOpened):
            self._remember(ticket_id, evolve(TicketContext(ticket_id), envelope))
        elif cached is not None and envelope.stream_id == ticket_stream(ticket_id):
            if envelope.stream_version == cached.version + 1:
                self._contexts[ticket_id] = evolve(cached, envelope)
            elif envelope.stream_version > cached.version:
                del self._contexts[ticket_id]  # a gap: the next event that needs a message reads the stream

    async def _context(self, ticket_id: uuid.UUID, envelope: EventEnvelope) -> TicketContext:
        """Ticket events in order extend the cached context; anything else (SLA events, gaps, older
        events replayed) reads the ticket stream, folded up to the event, so a replay sees the ticket
        as it was then."""
        cached = self._contexts.get(ticket_id)
        is_ticket_event = envelope.stream_id == ticket_stream(ticket_id)
        if cached is not None and is_ticket_event and envelope.stream_version == cached.version + 1:
            ctx = evolve(cached, envelope)
        elif cached is not None and is_ticket_event and envelope.stream_version == cached.version:
            ctx = cached  # the latest event again (a redelivered batch): what it changed is already in
        else:
            stored = await self.store.read_stream(ticket_stream(ticket_id))
            ctx = context_of(ticket_id, stored, envelope.stream_version if is_ticket_event else None)
        self._remember(ticket_id, ctx)
        return ctx

    def _remember(self, ticket_id: uuid.UUID, ctx: TicketContext) -> None:
        self._contexts[ticket_id] = ctx
        self._contexts.move_to_end(ticket_id)
        while len(self._contexts) > self._cache_size:
            self._contexts.popitem(last=False)

    async def _related(self, event: Any) -> Related:
        if isinstance(event, t.DuplicateSuspected):
            stored = await self.store.read_stream(ticket_stream(event.duplicate_of), 1)
            opened = next((e.event for e in stored if isinstance(e.event, t.TicketOpened)), None)
            if opened is None:
                return Related()
            return Related(title_of(opened.text), opened.chat, opened.requester)
        if isinstance(event, t.TicketAssigned):
            deadlines = [e.event for e in await self.store.read_stream(sla_stream(event.ticket_id))]
            started = [e.deadline for e in deadlines if isinstance(e, sla.SlaClockStarted | sla.SlaClockResumed)]
            return Related(deadline=started[-1] if started else None)
        return Related()

    def batch_outcomes(self) -> BatchOutcomes:
        return BatchOutcomes(self.deliverer, self.recorder)

    async def record_by_keys(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        return await self.recorder.record_by_keys(outcomes)

    async def redrive_temporary(self, *, older_than: float, limit: int = 500) -> int:
        """Redrive dead letters whose cause was temporary (destination down or slow: tries used up,
        backlog full, Retry-After too long) once they are `older_than` seconds old, and record their
        outcomes; permanent causes (credentials, addresses, templates, garbage answers) wait for a
        person. Returns how many."""
        outcomes = await self.deliverer.redrive_temporary(older_than=older_than, limit=limit)
        await self.recorder.record_by_keys(outcomes)
        return len(outcomes)

    async def keep_recovering(self, stop: asyncio.Event, *, every: float, auto_redrive_after: float) -> None:
        """Every `every` seconds until stopped: finish claims whose worker went away (`recover_stale`),
        and redrive dead letters of temporary causes older than `auto_redrive_after` seconds (0: never)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if stop.is_set():
                return
            try:
                outcomes = await self.deliverer.recover_stale()
                if outcomes:
                    await self.record_by_keys(outcomes)
                    log.info("notifications: recovered %d stale deliveries", len(outcomes))
                if auto_redrive_after > 0 and (redriven := await self.redrive_temporary(older_than=auto_redrive_after)):
                    log.info("notifications: redrove %d dead letters of temporary causes", redriven)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                log.warning("notifications: recovery round failed, next in %.0fs: %r", every, exc)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
