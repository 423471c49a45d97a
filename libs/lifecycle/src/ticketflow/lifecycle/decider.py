"""decide / evolve for one ticket. Pure: the same (command, state) always gives the same events."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.lifecycle.state import OPEN, IllegalTransition, Status, TicketState

S = Status
PREFLIGHT = frozenset({S.OPENED, S.AWAITING_CUSTOMER})
QUEUED_OR_WORKED = frozenset({S.READY, S.ROUTED, S.ASSIGNED, S.IN_PROGRESS})
WORKABLE = frozenset({S.ROUTED, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER})


def initial_state() -> TicketState:
    return TicketState()


def _require(state: TicketState, command: object, allowed: frozenset[Status], why: str = "") -> None:
    if state.status not in allowed:
        raise IllegalTransition(state, command, why)


def _unassign_first(state: TicketState, reason: str, actor: str) -> list[TicketEvent]:
    if state.assignee is None or state.ticket_id is None:
        return []
    return [e.TicketUnassigned(state.ticket_id, state.assignee, reason, actor)]


def _suggested(state: TicketState, command: c.RecordPreflightPassed | c.RecordPreflightFailed) -> list[TicketEvent]:
    """Another requester's look-alike tickets, each suggested to the agent once."""
    t, seen = command.ticket_id, set(state.suggested_duplicates)
    events: list[TicketEvent] = []
    for candidate in command.suggested_duplicates:
        if candidate.ticket_id not in seen and candidate.ticket_id != t:
            seen.add(candidate.ticket_id)
            events.append(e.DuplicateSuggested(t, candidate.ticket_id, candidate.similarity))
    return events


