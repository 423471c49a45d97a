"""Tickets without SLA ("excluded": past preflight, no policy for their track and priority, e.g.
eXpress client support). They have no clocks and emit nothing while they follow the lifecycle (the
priority and track, whether an agent replied, whether they wait or are resolved), and get clocks at
the move that gives them a policy; a move out of SLA cancels the clocks and excludes. Pure."""

from __future__ import annotations

import uuid

from msgspec.structs import replace

from ticketflow.contracts import ticket_events as te
from ticketflow.sla.domain.policies import Rules, RulesError
from ticketflow.sla.domain.run import Run
from ticketflow.sla.domain.state import Decision, TicketSla

# What an excluded ticket follows of the lifecycle, to start its clocks as the ticket stands.
HELD_AFTER: dict[tuple[type, str], str] = {
    (te.WaitingOnCustomer, "active"): "waiting",
    (te.CustomerMessageAdded, "waiting"): "active",
    (te.TicketResolved, "active"): "resolved",
    (te.TicketResolved, "waiting"): "resolved",
    (te.TicketReopened, "resolved"): "active",
}


def exclude(run: Run) -> None:
    """No SLA policy any more (moved to a track without SLA, or a priority without a policy):
    the pending clocks were cancelled; the lifecycle is followed without clocks from here."""
    state = run.state
    first = state.clock("first_response")
    run.state = replace(
        state,
        status="excluded",
        held=state.status if state.status in ("waiting", "resolved") else "active",
        replied=state.replied or (first is not None and not first.pending),
    )


def include(run: Run, reason: str, at: int) -> None:
    """An excluded ticket now has a policy: its clocks start at `at` as the lifecycle stands (no
    first response once an agent replied; paused while waiting; none while resolved, the
    reopening starts resolution), counting in the calendar of its new track."""
    state = run.state
    calendar = run.rules.calendar_version(state.desk_id, state.track_id)
    run.state = replace(state, status=state.held, calendar=calendar)
    assert run.policy is not None
    run.notes.append(f"{reason}: SLA policy {run.policy.policy_id} applies from now")
    if state.held == "resolved":
        return
    first = state.clock("first_response")
    if not state.replied and (first is None or first.pending):
        run.start("first_response", at)
    run.start("resolution", at)
    if state.held == "waiting":
        for clock in run.state.clocks:
            if clock.running and clock.pending:
                run.pause(clock, at)


def follow_excluded(
    state: TicketSla, event: te.TicketEvent, at: int, cause: uuid.UUID | None, rules: Rules
) -> Decision:
    """An excluded ticket: no clocks; it keeps its priority, track and lifecycle status, and gets
    clocks at the move (routing to an SLA track, a priority with a policy) that gives it a policy."""
    if isinstance(event, te.TicketReferred):
        return Decision(replace(state, status="referred"))
    if isinstance(event, te.AgentReplied):
        return Decision(state if state.replied else replace(state, replied=True))
    held = HELD_AFTER.get((type(event), state.held))
    if held is not None:
        return Decision(replace(state, held=held))
    if isinstance(event, te.PriorityChanged):
        moved = replace(state, priority=event.to_priority)
        reason = f"priority {event.from_priority} -> {event.to_priority}"
    elif isinstance(event, te.TicketRouted):
        track = rules.queue_track(state.desk_id, event.queue_id) or state.track_id
        moved = replace(state, priority=event.priority, track_id=track)
        reason = f"routed to {event.queue_id}: track {state.track_id} -> {track}, priority {event.priority}"
    else:
        return Decision(state)
    try:
        run = Run(moved, rules, cause)
        if run.policy is not None:
            include(run, reason, at)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, notes=run.notes)
