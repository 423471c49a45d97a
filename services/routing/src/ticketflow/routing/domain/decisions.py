"""Routing decisions: pure functions of (routing state, trigger, time) -> ticket events.

Each decision goes through the ticket lifecycle decider (`ticketflow.lifecycle.decide`), so routing
can never produce a transition the lifecycle forbids. A decision returns the events and the stream
version they must be appended at; the caller appends them, then applies them to the state. Nothing
here reads a clock, a database or a broker.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import msgspec

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.lifecycle import IllegalTransition, Status, TicketState, decide, fold
from ticketflow.routing.domain.config import QueueConfig
from ticketflow.routing.domain.reassignment import no_answer_reason
from ticketflow.routing.domain.rules import RouteDecision, TicketFacts, route
from ticketflow.routing.domain.state import BacklogKey, RoutingState, TicketRecord
from ticketflow.routing.domain.strategies import Pick, pick

BACKLOG_LOOKAHEAD = 32  # waiting tickets tried per drain step before giving up on a queue
MANUAL_RULE_ID = "manual"


class Decision(NamedTuple):
    ticket_id: uuid.UUID
    expected_version: int
    events: list[TicketEvent]
    why: str
    fell_back: bool = False


class Rejected(Exception):
    """A command routing refuses; the message is the reason sent to the dead-letter topic."""


def facts_of(state: RoutingState, record: TicketRecord) -> TicketFacts:
    ticket = record.state
    return TicketFacts(
        desk=ticket.desk_id,
        track=ticket.track_id,
        category=ticket.category or "",
        language=record.language,
        contract_tier=record.contract_tier,
        priority=ticket.priority,
    )


def _pick(
    state: RoutingState, record: TicketRecord, queue: QueueConfig, now_ts: int, also_exclude: str = ""
) -> Pick | None:
    exclude = record.passed_over | {also_exclude} if also_exclude else record.passed_over
    return pick(
        queue,
        state.roster.queue_members(queue.id),
        now_ts=now_ts,
        cursor=state.cursors.get(queue.id),
        skills=record.skills,
        language=record.language,
        exclude=exclude,
    )


def _assign(ticket: TicketState, chosen: Pick | None, actor: str = "routing") -> list[TicketEvent]:
    if chosen is None or ticket.ticket_id is None:
        return []
    return decide(c.AssignTicket(ticket.ticket_id, chosen.agent_id, chosen.strategy, actor), ticket)


def _route_then_assign(
    state: RoutingState, record: TicketRecord, command: c.RouteTicket, now_ts: int
) -> tuple[list[TicketEvent], str]:
    routed = decide(command, record.state)
    queue = state.desks.queues[command.queue_id]
    if not routed:
        return [], f"already in queue {queue.id}"
    # Pick as if the ticket were already in its new queue (skills from the matched rule).
    skills = state.desks.skills_for(command.rule_id, command.queue_id)
    probe = TicketRecord(fold(routed, record.state), record.language, record.contract_tier, skills)
    probe.passed_over = record.passed_over
    chosen = _pick(state, probe, queue, now_ts)
    why = f"{command.reason}; " + (f"{chosen.agent_id}: {chosen.why}" if chosen else "nobody available: waits")
    return [*routed, *_assign(probe.state, chosen)], why


def decide_ready(state: RoutingState, ticket_id: uuid.UUID, now_ts: int) -> Decision | None:
    """A ticket that passed preflight: match the rules, route it, assign it if someone may take it."""
    record = state.tickets.get(ticket_id)
    if record is None or record.state.status is not Status.READY:
        return None  # unknown here, or routed already (a redelivered PreflightPassed)
    decision: RouteDecision = route(state.desks, facts_of(state, record))
    command = c.RouteTicket(
        ticket_id, decision.queue.id, decision.tier, decision.priority, decision.rule_id, decision.reason
    )
    events, why = _route_then_assign(state, record, command, now_ts)
    overflow = state.desks.queues.get(decision.queue.overflow or "")
    if overflow is not None and not any(isinstance(x, e.TicketAssigned) for x in events):
        # Nobody in the matched queue may take it now: the overflow queue, if someone there can.
        reason = f"{decision.reason}; overflow: nobody available in {decision.queue.id}"
        moved = msgspec.structs.replace(command, queue_id=overflow.id, tier=overflow.tier, reason=reason)
        overflowed, overflow_why = _route_then_assign(state, record, moved, now_ts)
        if any(isinstance(x, e.TicketAssigned) for x in overflowed):
            events, why = overflowed, overflow_why
    return Decision(ticket_id, record.state.version, events, why, decision.fell_back)


def decide_backlog(state: RoutingState, queue_id: str, now_ts: int) -> Decision | None:
    """The next waiting ticket of the queue someone may take now, assigned; None when none."""
    queue = state.desks.queues.get(queue_id)
    heap = state.backlogs.get(queue_id)
    if queue is None or queue.strategy == "none" or not heap or state.next_waiting(queue_id) is None:
        return None
    if not any(a.available(now_ts) for a in state.roster.queue_members(queue_id)):
        return None  # the common case of a full queue: no need to look through a long backlog

    def in_order() -> Iterator[tuple[BacklogKey, uuid.UUID]]:
        head = state.next_waiting(queue_id)  # usually the one: the O(backlog) scan only if not
        if head is not None:
            yield state.waiting[head][1], head
        yield from heapq.nsmallest(BACKLOG_LOOKAHEAD, heap)

    for key, ticket_id in in_order():
        if state.waiting.get(ticket_id) != (queue_id, key):
            continue
        record = state.tickets[ticket_id]
        chosen = _pick(state, record, queue, now_ts)
        if chosen is not None:
            events = _assign(record.state, chosen)
            return Decision(ticket_id, record.state.version, events, f"from backlog: {chosen.why}")
    return None


def decide_reassignment(state: RoutingState, now_ts: int) -> Decision | None:
    """The first assignment whose reply deadline passed without an answer: take it away (telling the
    agent and the queue lead through `TicketUnassigned`) and give it to someone else if possible."""
    due = [t for t, deadline in state.reply_due.items() if deadline <= now_ts]
    if not due:
        return None
    ticket_id = min(due, key=lambda t: (state.reply_due[t], str(t)))
    record = state.tickets[ticket_id]
    ticket = record.state
    queue = state.desks.queues[ticket.queue_id or ""]
    old = ticket.assignee or ""
    unassigned = [
        msgspec.structs.replace(event, lead_id=queue.lead_id) if isinstance(event, e.TicketUnassigned) else event
        for event in decide(c.UnassignTicket(ticket_id, no_answer_reason(queue)), ticket)
    ]
    probe = TicketRecord(fold(unassigned, ticket), record.language, record.contract_tier, record.skills)
    probe.passed_over = record.passed_over
    chosen = _pick(state, probe, queue, now_ts, also_exclude=old)
    why = f"{old}: {no_answer_reason(queue)}; " + (f"to {chosen.agent_id}" if chosen else "nobody else available")
    return Decision(ticket_id, ticket.version, [*unassigned, *_assign(probe.state, chosen)], why)


ROUTING_COMMANDS = (c.AssignTicket, c.UnassignTicket, c.RouteTicket, c.ChangePriority)


def decide_command(state: RoutingState, envelope: CommandEnvelope, now_ts: int) -> Decision | None:
    """A manual override. None: not a routing command (another consumer's). Raises `Rejected`."""
    command = envelope.command
    if not isinstance(command, ROUTING_COMMANDS):
        return None
    if command.ticket_id in state.ended:
        raise Rejected(f"ticket {command.ticket_id} is {state.ended[command.ticket_id].value}")
    record = state.tickets.get(command.ticket_id)
    if record is None or record.state.status is Status.NEW:
        raise Rejected(f"unknown ticket {command.ticket_id}")
    ticket, actor = record.state, envelope.actor
    if envelope.command_id in record.causes:
        return Decision(command.ticket_id, ticket.version, [], "done already (redelivered command)")
    try:
        match command:
            case c.AssignTicket():
                agent = state.roster.agents.get(command.agent_id)
                if agent is None:
                    raise Rejected(f"unknown agent {command.agent_id}")
                busy = agent.why_unavailable(now_ts)
                if busy is not None and ticket.assignee != agent.agent_id:
                    raise Rejected(busy)
                events = decide(c.AssignTicket(command.ticket_id, agent.agent_id, "manual", actor), ticket)
                why = f"assigned by {actor}"
            case c.UnassignTicket():
                events = decide(msgspec.structs.replace(command, actor=actor), ticket)
                why = f"unassigned by {actor}: {command.reason}"
            case c.RouteTicket():
                if command.queue_id not in state.desks.queues:
                    raise Rejected(f"unknown queue {command.queue_id}")
                queue = state.desks.queues[command.queue_id]
                moved = msgspec.structs.replace(
                    command,
                    tier=command.tier or queue.tier,
                    rule_id=command.rule_id or MANUAL_RULE_ID,
                    reason=command.reason or f"moved to {queue.id} by {actor}",
                    actor=actor,
                )
                events, why = _route_then_assign(state, record, moved, now_ts)
            case c.ChangePriority():
                events = decide(msgspec.structs.replace(command, actor=actor), ticket)
                why = f"priority {ticket.priority} -> {command.priority} by {actor}"
    except IllegalTransition as error:
        raise Rejected(str(error)) from error
    return Decision(command.ticket_id, ticket.version, events, why)
