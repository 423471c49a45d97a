"""The application service: ticket and agent events, commands and the clock in, decisions appended to
ticket streams. The one place that loads (a ticket's stream when routing lacks it), decides (the pure
functions of `domain.decisions`) and appends.

Routing keeps its whole state in memory (`RoutingState`, folded from the log by the leader before a
term begins; see leader.py) because its decisions are serial and global (loads, round-robin turns), so
it does not use `ticketflow.eventstore.commands.execute` (load one stream, decide, append) per trigger.

Decisions are made and applied to the in-memory state at once (synchronously, so no other trigger
can see a half-made decision), and their events are buffered per stream. `flush` stores the
buffer segment by segment, each as a few `append_many` transactions at once, split by queue (see
adapters/batched_store.py). If one fails on a concurrent append, its streams are appended one by one,
and every ticket whose decision could not be stored is forgotten, refolded from its stream and decided
again. The caller commits its Kafka offsets only after `flush`, so a crash loses nothing (a restart
rebuilds the state from the store and decides what is still undecided).

Our own events come back from Kafka later and are skipped by stream version. Event ids are derived
from the trigger, so a redelivered trigger cannot store a decision twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent
from ticketflow.contracts.ids import ticket_stream
from ticketflow.lifecycle import Status
from ticketflow.messaging import tracing
from ticketflow.routing.adapters.batched_store import PendingDecisions, TicketStreams, store_segment
from ticketflow.routing.domain import decisions
from ticketflow.routing.domain.decisions import Decision, Rejected
from ticketflow.routing.domain.state import AGENT_EVENT_TYPES, TICKET_EVENT_TYPES, RoutingState, StreamGap
from ticketflow.routing.metrics import RoutingMetrics

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
# Transactions one flush may have in flight (a segment split by queue; see adapters/batched_store.py).
STORE_PARALLEL = 4


def epoch(t: datetime) -> int:
    return int(t.timestamp())


class Routing:
    def __init__(
        self,
        state: RoutingState,
        streams: TicketStreams,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: RoutingMetrics | None = None,
        store_parallel: int = STORE_PARALLEL,
    ) -> None:
        self.state = state
        self.streams = streams
        self.clock = clock
        self.store_parallel = store_parallel
        self._now: datetime | None = None  # while a batch is decided: its one time
        self.metrics = metrics or RoutingMetrics()
        self._traceparent: str | None = None  # of the event or command being decided on
        self.pending = PendingDecisions()
        self._gaps: set[uuid.UUID] = set()  # tickets to refold from the store before the next store
        self._chain: asyncio.Task[None] | None = None  # the latest flush; flushes run one at a time

    # --- triggers ---------------------------------------------------------------------------------

    async def on_events(self, envelopes: Iterable[EventEnvelope]) -> None:
        """A batch of records from ticket.events / agent.events; stored when this returns."""
        self.decide_events(envelopes)
        await self.flush()

    def decide_events(self, envelopes: Iterable[EventEnvelope]) -> None:
        """Apply and decide (synchronously: no other trigger sees a half-made decision); `flush` stores.
        The batch is decided at one time (read once: a clock read per decision cost a tenth of it)."""
        self._now = self.clock()
        try:
            for envelope in envelopes:
                self._on_event(envelope)
        finally:
            self._now = None

    async def on_command(self, envelope: CommandEnvelope) -> None:
        """Apply a manual override; stored when this returns. Raises `Rejected` (with the reason, for the
        dead-letter topic) when routing refuses it."""
        ticket_id = envelope.command.ticket_id
        if ticket_id not in self.state.tickets and ticket_id not in self.state.ended:
            await self._reload(ticket_id)  # opened before we saw it, or never
        self._traceparent = tracing.current()[0] or envelope.traceparent  # the command's consumer span
        try:
            decision = self._decide(
                lambda now: decisions.decide_command(self.state, envelope, now), envelope.command_id
            )
            if decision is not None:
                self._drain(self._queues_touched(ticket_id, None), envelope.command_id)
        except Rejected:
            self.metrics.inc("ticketflow_routing_rejected_commands")
            raise
        finally:
            self._traceparent = None
        await self.flush()

    async def tick(self) -> int:
        """Reassign every unanswered assignment whose time is up, route what is still undecided, fill
        queues (shifts begin). Returns how many tickets were reassigned."""
        count = 0
        while (decision := self._decide(lambda now: decisions.decide_reassignment(self.state, now), None)) is not None:
            count += 1
            self.metrics.inc("ticketflow_routing_reassigned")
            log.info("reassigned %s: %s", decision.ticket_id, decision.why)
        self.route_undecided()
        self._drain(sorted(self.state.desks.queues), None)
        await self.flush()
        return count

    def route_undecided(self) -> None:
        """Tickets that passed preflight but have no routing decision (e.g. read at start-up)."""
        for ticket_id in [t for t, r in self.state.tickets.items() if r.state.status is Status.READY]:
            self._decide(functools.partial(decisions.decide_ready, self.state, ticket_id), None)

    # --- deciding -------------------------------------------------------------------------------

    def _on_event(self, envelope: EventEnvelope) -> None:
        self._traceparent = envelope.metadata.traceparent  # what this event causes continues its trace
        try:
            self._on_event_traced(envelope)
        finally:
            self._traceparent = None

    def _on_event_traced(self, envelope: EventEnvelope) -> None:
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
            self._decide(functools.partial(decisions.decide_ready, self.state, ticket_id), envelope.event_id)
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
            decide = functools.partial(decisions.decide_backlog, self.state, queue_id)
            while self._decide(decide, cause) is not None:
                pass

    def _decide(self, decide: Callable[[int], Decision | None], cause: uuid.UUID | None) -> Decision | None:
        """Decide now, apply at once, and buffer the events for `flush`."""
        now = self._now or self.clock()
        decision = decide(epoch(now))
        if decision is None or not decision.events:
            return None
        metadata = EventMetadata(causation_id=cause, traceparent=self._traceparent)
        new = [NewEvent(self._event_id(decision, cause, i), ev, now, metadata) for i, ev in enumerate(decision.events)]
        for offset, event in enumerate(decision.events, start=1):
            self.state.apply_ticket(event, decision.expected_version + offset, epoch(now), cause=cause)
        record = self.state.tickets.get(decision.ticket_id)
        queue = record.state.queue_id if record is not None else None
        self.pending.add(decision.ticket_id, decision.expected_version, new, queue)
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

    async def flush(self) -> None:
        await self.flush_later()

    def flush_later(self) -> asyncio.Task[None]:
        """Store everything decided so far, after every earlier flush has finished (in call order)."""
        previous = self._chain

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # its own caller handles its failure
                    await previous
            await self._flush()

        self._chain = asyncio.create_task(run())
        return self._chain

    async def _flush(self) -> None:
        try:
            await self._flush_rounds()
        except BaseException:
            # The store is unreachable: what was decided but not stored must not stay in memory.
            # Forget those tickets; the unacknowledged trigger comes again and they are refolded.
            for ticket_id in self.pending.tickets():
                self._refold_later(ticket_id)
            raise

    async def _flush_rounds(self) -> None:
        for _ in range(MAX_REPAIR_ROUNDS):
            for ticket_id in sorted(self._gaps, key=str):
                await self._reload(ticket_id)
                self._gaps.discard(ticket_id)
                self._after_reload(ticket_id)
            segments = self.pending.take()
            if not segments:
                return
            try:
                while segments:
                    for ticket_id in await store_segment(self.streams, segments[0], self.store_parallel):
                        self._refold_later(ticket_id)
                        for later in segments[1:]:  # decided on the state that was not stored
                            later.pop(ticket_id, None)
                    segments.pop(0)
            finally:
                self.pending.put_back(segments)  # not stored (an outage): see _flush
        raise RuntimeError(f"routing decisions still conflicting after {MAX_REPAIR_ROUNDS} rounds")

    def _refold_later(self, ticket_id: uuid.UUID) -> None:
        self.state.forget(ticket_id)
        self.pending.drop(ticket_id)
        self._gaps.add(ticket_id)

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
            self._decide(functools.partial(decisions.decide_ready, self.state, ticket_id), None)
        self._drain(self._queues_touched(ticket_id, None), None)

    def _count(self, decision: Decision) -> None:
        for event in decision.events:
            if isinstance(event, e.TicketRouted):
                self.metrics.inc("ticketflow_routing_routed", event.queue_id, event.rule_id)
                if decision.fell_back:
                    self.metrics.inc("ticketflow_routing_unmatched")
                    log.warning("no routing rule matched ticket %s: %s", decision.ticket_id, event.reason)
            elif isinstance(event, e.TicketAssigned):
                self.metrics.inc("ticketflow_routing_assigned", event.strategy)
