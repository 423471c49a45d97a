"""The SLA decider for one ticket (pure): lifecycle events in, SLA events out.

`decide(event, state, at, cause, rules)` (the house convention: what happens, then the state it
happens to) first fires every ladder level due by the event's own time (`firing.fire_due`), then
applies the event, so the SLA history is a function of the lifecycle history alone, whatever the
consumer's lag or a restart: a breach due before the agent replied fires even if the reply is
consumed first. The service arms one timer per running clock (`firing.firings`) and calls
`advance(state, now, rules)` when one fires.

Every emitted event has a deterministic id: firings (ticket, target, deadline, level), the rest
("sla", causing event id, target, type), so a replay appends nothing twice.

A ticket without an SLA policy for its track and priority (eXpress client support) is "excluded"
(`exclusion`); a referred ticket (out of scope) is "referred" for good.
"""

from __future__ import annotations

import uuid

from msgspec.structs import replace

from ticketflow.contracts import ticket_events as te
from ticketflow.sla.domain.exclusion import exclude, follow_excluded
from ticketflow.sla.domain.firing import fire_due, timers_after
from ticketflow.sla.domain.policies import Rules, RulesError
from ticketflow.sla.domain.recalculation import check_calendar, check_policy, recalculate
from ticketflow.sla.domain.run import Run
from ticketflow.sla.domain.state import Decision, TicketSla

# Lifecycle events after which nothing can resume a ticket's clocks (the lifecycle's terminal states:
# closed, merged, refused); the service then forgets the ticket (status "closed" is pruned).
TERMINAL = (te.TicketClosed, te.TicketMerged, te.TicketRefused, te.DuplicateSuspected)


def decide(event: te.TicketEvent, state: TicketSla | None, at: int, cause: uuid.UUID | None, rules: Rules) -> Decision:
    """Apply one lifecycle event (at epoch second `at`, caused by the event id `cause`) to a ticket's
    SLA state."""
    if isinstance(event, te.TicketOpened):
        if state is not None:
            return Decision(state, notes=["TicketOpened for a ticket already known: ignored"])
        return open_ticket(event, rules)
    if isinstance(event, te.MergeUndone):
        return merge_undone(state, event, rules)
    if state is None:
        return Decision(None, rejected=f"{type(event).__name__} for an unknown ticket")
    if state.status in ("excluded", "referred") and isinstance(event, TERMINAL):
        return Decision(replace(state, status="closed"))  # no clocks to cancel; the ticket is finished
    if state.status in ("referred", "closed"):
        return Decision(state)
    if state.status == "excluded":
        return follow_excluded(state, event, at, cause, rules)
    try:
        run = Run(state, rules, cause)
        check_calendar(run, at)
        check_policy(run, at)
        fire_due(run, at)
        _apply(run, event, at)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, notes=run.notes)


def advance(state: TicketSla, now: int, rules: Rules) -> Decision:
    """Fire every ladder level due by `now` (the timer path), after applying any configuration change."""
    if state.status in ("excluded", "closed", "opened"):
        return Decision(state)
    try:
        run = Run(state, rules, None)
        check_calendar(run, now)
        check_policy(run, now)
        fire_due(run, now)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, timers=timers_after(run))


def open_ticket(event: te.TicketOpened, rules: Rules) -> Decision:
    """Every ticket starts "opened" (no clock before preflight passed; a move before it changes the
    track the clocks start on); whether its track has SLA is settled when preflight passes."""
    try:
        rules.has_sla(event.desk_id, event.track_id)  # an unknown desk or track is wrong input
    except RulesError as error:
        return Decision(None, rejected=str(error))
    return Decision(TicketSla(event.ticket_id, event.desk_id, event.track_id, event.priority))


def merge_undone(state: TicketSla | None, event: te.MergeUndone, rules: Rules) -> Decision:
    """A merged ticket was forgotten (status "closed", pruned); undone, it is back before preflight,
    with no clock yet. When preflight passes it again its clocks start at the merge's time, so the
    business time the wrong merge took counts, as it would have without the merge."""
    if state is not None and state.status != "closed":
        return Decision(state, notes=[f"MergeUndone while {state.status}: ignored"])
    try:
        rules.has_sla(event.desk_id, event.track_id)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    since = int(event.merged_at.timestamp()) if event.merged_at is not None else 0
    return Decision(TicketSla(event.ticket_id, event.desk_id, event.track_id, event.priority, clocks_from=since))


