"""The routing service layer: events and commands in, decisions appended to ticket streams.

Order of work for every trigger: apply what happened, decide, append the decision's events to the
ticket's stream with its expected version, and only then apply them to the in-memory state (so a
failed append leaves no trace). The echo of our own events arriving later from Kafka is ignored by
stream version. Event ids are derived from the trigger, so a redelivered trigger appends nothing new.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent
from ticketflow.contracts.ids import deterministic_event_id, ticket_stream
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.eventstore.errors import ConcurrencyError
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
MAX_ATTEMPTS = 3


class AppendResult(Protocol):
    @property
    def stream_version(self) -> int: ...
    @property
    def already_stored(self) -> bool: ...


class TicketStreams(Protocol):
    """What routing needs of `ticketflow.eventstore.EventStore` (an in-memory one for tests)."""

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

    # --- triggers ---------------------------------------------------------------------------------

    async def on_event(self, envelope: EventEnvelope) -> None:
        event = envelope.event
        if isinstance(event, AGENT_EVENT_TYPES):
            if self.state.apply_agent(event, envelope.stream_version):  # type: ignore[arg-type]
                agent = self.state.roster.agents[event.agent_id]  # type: ignore[union-attr]
                await self._drain(sorted(agent.queues), envelope.event_id)
            return
        if not isinstance(event, TICKET_EVENT_TYPES):
            return  # SLA and notification events say nothing routing needs
        ticket_event: TicketEvent = event  # type: ignore[assignment]
        before = self.state.tickets.get(ticket_event.ticket_id)
        old_assignee = before.state.assignee if before is not None else None
        if not await self._apply(envelope):
            return
        if isinstance(ticket_event, e.PreflightPassed):
            await self._decide(
                lambda now: domain.decide_ready(self.state, ticket_event.ticket_id, now), envelope.event_id
            )
        elif isinstance(ticket_event, FREES_CAPACITY):
            await self._drain(self._queues_touched(ticket_event.ticket_id, old_assignee), envelope.event_id)

    async def on_command(self, envelope: CommandEnvelope) -> str | None:
        """Apply a manual override. Returns the rejection reason (for the dead-letter topic) or None."""
        ticket_id = envelope.command.ticket_id
        if ticket_id not in self.state.tickets:
            await self._reload(ticket_id)  # opened before we saw it, or never
        try:
            decision = await self._decide(
                lambda now: domain.decide_command(self.state, envelope, now), envelope.command_id
            )
        except Rejected as rejected:
            self.metrics.rejected_commands.add(1)
            return str(rejected)
        if decision is not None:
            await self._drain(self._queues_touched(ticket_id, None), envelope.command_id)
        return None

    async def tick(self) -> int:
        """Reassign every unanswered assignment whose time is up, then fill queues (shifts begin).
        Returns how many tickets were reassigned."""
        count = 0
        while (
            decision := await self._decide(lambda now: domain.decide_reassignment(self.state, now), None)
        ) is not None:
            count += 1
            self.metrics.reassigned.add(1)
            log.info("reassigned %s: %s", decision.ticket_id, decision.why)
        await self._drain(sorted(self.state.desks.queues), None)
        return count

    # --- helpers ----------------------------------------------------------------------------------

    def _queues_touched(self, ticket_id: uuid.UUID, old_assignee: str | None) -> list[str]:
        record = self.state.tickets.get(ticket_id)
        queues = {record.state.queue_id} if record is not None and record.state.queue_id else set()
        if old_assignee is not None and old_assignee in self.state.roster.agents:
            queues |= self.state.roster.agents[old_assignee].queues
        return sorted(q for q in queues if q is not None)

    async def _drain(self, queue_ids: Sequence[str], cause: uuid.UUID | None) -> None:
        for queue_id in queue_ids:
            decide = functools.partial(domain.decide_backlog, self.state, queue_id)
            while await self._decide(decide, cause) is not None:
                pass

    async def _apply(self, envelope: EventEnvelope) -> bool:
        event: TicketEvent = envelope.event  # type: ignore[assignment]
        try:
            return self.state.apply_ticket(event, envelope.stream_version, epoch(envelope.occurred_at))
        except StreamGap:
            await self._reload(event.ticket_id)
            return True

    async def _reload(self, ticket_id: uuid.UUID) -> None:
        have = self.state.version_of(ticket_id)
        for stored in await self.streams.read_stream(ticket_stream(ticket_id), have + 1):
            self.state.apply_ticket(stored.event, stored.stream_version, epoch(stored.occurred_at))  # type: ignore[arg-type]

    async def _decide(self, decide: Callable[[int], Decision | None], cause: uuid.UUID | None) -> Decision | None:
        """Decide, append, apply; on a concurrent append reload the stream and decide again."""
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            decision = decide(epoch(now))
            if decision is None or not decision.events:
                return None
            try:
                await self._append(decision, now, cause)
            except ConcurrencyError:
                await self._reload(decision.ticket_id)
                continue
            self._count(decision)
            return decision
        raise RuntimeError(f"gave up after {MAX_ATTEMPTS} concurrent appends")

    async def _append(self, decision: Decision, now: datetime, cause: uuid.UUID | None) -> None:
        version = decision.expected_version
        metadata = EventMetadata(causation_id=cause)
        new = [
            NewEvent(self._event_id(decision, cause, i), event, now, metadata)
            for i, event in enumerate(decision.events)
        ]
        stream = ticket_stream(decision.ticket_id)
        result = await self.streams.append(stream, version, new)
        if result.already_stored:
            await self._reload(decision.ticket_id)  # a redelivered trigger: the events are there
            return
        for offset, item in enumerate(new, start=1):
            self.state.apply_ticket(item.event, version + offset, epoch(now))  # type: ignore[arg-type]

    @staticmethod
    def _event_id(decision: Decision, cause: uuid.UUID | None, index: int) -> uuid.UUID:
        if cause is None:  # a clock tick: unique per ticket version
            return deterministic_event_id("routing", decision.ticket_id, decision.expected_version, index)
        return deterministic_event_id("routing", cause, decision.ticket_id, index)

    def _count(self, decision: Decision) -> None:
        for event in decision.events:
            if isinstance(event, e.TicketRouted):
                self.metrics.routed.add(1, {"queue": event.queue_id, "rule": event.rule_id})
                if decision.fell_back:
                    self.metrics.unmatched.add(1)
                    log.warning("no routing rule matched ticket %s: %s", decision.ticket_id, event.reason)
            elif isinstance(event, e.TicketAssigned):
                self.metrics.assigned.add(1, {"strategy": event.strategy})


__all__ = ["RoutingService", "TicketStreams"]
