"""Routing's view of the world, rebuilt from events alone: tickets, roster, loads, cursors, backlogs.

Nothing here is read from a clock or a database: `apply_*` takes an event with its stream version
and time, so folding the same stored events always gives the same state (and the same next
decision). Mutable for speed (a benchmark routes thousands of tickets a second); decisions in
domain.py only read it.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import get_args

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.lifecycle import Status, TicketState, evolve
from ticketflow.lifecycle.state import TERMINAL, WITH_ASSIGNEE
from ticketflow.routing.domain.config import Desks
from ticketflow.routing.domain.reassignment import reply_deadline
from ticketflow.routing.domain.roster import Roster

AGENT_EVENT_TYPES: tuple[type[AgentEvent], ...] = get_args(AgentEvent)
TICKET_EVENT_TYPES: tuple[type[TicketEvent], ...] = get_args(TicketEvent)
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
BacklogKey = tuple[int, int, int]  # (priority rank, routed at, routed sequence): oldest most urgent first


@dataclass(slots=True)
class TicketRecord:
    state: TicketState
    language: str = "ru"
    contract_tier: str = "none"
    skills: tuple[str, ...] = ()
    routed_ts: int = 0
    routed_seq: int = 0  # order among routed tickets (the log's order), for ties within a second
    passed_over: set[str] = field(default_factory=set)  # agents unassigned from it: not auto-picked again
    causes: set[uuid.UUID] = field(default_factory=set)  # causation ids of its events: commands done


def language_of(locale: str) -> str:
    return locale.replace("_", "-").split("-", 1)[0].lower() or "ru"


class RoutingState:
    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        self.tickets: dict[uuid.UUID, TicketRecord] = {}
        self.ended: dict[uuid.UUID, Status] = {}  # closed, merged or refused: only the fact is kept
        self.roster = Roster()
        self.cursors: dict[str, str] = {}  # queue -> last agent round-robin gave a ticket
        self.backlogs: dict[str, list[tuple[BacklogKey, uuid.UUID]]] = {}
        self.waiting: dict[uuid.UUID, tuple[str, BacklogKey]] = {}  # ticket -> (queue, key) in a backlog
        self.routed_count = 0
        self.reply_due: dict[uuid.UUID, int] = {}  # ticket -> epoch second its assignee must have answered by

    # --- applying events ------------------------------------------------------------------------

    def version_of(self, ticket_id: uuid.UUID) -> int:
        record = self.tickets.get(ticket_id)
        return 0 if record is None else record.state.version

    def apply_agent(self, event: AgentEvent, stream_version: int | None = None) -> bool:
        """Apply unless already applied (stream versions arrive again on redelivery)."""
        if stream_version is not None:
            if stream_version <= self.roster.versions.get(event.agent_id, 0):
                return False
            self.roster.versions[event.agent_id] = stream_version
        self.roster.apply(event)
        return True

    def apply_ticket(
        self,
        event: TicketEvent,
        stream_version: int,
        occurred_ts: int,
        *,
        cause: uuid.UUID | None = None,
        track_cursor: bool = True,
    ) -> bool:
        """Apply the event if it is the ticket's next one; False when already applied.
        Raises `StreamGap` when events are missing in between (the caller reloads the stream)."""
        ticket_id = event.ticket_id
        if ticket_id in self.ended:
            return False
        record = self.tickets.get(ticket_id)
        current = 0 if record is None else record.state.version
        if stream_version <= current:
            return False
        if stream_version != current + 1:
            raise StreamGap(ticket_id, current, stream_version)
        if record is None:
            record = self.tickets[ticket_id] = TicketRecord(TicketState())
        before = record.state
        record.state = after = evolve(before, event)
        if cause is not None:
            record.causes.add(cause)
        self._facts(record, event, occurred_ts, track_cursor)
        self._reconcile(ticket_id, record, before, after, occurred_ts)
        # Nothing can happen to a finished ticket any more: free the memory. An automatic merge is kept:
        # an agent may undo it, and the ticket comes back through preflight to routing.
        if after.status in TERMINAL and not after.auto_merged:
            del self.tickets[ticket_id]
            self.ended[ticket_id] = after.status
        return True

    def _facts(self, record: TicketRecord, event: TicketEvent, occurred_ts: int, track_cursor: bool) -> None:
        match event:
            case e.TicketOpened():
                record.language = language_of(event.requester.locale)
                record.contract_tier = self.desks.contract_tier(event.desk_id, event.track_id, event.chat.tenant_id)
            case e.TicketRouted():
                record.routed_ts = occurred_ts
                self.routed_count += 1
                record.routed_seq = self.routed_count
                record.skills = self.desks.skills_for(event.rule_id, event.queue_id)
            case e.TicketAssigned():
                queue = record.state.queue_id
                if track_cursor and event.strategy == "round_robin" and queue is not None:
                    self.cursors[queue] = event.agent_id
            case e.TicketUnassigned():
                record.passed_over.add(event.agent_id)
            case e.AgentReplied() if event.agent_id == record.state.assignee:
                self.reply_due.pop(event.ticket_id, None)
            case _:
                pass

    def _reconcile(
        self, ticket_id: uuid.UUID, record: TicketRecord, before: TicketState, after: TicketState, ts: int
    ) -> None:
        """Loads, backlog and reply deadline follow from the lifecycle state before and after."""
        held_before = before.assignee is not None and before.status in WITH_ASSIGNEE
        held_after = after.assignee is not None and after.status in WITH_ASSIGNEE
        if held_before and (not held_after or before.assignee != after.assignee):
            assert before.assignee is not None
            self.roster.release(before.assignee, ticket_id)
        if held_after:
            assert after.assignee is not None
            self.roster.take(after.assignee, ticket_id, after.priority)
        if after.status is Status.ROUTED and after.assignee is None and after.queue_id is not None:
            key = (PRIORITY_RANK[after.priority], record.routed_ts, record.routed_seq)
            if self.waiting.get(ticket_id) != (after.queue_id, key):
                self.waiting[ticket_id] = (after.queue_id, key)
                heapq.heappush(self.backlogs.setdefault(after.queue_id, []), (key, ticket_id))
        else:
            self.waiting.pop(ticket_id, None)
        self._deadline(ticket_id, before, after, ts)

    def _deadline(self, ticket_id: uuid.UUID, before: TicketState, after: TicketState, ts: int) -> None:
        if after.assignee is None or after.status not in {Status.ASSIGNED, Status.IN_PROGRESS}:
            self.reply_due.pop(ticket_id, None)
        elif after.assignee != before.assignee or before.status not in WITH_ASSIGNEE:
            queue = self.desks.queues.get(after.queue_id or "")
            due = None if queue is None else reply_deadline(queue, self.desks.calendar_of(queue), ts)
            if due is None:
                self.reply_due.pop(ticket_id, None)
            else:
                self.reply_due[ticket_id] = due

    def forget(self, ticket_id: uuid.UUID) -> None:
        """Drop a ticket (its load, backlog place and deadline) before refolding it from its stream,
        after a decision about it could not be stored."""
        record = self.tickets.pop(ticket_id, None)
        if record is not None and record.state.assignee is not None:
            self.roster.release(record.state.assignee, ticket_id)
        self.waiting.pop(ticket_id, None)
        self.reply_due.pop(ticket_id, None)

    # --- queries decisions use ------------------------------------------------------------------

    def next_waiting(self, queue_id: str) -> uuid.UUID | None:
        """The oldest most urgent unassigned ticket of the queue (stale heap entries dropped)."""
        heap = self.backlogs.get(queue_id)
        while heap:
            key, ticket_id = heap[0]
            if self.waiting.get(ticket_id) == (queue_id, key):
                return ticket_id
            heapq.heappop(heap)
        return None


class StreamGap(Exception):
    def __init__(self, ticket_id: uuid.UUID, have: int, got: int) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"ticket {ticket_id}: have version {have}, got {got}: events missing in between")


def rebuild(desks: Desks, envelopes: Iterable[EventEnvelope]) -> RoutingState:
    """Routing state from stored events in log order: what a restart does before consuming."""
    state = RoutingState(desks)
    for envelope in envelopes:
        apply_envelope(state, envelope)
    return state


def apply_envelope(state: RoutingState, envelope: EventEnvelope) -> bool:
    event = envelope.event
    if isinstance(event, AGENT_EVENT_TYPES):
        return state.apply_agent(event, envelope.stream_version)
    if isinstance(event, TICKET_EVENT_TYPES):
        ts = int(envelope.occurred_at.timestamp())
        return state.apply_ticket(event, envelope.stream_version, ts, cause=envelope.metadata.causation_id)
    return False  # SLA and notification events: nothing routing needs