def decide(command: c.TicketCommand, state: TicketState) -> list[TicketEvent]:
    t = command.ticket_id
    if state.ticket_id is not None and t != state.ticket_id:
        raise IllegalTransition(state, command, f"the command is for ticket {t}, not {state.ticket_id}")
    match command:
        case c.OpenTicket():
            _require(state, command, frozenset({S.NEW}), "the ticket exists already")
            return [
                e.TicketOpened(
                    t,
                    command.desk_id,
                    command.track_id,
                    command.chat,
                    command.requester,
                    command.text,
                    command.platform_message_id,
                    command.opened_at,
                    command.priority,
                    command.attachments,
                )
            ]
        case c.AddCustomerMessage():
            if command.platform_message_id in state.message_ids:
                return []  # the same platform message again: exactly one effect
            _require(state, command, OPEN | {S.RESOLVED})
            added = e.CustomerMessageAdded(
                t,
                command.platform_message_id,
                command.text,
                command.received_at,
                command.sender_id,
                command.attachments,
            )
            if state.status is S.RESOLVED:
                return [added, e.TicketReopened(t, "customer replied", "customer")]
            return [added]
        case c.RecordPreflightPassed():
            _require(state, command, PREFLIGHT)
            return [e.PreflightPassed(t, command.category, command.checks), *_suggested(state, command)]
        case c.RecordPreflightFailed():
            _require(state, command, PREFLIGHT)
            if all(check.passed for check in command.checks):
                raise IllegalTransition(state, command, "a failed preflight needs at least one failed check")
            return [e.PreflightFailed(t, command.checks), *_suggested(state, command)]
        case c.RefuseTicket():
            _require(state, command, PREFLIGHT)
            return [e.TicketRefused(t, command.code, command.reason)]
        case c.ReferTicket():
            _require(state, command, OPEN)
            return [
                *_unassign_first(state, "referred to partners", command.actor),
                e.TicketReferred(t, command.category, command.reason),
            ]
        case c.MarkDuplicate():
            # Preflight's automatic merge, before any SLA clock runs; after it, agents merge (MergeTicket).
            _require(state, command, PREFLIGHT)
            if command.duplicate_of == t:
                raise IllegalTransition(state, command, "a ticket cannot duplicate itself")
            if state.merge_undone:
                raise IllegalTransition(state, command, "an agent undid this ticket's automatic merge")
            return [e.DuplicateSuspected(t, command.duplicate_of, command.similarity, command.suspected_at)]
        case c.UndoMerge():
            _require(state, command, frozenset({S.MERGED}))
            if not state.auto_merged or state.merged_into is None:
                raise IllegalTransition(state, command, "only an automatic merge (DuplicateSuspected) can be undone")
            return [
                e.MergeUndone(
                    t, state.merged_into, state.desk_id, state.track_id, state.priority,
                    command.reason, command.actor, state.merged_at,
                )
            ]  # fmt: skip
        case c.LinkKnownProblem():
            _require(state, command, OPEN | {S.RESOLVED})
            if command.problem_ticket_id == t:
                raise IllegalTransition(state, command, "a ticket cannot be its own known problem")
            if state.known_problem == command.problem_ticket_id:
                return []
            return [e.KnownProblemLinked(t, command.problem_ticket_id, command.actor)]
        case c.RouteTicket():
            _require(state, command, QUEUED_OR_WORKED)
            unchanged = (state.queue_id, state.tier, state.priority) == (
                command.queue_id,
                command.tier,
                command.priority,
            )
            if unchanged and state.status is S.ROUTED:
                return []  # already there, same tier and priority
            return [
                *_unassign_first(state, f"moved to queue {command.queue_id}", command.actor),
                e.TicketRouted(t, command.queue_id, command.tier, command.priority, command.rule_id, command.reason),
            ]
        case c.AssignTicket():
            _require(state, command, WORKABLE)
            if state.assignee == command.agent_id:
                return []
            return [
                *_unassign_first(state, f"reassigned to {command.agent_id}", command.actor),
                e.TicketAssigned(t, command.agent_id, command.strategy, command.actor),
            ]
        case c.UnassignTicket():
            _require(state, command, frozenset({S.ASSIGNED, S.IN_PROGRESS}))
            return _unassign_first(state, command.reason, command.actor)
        case c.StartWork():
            _require(state, command, frozenset({S.ASSIGNED}))
            if command.agent_id != state.assignee:
                raise IllegalTransition(state, command, f"{command.agent_id} is not the assignee")
            return [e.WorkStarted(t, command.agent_id)]
        case c.ReplyAsAgent():
            _require(state, command, WORKABLE)
            return [e.AgentReplied(t, command.agent_id, command.message_id, command.text)]
        case c.WaitForCustomer():
            _require(state, command, frozenset({S.ASSIGNED, S.IN_PROGRESS}))
            return [e.WaitingOnCustomer(t, command.reason, command.actor)]
        case c.ResolveTicket():
            _require(state, command, WORKABLE)
            return [e.TicketResolved(t, command.resolution, command.actor)]
        case c.ReopenTicket():
            _require(state, command, frozenset({S.RESOLVED}))
            return [e.TicketReopened(t, command.reason, command.actor)]
        case c.CloseTicket():
            _require(state, command, frozenset({S.RESOLVED, S.REFERRED, S.AWAITING_CUSTOMER}))
            return [e.TicketClosed(t, command.reason, command.actor)]
        case c.MergeTicket():
            _require(state, command, OPEN | {S.RESOLVED})
            if command.into_ticket_id == t:
                raise IllegalTransition(state, command, "a ticket cannot be merged into itself")
            return [
                *_unassign_first(state, "merged", command.actor),
                e.TicketMerged(t, command.into_ticket_id, command.actor),
            ]
        case c.ChangePriority():
            _require(state, command, OPEN)
            if command.priority == state.priority:
                return []
            return [e.PriorityChanged(t, state.priority, command.priority, command.actor)]
        case c.SetFeatureRequestOutcome():
            _require(state, command, OPEN | {S.RESOLVED})
            reason = command.reason.strip()
            if command.outcome == "declined" and not reason:
                raise IllegalTransition(state, command, "declining a feature request needs a reason")
            if (state.feature_outcome, state.feature_reason) == (command.outcome, reason):
                return []
            return [e.FeatureRequestOutcomeSet(t, command.outcome, command.actor, reason)]
    raise IllegalTransition(state, command, "unknown command")


