"""The routing service layer: events and commands in, decisions appended to ticket streams.

Decisions are made and applied to the in-memory state at once (synchronously, so no other trigger
can see a half-made decision), and their events are buffered per stream. `flush` stores the whole
buffer with one `append_many` (all or nothing, one round trip for a whole Kafka batch). If that
fails on a concurrent append, the streams are appended one by one, and every ticket whose decision
could not be stored is forgotten, refolded from its stream and decided again. The caller
acknowledges its Kafka records only after `flush`, so a crash loses nothing (restart rebuilds the
state from the store and decides what is still undecided).

Our own events come back from Kafka later and are skipped by stream version. Event ids are derived
from the trigger, so a redelivered trigger cannot store a decision twice.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore.errors import ConcurrencyError, EventIdReused
from ticketflow.eventstore.store import AppendRequest
from ticketflow.lifecycle import Status
from ticketflow.routing import domain
from ticketflow.routing.domain import Decision, Rejected
from ticketflow.routing.metrics import RoutingMetrics
from ticketflow.routing.state import AGENT_EVENT_TYPES, TICKET_EVENT_TYPES, RoutingState, StreamGap

log = logging.getLogger("ticketflow.routing")
# Events after which a queue may have room for a waiting ticket.
FREES_CAPACITY = (
    e.TicketUnassigned,
    e.TicketResolved,
    e.TicketClosed,
    e.TicketMerged,
    e.TicketReferred,
    e.DuplicateSuspected,
)
MAX_REPAIR_ROUNDS = 5


class AppendResult(Protocol):
    @property
    def already_stored(self) -> bool: ...


class TicketStreams(Protocol):
    """What routing needs of `ticketflow.eventstore.EventStore` (an in-memory one for tests)."""

    async def append_many(self, requests: Sequence[AppendRequest]) -> Sequence[AppendResult]: ...

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult: ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]: ...


def epoch(t: datetime) -> int:
    return int(t.timestamp())


class RoutingService:
    def __init__(
        self,
        state: RoutingState,
        streams: TicketStreams,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: RoutingMetrics | None = None,
    ) -> None:
        self.state = state
        self.streams = streams
        self.clock = clock
        self.metrics = metrics or RoutingMetrics()
        # Decisions not yet stored, in order: a segment holds each ticket once, so it is one append_many;
        # a ticket decided again after others starts a new segment (the log keeps the decision order,
        # which round-robin cursors are rebuilt from).
        self._segments: list[dict[uuid.UUID, tuple[int, list[NewEvent]]]] = []
        self._last_decided: uuid.UUID | None = None
        self._gaps: set[uuid.UUID] = set()
        self._lock = asyncio.Lock()  # one trigger at a time: a decision must see every earlier one

    # --- triggers ---------------------------------------------------------------------------------

    async def on_event(self, envelope: EventEnvelope) -> None:
        await self.on_events([envelope])

    async def on_events(self, envelopes: Iterable[EventEnvelope]) -> None:
        """A batch of records from ticket.events / agent.events; stored when this returns."""
        async with self._lock:
            for envelope in envelopes:
                self._on_event(envelope)
            await self._flush()

    async def on_command(self, envelope: CommandEnvelope) -> str | None:
        """Apply a manual override. Returns the rejection reason (for the dead-letter topic) or None."""
        async with self._lock:
            return await self._on_command(envelope)

    async def tick(self) -> int:
        """Reassign every unanswered assignment whose time is up, route what is still undecided, fill
        queues (shifts begin). Returns how many tickets were reassigned."""
        async with self._lock:
            return await self._tick()

    async def _on_command(self, envelope: CommandEnvelope) -> str | None:
        ticket_id = envelope.command.ticket_id
        if ticket_id not in self.state.tickets:
            await self._reload(ticket_id)  # opened before we saw it, or never
        try:
            decision = self._decide(lambda now: domain.decide_command(self.state, envelope, now), envelope.command_id)
        except Rejected as rejected:
            self.metrics.rejected_commands.add(1)
            return str(rejected)
        if decision is not None:
            self._drain(self._queues_touched(ticket_id, None), envelope.command_id)
        await self._flush()
        return None

    async def _tick(self) -> int:
        count = 0
        while (decision := self._decide(lambda now: domain.decide_reassignment(self.state, now), None)) is not None:
            count += 1
            self.metrics.reassigned.add(1)
            log.info("reassigned %s: %s", decision.ticket_id, decision.why)
        self.route_undecided()
        self._drain(sorted(self.state.desks.queues), None)
        await self._flush()
        return count

    def route_undecided(self) -> None:
        """Tickets that passed preflight but have no routing decision (e.g. read at start-up)."""
        for ticket_id in [t for t, r in self.state.tickets.items() if r.state.status is Status.READY]:
            self._decide(functools.partial(domain.decide_ready, self.state, ticket_id), None)

    # --- deciding -------------------------------------------------------------------------------

    def _on_event(self, envelope: EventEnvelope) -> None:
        event = envelope.event
        if isinstance(event, AGENT_EVENT_TYPES):
            if self.state.apply_agent(event, envelope.stream_version):
                self._drain(sorted(self.state.roster.agents[event.agent_id].queues), envelope.event_id)
            return
        if not isinstance(event, TICKET_EVENT_TYPES):
            return  # SLA and notification events say nothing routing needs
        ticket_id = event.ticket_id
        before = self.state.tickets.get(ticket_id)
        old_assignee = before.state.assignee if before is not None else None
        try:
            cause = envelope.metadata.causation_id
            if not self.state.apply_ticket(event, envelope.stream_version, epoch(envelope.occurred_at), cause=cause):
                return
        except StreamGap:
            self._gaps.add(ticket_id)  # events missing: flush reloads the stream, then decides
            return
        if isinstance(event, e.PreflightPassed):
            self._decide(functools.partial(domain.decide_ready, self.state, ticket_id), envelope.event_id)
        elif isinstance(event, FREES_CAPACITY):
            self._drain(self._queues_touched(ticket_id, old_assignee), envelope.event_id)

    def _queues_touched(self, ticket_id: uuid.UUID, old_assignee: str | None) -> list[str]:
        record = self.state.tickets.get(ticket_id)
        queues = {record.state.queue_id} if record is not None and record.state.queue_id else set()
        if old_assignee is not None and old_assignee in self.state.roster.agents:
            queues |= self.state.roster.agents[old_assignee].queues
        return sorted(q for q in queues if q is not None)

    def _drain(self, queue_ids: Sequence[str], cause: uuid.UUID | None) -> None:
        for queue_id in queue_ids:
            decide = functools.partial(domain.decide_backlog, self.state, queue_id)
            while self._decide(decide, cause) is not None:
                pass

    def _decide(self, decide: Callable[[int], Decision | None], cause: uuid.UUID | None) -> Decision | None:
        """Decide now, apply at once, and buffer the events for `flush`."""
        now = self.clock()
        decision = decide(epoch(now))
        if decision is None or not decision.events:
            return None
        metadata = EventMetadata(causation_id=cause)
        new = [NewEvent(self._event_id(decision, cause, i), ev, now, metadata) for i, ev in enumerate(decision.events)]
        ticket_id = decision.ticket_id
        if not self._segments or (ticket_id in self._segments[-1] and ticket_id != self._last_decided):
            self._segments.append({})
        segment = self._segments[-1]
        expected, buffered = segment.get(ticket_id, (decision.expected_version, []))
        segment[ticket_id] = (expected, [*buffered, *new])
        self._last_decided = ticket_id
        for offset, event in enumerate(decision.events, start=1):
            self.state.apply_ticket(event, decision.expected_version + offset, epoch(now), cause=cause)
        self._count(decision)
        return decision

    @staticmethod
    def _event_id(decision: Decision, cause: uuid.UUID | None, index: int) -> uuid.UUID:
        """The same trigger, ticket version and position always give the same id (a tick has no
        trigger: ticket and version alone). blake2b over raw bytes: uuid5 over strings cost a third
        of a decision."""
        seed = b"routing" + (cause.bytes if cause is not None else b"tick") + decision.ticket_id.bytes
        seed += decision.expected_version.to_bytes(8, "big") + index.to_bytes(4, "big")
        return uuid.UUID(bytes=hashlib.blake2b(seed, digest_size=16).digest())

    # --- storing ----------------------------------------------------------------------------------

    async def _flush(self) -> None:
        try:
            await self._flush_rounds()
        except BaseException:
            # The store is unreachable: what was decided but not stored must not stay in memory.
            # Forget those tickets; the unacknowledged trigger comes again and they are refolded.
            for segment in self._segments:
                for ticket_id in segment:
                    self.state.forget(ticket_id)
                    self._gaps.add(ticket_id)
            self._segments, self._last_decided = [], None
            raise

    async def _flush_rounds(self) -> None:
        for _ in range(MAX_REPAIR_ROUNDS):
            for ticket_id in sorted(self._gaps, key=str):
                await self._reload(ticket_id)
                self._after_reload(ticket_id)
                self._gaps.discard(ticket_id)
            if not self._segments:
                return
            segments, self._segments, self._last_decided = self._segments, [], None
            failed: set[uuid.UUID] = set()
            try:
                for segment in segments:
                    # A ticket whose earlier decision failed: its later ones were made on that decision.
                    pending = {t: v for t, v in segment.items() if t not in failed}
                    for ticket_id in await self._store(pending):
                        # Refold from the store, then decide again (the next round stores it).
                        self.state.forget(ticket_id)
                        self._gaps.add(ticket_id)
                        failed.add(ticket_id)
                    segments = segments[1:]
            finally:
                self._segments = segments + self._segments  # not stored yet (an outage): see _flush
        raise RuntimeError(f"routing decisions still conflicting after {MAX_REPAIR_ROUNDS} rounds")

    async def _store(self, pending: dict[uuid.UUID, tuple[int, list[NewEvent]]]) -> set[uuid.UUID]:
        """Append one segment; returns the tickets whose decision is not stored as decided."""
        if not pending:
            return set()
        requests = [AppendRequest(ticket_stream(t), v, evs) for t, (v, evs) in pending.items()]
        try:
            results = await self.streams.append_many(requests)
        except (ConcurrencyError, EventIdReused):
            return set(await self._one_by_one(pending))
        return {t for t, r in zip(pending, results, strict=True) if r.already_stored}

    async def _one_by_one(self, pending: dict[uuid.UUID, tuple[int, list[NewEvent]]]) -> list[uuid.UUID]:
        failed = []
        for ticket_id, (version, events) in pending.items():
            try:
                result = await self.streams.append(ticket_stream(ticket_id), version, events)
            except ConcurrencyError as conflict:
                log.info("ticket %s changed while routing decided (%s); deciding again", ticket_id, conflict)
                failed.append(ticket_id)
            else:
                if result.already_stored:
                    failed.append(ticket_id)
        return failed

    async def _reload(self, ticket_id: uuid.UUID) -> None:
        have = self.state.version_of(ticket_id)
        for stored in await self.streams.read_stream(ticket_stream(ticket_id), have + 1):
            self.state.apply_ticket(
                stored.event,  # type: ignore[arg-type]
                stored.stream_version,
                epoch(stored.occurred_at),
                cause=stored.metadata.causation_id,
                track_cursor=False,
            )

    def _after_reload(self, ticket_id: uuid.UUID) -> None:
        record = self.state.tickets.get(ticket_id)
        if record is not None and record.state.status is Status.READY:
            self._decide(functools.partial(domain.decide_ready, self.state, ticket_id), None)
        self._drain(self._queues_touched(ticket_id, None), None)

    def _count(self, decision: Decision) -> None:
        for event in decision.events:
            if isinstance(event, e.TicketRouted):
                self.metrics.routed.add(1, {"queue": event.queue_id, "rule": event.rule_id})
                if decision.fell_back:
                    self.metrics.unmatched.add(1)
                    log.warning("no routing rule matched ticket %s: %s", decision.ticket_id, event.reason)
            elif isinstance(event, e.TicketAssigned):
                self.metrics.assigned.add(1, {"strategy": event.strategy})