def _apply(run: Run, event: te.TicketEvent, at: int) -> None:
    """What one lifecycle event does to a ticket with SLA (after the levels due by `at` fired)."""
    state = run.state
    if isinstance(event, te.PreflightPassed):
        if state.status != "opened":
            return
        if run.policy is None:
            run.state = replace(state, status="excluded")
            return
        calendar = run.rules.calendar_version(state.desk_id, state.track_id)
        run.state = replace(state, status="active", calendar=calendar, clocks_from=0)
        since = state.clocks_from if 0 < state.clocks_from < at else at
        run.start("first_response", at, since)
        run.start("resolution", at, since)
        if since < at:
            fire_due(run, at)  # what fell due while the ticket was wrongly merged fires now
    elif isinstance(event, te.TicketRefused | te.DuplicateSuspected):
        # Terminal in the lifecycle (refused; a suspected duplicate is merged): nothing resumes.
        run.cancel_all(type(event).__name__, at)
        run.state = replace(run.state, status="closed", clocks=())
    elif isinstance(event, te.TicketReferred):  # out of scope for good: no move brings clocks back
        run.cancel_all(type(event).__name__, at)
        run.state = replace(run.state, status="referred")
    elif state.status == "opened":
        if isinstance(event, te.PriorityChanged):
            run.state = replace(state, priority=event.to_priority)  # clocks start later with this priority
        elif isinstance(event, te.TicketRouted):
            track = run.rules.queue_track(state.desk_id, event.queue_id) or state.track_id
            run.state = replace(state, priority=event.priority, track_id=track)
        return  # before preflight passed no clock runs
    elif isinstance(event, te.AgentReplied):
        if not state.replied:
            run.state = replace(state, replied=True)
        for target in ("first_response", "next_response"):
            clock = state.clock(target)  # type: ignore[arg-type]
            if clock is not None and clock.pending:
                run.meet(clock, at)
    elif isinstance(event, te.CustomerMessageAdded):
        if state.status == "waiting":
            run.state = replace(state, status="active")
            for clock in state.clocks:
                if clock.pending and not clock.running:
                    run.resume(clock, at)
        first, following = run.state.clock("first_response"), run.state.clock("next_response")
        answered = first is None or not first.pending
        if state.status != "resolved" and answered and (following is None or not following.pending):
            run.start("next_response", at)
    elif isinstance(event, te.WaitingOnCustomer):
        if state.status == "active":
            run.state = replace(state, status="waiting")
            for clock in state.clocks:
                if clock.running and clock.pending:
                    run.pause(clock, at)
    elif isinstance(event, te.TicketResolved):
        for clock in state.clocks:
            if clock.pending:
                run.meet(clock, at)
        run.state = replace(run.state, status="resolved")
    elif isinstance(event, te.TicketReopened):
        if state.status != "resolved":
            run.notes.append(f"TicketReopened while {state.status}: ignored")
            return
        run.state = replace(state, status="active")
        resolution = state.clock("resolution")
        if resolution is not None:
            run.resume(resolution, at)
        else:  # resolved while excluded, then moved onto an SLA track: resolution starts now
            run.start("resolution", at)
    elif isinstance(event, te.TicketClosed | te.TicketMerged):
        run.cancel_all(type(event).__name__, at)
        run.state = replace(run.state, status="closed", clocks=())
    elif isinstance(event, te.PriorityChanged):
        recalculate(run, event.to_priority, f"priority {event.from_priority} -> {event.to_priority}", at)
        if run.policy is None:
            exclude(run)
    elif isinstance(event, te.TicketRouted):
        track = run.rules.queue_track(state.desk_id, event.queue_id) or state.track_id
        if track != state.track_id:  # another line of support: its policy and calendar apply
            reason = f"routed to {event.queue_id}: track {state.track_id} -> {track}, priority {event.priority}"
            recalculate(run, event.priority, reason, at, track)
        elif event.priority != state.priority:
            recalculate(run, event.priority, f"routed with priority {event.priority}", at)
        if run.policy is None:  # moved to a track (or priority) without SLA: clocks were cancelled
            exclude(run)