def evolve(state: TicketState, event: TicketEvent) -> TicketState:
    nxt = msgspec.structs.replace
    s = nxt(state, version=state.version + 1)
    match event:
        case e.TicketOpened():
            return nxt(
                s,
                ticket_id=event.ticket_id,
                status=S.OPENED,
                desk_id=event.desk_id,
                track_id=event.track_id,
                chat=event.chat,
                requester=event.requester,
                priority=event.priority,
                message_ids=frozenset({event.platform_message_id}),
            )
        case e.CustomerMessageAdded():
            status: Status = S.IN_PROGRESS if s.status is S.WAITING_ON_CUSTOMER else s.status
            return nxt(s, status=status, message_ids=s.message_ids | {event.platform_message_id})
        case e.PreflightPassed():
            return nxt(s, status=S.READY, category=event.category)
        case e.PreflightFailed():
            return nxt(s, status=S.AWAITING_CUSTOMER)
        case e.TicketRefused():
            return nxt(s, status=S.REFUSED)
        case e.TicketReferred():
            return nxt(s, status=S.REFERRED, category=event.category)
        case e.DuplicateSuspected():
            return nxt(
                s, status=S.MERGED, merged_into=event.duplicate_of, auto_merged=True, merged_at=event.suspected_at
            )
        case e.DuplicateSuggested():
            return nxt(s, suggested_duplicates=s.suggested_duplicates | {event.candidate_id})
        case e.KnownProblemLinked():
            return nxt(s, known_problem=event.problem_ticket_id)
        case e.MergeUndone():
            # Back before preflight: preflight examines it again, and never merges it automatically again.
            return nxt(s, status=S.OPENED, merged_into=None, auto_merged=False, merged_at=None, merge_undone=True)
        case e.TicketRouted():
            return nxt(s, status=S.ROUTED, queue_id=event.queue_id, tier=event.tier, priority=event.priority)
        case e.TicketAssigned():
            status = s.status if s.status in {S.IN_PROGRESS, S.WAITING_ON_CUSTOMER} else S.ASSIGNED
            return nxt(s, status=status, assignee=event.agent_id)
        case e.TicketUnassigned():
            # Waiting on the customer survives a reassignment (Unassigned + Assigned in one decision):
            # the SLA clock stays paused whoever the agent is.
            status = S.ROUTED if s.status in {S.ASSIGNED, S.IN_PROGRESS} else s.status
            return nxt(s, status=status, assignee=None)
        case e.WorkStarted():
            return nxt(s, status=S.IN_PROGRESS)
        case e.AgentReplied():
            return nxt(s, status=S.IN_PROGRESS) if s.status is S.ASSIGNED else s
        case e.WaitingOnCustomer():
            return nxt(s, status=S.WAITING_ON_CUSTOMER)
        case e.TicketResolved():
            return nxt(s, status=S.RESOLVED)
        case e.TicketReopened():
            status = S.IN_PROGRESS if s.assignee else (S.ROUTED if s.queue_id else S.READY)
            return nxt(s, status=status, reopen_count=s.reopen_count + 1)
        case e.TicketClosed():
            return nxt(s, status=S.CLOSED)
        case e.TicketMerged():
            return nxt(s, status=S.MERGED, merged_into=event.into_ticket_id)
        case e.PriorityChanged():
            return nxt(s, priority=event.to_priority)
        case e.FeatureRequestOutcomeSet():
            return nxt(s, feature_outcome=event.outcome, feature_reason=event.reason)
    raise TypeError(f"not a ticket event: {type(event).__name__}")


def fold(events: Iterable[TicketEvent], state: TicketState | None = None) -> TicketState:
    current = state or initial_state()
    for event in events:
        current = evolve(current, event)
    return current
