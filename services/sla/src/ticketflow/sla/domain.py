"""The SLA decider for one ticket (pure): lifecycle events in, SLA events out.

`decide(state, event, at, cause, rules)` first fires every ladder level due by the event's own
time (`advance`), then applies the event, so the SLA history is a function of the lifecycle
history alone, whatever the consumer's lag or a restart: a breach due before the agent replied
fires even if the reply is consumed first. The service arms one timer per running clock at
`next_firing` and calls `advance(state, now)` when it fires.

Every emitted event has a deterministic id: firings (ticket, target, deadline, level), the rest
("sla", causing event id, target, type), so a replay appends nothing twice.

A ticket without an SLA policy for its track and priority (eXpress client support) is "excluded":
it follows the lifecycle without clocks and gets them at the move (routing, priority change) that
gives it a policy; a move to a track without SLA cancels its clocks and excludes it. A referred ticket
(out of scope) is "referred" for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import msgspec
from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.ids import deterministic_event_id
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.clocks import (
    Clock,
    consumed,
    deadline_of,
    level_due,
    level_fraction,
    level_label,
    next_firing,
    surely_not_due,
)
from ticketflow.sla.policies import TARGETS, Calendar, Policy, Rules, RulesError


class TicketSla(msgspec.Struct, frozen=True, gc=False):
    # gc=False (also on Clock and Policy): a million resident tickets stay out of the cyclic GC's
    # passes; these structs hold only scalars, strings, UUIDs and tuples of clocks, never a cycle.
    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    priority: str
    status: str = "opened"  # opened, active, waiting, resolved, closed, excluded (no SLA)
    clocks: tuple[Clock, ...] = ()
    version: int = 0  # last ticket-stream version applied (duplicates and gaps are found with it)
    sla_version: int = 0  # head of the ticket's SLA stream as this service knows it
    calendar: str = ""  # `Rules.calendar_version` the clocks count in ("": not recorded yet)
    # Added later, with defaults, so checkpoints written before still decode. Status may also be
    # "referred" (out of scope for good, unlike "excluded": no policy now, clocks on a move into SLA).
    held: str = "active"  # while excluded: the lifecycle status followed (active, waiting, resolved)
    replied: bool = False  # an agent replied: clocks started later (excluded -> SLA) start no first response
    # An undone automatic merge: when preflight had merged it (epoch s; 0: unknown). Its clocks count
    # from then, as if it had never been merged (`MergeUndone`).
    clocks_from: int = 0

    def clock(self, target: SlaTarget) -> Clock | None:
        for c in self.clocks:
            if c.target == target:
                return c
        return None

    @property
    def policy_key(self) -> tuple[str, str, str]:
        """What selects the policy and the calendar besides the desk: a change re-arms the timers."""
        return (self.track_id, self.priority, self.calendar)


class Emitted(msgspec.Struct, frozen=True, gc=False):  # gc=False: see TicketSla
    event_id: uuid.UUID
    event: sla.SlaEvent
    at: int  # epoch seconds, becomes the envelope's occurred_at


@dataclass
class Decision:
    state: TicketSla | None
    emitted: list[Emitted] = field(default_factory=list)
    rejected: str | None = None  # wrong input: log and dead-letter it
    notes: list[str] = field(default_factory=list)  # worth a log line, not a dead letter
    timers: dict[SlaTarget, tuple[int, int]] | None = None  # `firings(state)` when already known (timer path)


# The decider's event ids: deterministic, so a replay or a crash after publishing appends nothing twice.
event_id_of = deterministic_event_id


@lru_cache(maxsize=1 << 16)
def utc(ts: int) -> datetime:
    """Epoch seconds as an aware datetime (cached: deadlines and event times repeat a lot)."""
    return datetime.fromtimestamp(ts, UTC)


def _target_of(policy: Policy, target: SlaTarget) -> int | None:
    """The target a clock started now would get (`_Run.start`: never below zero); None: no such clock."""
    seconds = policy.target_seconds(target)
    return None if seconds is None else max(seconds, 0)


class _Run:
    """Accumulates one decision: the state as it evolves and what is emitted."""

    def __init__(self, state: TicketSla, rules: Rules, cause: uuid.UUID | None) -> None:
        self.state, self.rules, self.cause = state, rules, cause
        self.emitted: list[Emitted] = []
        self.notes: list[str] = []
        self.next_firings: dict[SlaTarget, tuple[int, int] | None] = {}  # per clock `advance` fired
        self.policy = rules.policy(state.desk_id, state.track_id, state.priority)
        self.calendar = rules.calendar(state.desk_id, state.track_id) if self.policy is not None else None

    def put(self, clock: Clock | None, target: SlaTarget) -> None:
        others = tuple(c for c in self.state.clocks if c.target != target)
        self.state = replace(self.state, clocks=others if clock is None else (*others, clock))

    def emit(self, event: sla.SlaEvent, at: int) -> None:
        event_id = event_id_of("sla", self.cause, event.target, type(event).__name__)
        self.emitted.append(Emitted(event_id, event, at))

    # -- firing ---------------------------------------------------------------------------------

    def advance(self, until: int) -> None:
        if self.policy is None or self.calendar is None:
            return
        warnings = self.policy.warnings
        for clock in self.state.clocks:
            if surely_not_due(clock, warnings, until):
                continue
            # Running (else surely not due), and firing a level changes only `fired`, never the deadline:
            # computed once here, not once per level and again inside `level_due`.
            deadline = deadline_of(clock, self.calendar)
            while (firing := next_firing(clock, warnings, self.calendar, deadline)) is not None and firing[1] <= until:
                level, due = firing
                event_id = event_id_of(self.state.ticket_id, clock.target, deadline, level_label(level, warnings))
                event: sla.SlaEvent
                if level < len(warnings):
                    event = sla.SlaWarning(
                        self.state.ticket_id, clock.target, warnings[level], utc(deadline), utc(due), self.policy.notify
                    )
                else:
                    escalate = (*self.policy.notify, *self.policy.escalate_to)
                    event = sla.SlaBreached(self.state.ticket_id, clock.target, utc(deadline), utc(due), escalate)
                self.emitted.append(Emitted(event_id, event, due))
                clock = replace(clock, fired=level_fraction(level, warnings))
                self.put(clock, clock.target)
            self.next_firings[clock.target] = firing  # the first one not due: what the timer wheel needs

    # -- clock transitions ----------------------------------------------------------------------

    def start(self, target: SlaTarget, at: int, since: int | None = None) -> None:
        """Start a clock at `at`, counting from `since` (default `at`; earlier for an undone merge)."""
        if self.policy is None or self.calendar is None:
            return
        seconds = self.policy.target_seconds(target)
        if seconds is None:
            return
        if seconds <= 0:
            self.notes.append(f"{self.policy.policy_id}: {target} target is {seconds}s; due at once")
        since = at if since is None else since
        clock = Clock(target, max(seconds, 0), since, running_since=since)
        self.put(clock, target)
        deadline = deadline_of(clock, self.calendar)
        self.emit(sla.SlaClockStarted(self.state.ticket_id, target, self.policy.policy_id, clock.target_seconds,
                                      utc(since), utc(deadline)), at)  # fmt: skip

    def pause(self, clock: Clock, at: int) -> None:
        assert self.calendar is not None
        elapsed = consumed(clock, at, self.calendar)
        self.put(replace(clock, elapsed=elapsed, running_since=None), clock.target)
        self.emit(sla.SlaClockPaused(self.state.ticket_id, clock.target, utc(at), elapsed), at)

    def resume(self, clock: Clock, at: int) -> None:
        assert self.calendar is not None
        clock = replace(clock, running_since=at, stopped=False)
        self.put(clock, clock.target)
        deadline = deadline_of(clock, self.calendar)
        self.emit(sla.SlaClockResumed(self.state.ticket_id, clock.target, utc(at), utc(deadline)), at)

    def meet(self, clock: Clock, at: int) -> None:
        assert self.calendar is not None
        elapsed = consumed(clock, at, self.calendar)
        self.put(replace(clock, elapsed=elapsed, running_since=None, stopped=True), clock.target)
        self.emit(sla.SlaMet(self.state.ticket_id, clock.target, utc(at), elapsed), at)

    def cancel_all(self, reason: str, at: int) -> None:
        for clock in self.state.clocks:
            if clock.pending:
                self.put(None, clock.target)
                self.emit(sla.SlaClockCancelled(self.state.ticket_id, clock.target, reason), at)

    @contextmanager
    def caused_by(self, cause: uuid.UUID) -> Iterator[None]:
        """Events emitted meanwhile get ids from `cause`: a configuration change, not the event at hand,
        caused them (ids of their own, per change, so a replay gives the same ones)."""
        saved, self.cause = self.cause, cause
        try:
            yield
        finally:
            self.cause = saved

    def check_calendar(self, at: int) -> None:
        """A desk configuration change of the clocks' calendar (hours, holidays, time zone) is applied
        like a track change, with the policy's rule, and recorded (`SlaRecalculated`): time used
        before `at` is counted in the recorded (old) calendar, looked up by its version, and from `at`
        on in the new one. An old version never stored is counted in the new calendar, with a note."""
        if self.calendar is None or not self.state.clocks:
            return
        current = self.rules.calendar_version(self.state.desk_id, self.state.track_id)
        recorded = self.state.calendar
        if recorded == current:
            return
        if not recorded:  # a state kept before calendar versions were recorded: adopt the current one
            self.state = replace(self.state, calendar=current)
            return
        old = self.rules.calendar_of_version(recorded)
        if old is None:
            self.notes.append(f"calendar {recorded} unknown (never stored): time used before {at} counted in {current}")
        else:
            self.calendar = old  # `recalculate` counts in it up to `at`
        with self.caused_by(event_id_of("calendar", self.state.ticket_id, recorded, current)):
            self.recalculate(self.state.priority, f"calendar {recorded} -> {current}", at, rebase=True)

    def recalculate(
        self, priority: str, reason: str, at: int, track: str | None = None, *, rebase: bool = False
    ) -> None:
        """A priority or track change: every pending clock gets the new policy's target under the new
        policy's rule, recorded as `SlaRecalculated`. A track change may also bring another calendar:
        with `keep_elapsed`, the business time used so far is counted in the old calendar up to `at`
        (`elapsed_seconds` on the event) and in the new one from `at` on."""
        track = self.state.track_id if track is None else track
        new = self.rules.policy(self.state.desk_id, track, priority)
        old_calendar = self.calendar
        moved = track != self.state.track_id or rebase
        self.state = replace(self.state, priority=priority, track_id=track)
        if moved:
            self.state = replace(self.state, calendar=self.rules.calendar_version(self.state.desk_id, track))
        if new is None:
            self.cancel_all(f"{reason}: no SLA policy", at)
            self.policy = None
            return
        calendar = self.rules.calendar(self.state.desk_id, track) if moved or old_calendar is None else old_calendar
        for clock in self.state.clocks:
            if clock.pending:
                self.retarget(clock, new, reason, at, old_calendar or calendar, calendar, rebase=moved)
        self.policy, self.calendar = new, calendar

    def retarget(
        self, clock: Clock, policy: Policy, reason: str, at: int, old: Calendar, new: Calendar, *, rebase: bool
    ) -> None:
        """One pending clock onto `policy`'s target under its rule, recorded (`SlaRecalculated`, or
        `SlaClockCancelled` when the policy has no such target). `rebase`: the calendar changed too,
        so with keep_elapsed the time used is counted in `old` up to `at` and in `new` from then on."""
        seconds = policy.target_seconds(clock.target)
        if seconds is None:
            self.put(None, clock.target)
            self.emit(sla.SlaClockCancelled(self.state.ticket_id, clock.target, f"{reason}: no target"), at)
            return
        seconds = max(seconds, 0)  # as `start` does: a target of zero (or less) is due at once
        since = clock.running_since if clock.running else at
        old_deadline = deadline_of(clock, old, since)
        elapsed: int | None = None
        if policy.recalculation == "restart":
            changed = Clock(clock.target, seconds, at, 0, at if clock.running else None)
            since = at
        elif rebase:  # what was used is kept, counted in the old calendar up to now
            elapsed = consumed(clock, at, old)
            running = at if clock.running else None
            changed = replace(clock, target_seconds=seconds, elapsed=elapsed, running_since=running)
            since = at
        else:
            changed = replace(clock, target_seconds=seconds)
        new_deadline = deadline_of(changed, new, since)
        self.put(changed, clock.target)
        self.emit(sla.SlaRecalculated(self.state.ticket_id, clock.target, policy.recalculation, reason,
                                      utc(old_deadline), utc(new_deadline), seconds, elapsed), at)  # fmt: skip

    def check_policy(self, at: int) -> None:
        """A desk configuration change of the policy's targets (same desk, track and priority, other
        minutes) is applied to each pending clock whose target changed, with the policy's rule, and
        recorded (`SlaRecalculated`; ids derived from the old and new targets): a clock never keeps
        counting against a target the configuration no longer has. After `check_calendar`."""
        policy, calendar = self.policy, self.calendar
        if policy is None or calendar is None:
            return
        for clock in self.state.clocks:
            if not clock.pending or clock.target_seconds == _target_of(policy, clock.target):
                continue
            wanted = _target_of(policy, clock.target)
            reason = f"policy {policy.policy_id}: {clock.target} target {clock.target_seconds}s -> {wanted}s"
            change = event_id_of("policy", self.state.ticket_id, clock.target, clock.target_seconds, wanted)
            with self.caused_by(change):
                self.retarget(clock, policy, reason, at, calendar, calendar, rebase=False)

    def exclude(self) -> None:
        """No SLA policy any more (moved to a track without SLA, or a priority without a policy):
        the pending clocks were cancelled; the lifecycle is followed without clocks from here."""
        state = self.state
        first = state.clock("first_response")
        self.state = replace(
            state,
            status="excluded",
            held=state.status if state.status in ("waiting", "resolved") else "active",
            replied=state.replied or (first is not None and not first.pending),
        )

    def include(self, reason: str, at: int) -> None:
        """An excluded ticket now has a policy: its clocks start at `at` as the lifecycle stands (no
        first response once an agent replied; paused while waiting; none while resolved, the
        reopening starts resolution), counting in the calendar of its new track."""
        state = self.state
        calendar = self.rules.calendar_version(state.desk_id, state.track_id)
        self.state = replace(state, status=state.held, calendar=calendar)
        assert self.policy is not None
        self.notes.append(f"{reason}: SLA policy {self.policy.policy_id} applies from now")
        if state.held == "resolved":
            return
        first = state.clock("first_response")
        if not state.replied and (first is None or first.pending):
            self.start("first_response", at)
        self.start("resolution", at)
        if state.held == "waiting":
            for clock in self.state.clocks:
                if clock.running and clock.pending:
                    self.pause(clock, at)


# Lifecycle events after which nothing can resume a ticket's clocks (the lifecycle's terminal states:
# closed, merged, refused); the service then forgets the ticket (status "closed" is pruned).
TERMINAL = (te.TicketClosed, te.TicketMerged, te.TicketRefused, te.DuplicateSuspected)


def _merge_undone(state: TicketSla | None, event: te.MergeUndone, rules: Rules) -> Decision:
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


def open_ticket(event: te.TicketOpened, rules: Rules) -> Decision:
    """Every ticket starts "opened" (no clock before preflight passed; a move before it changes the
    track the clocks start on); whether its track has SLA is settled when preflight passes."""
    try:
        rules.has_sla(event.desk_id, event.track_id)  # an unknown desk or track is wrong input
    except RulesError as error:
        return Decision(None, rejected=str(error))
    return Decision(TicketSla(event.ticket_id, event.desk_id, event.track_id, event.priority))


def decide(state: TicketSla | None, event: te.TicketEvent, at: int, cause: uuid.UUID | None, rules: Rules) -> Decision:
    """Apply one lifecycle event (at epoch second `at`) to a ticket's SLA state."""
    if isinstance(event, te.TicketOpened):
        if state is not None:
            return Decision(state, notes=["TicketOpened for a ticket already known: ignored"])
        return open_ticket(event, rules)
    if isinstance(event, te.MergeUndone):
        return _merge_undone(state, event, rules)
    if state is None:
        return Decision(None, rejected=f"{type(event).__name__} for an unknown ticket")
    if state.status in ("excluded", "referred") and isinstance(event, TERMINAL):
        return Decision(replace(state, status="closed"))  # no clocks to cancel; the ticket is finished
    if state.status in ("referred", "closed"):
        return Decision(state)
    if state.status == "excluded":
        return _follow_excluded(state, event, at, cause, rules)
    try:
        run = _Run(state, rules, cause)
        run.check_calendar(at)
        run.check_policy(at)
        run.advance(at)
        _apply(run, event, at)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, notes=run.notes)


def _apply(run: _Run, event: te.TicketEvent, at: int) -> None:
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
            run.advance(at)  # what fell due while the ticket was wrongly merged fires now
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
        run.recalculate(event.to_priority, f"priority {event.from_priority} -> {event.to_priority}", at)
        if run.policy is None:
            run.exclude()
    elif isinstance(event, te.TicketRouted):
        track = run.rules.queue_track(state.desk_id, event.queue_id) or state.track_id
        if track != state.track_id:  # another line of support: its policy and calendar apply
            reason = f"routed to {event.queue_id}: track {state.track_id} -> {track}, priority {event.priority}"
            run.recalculate(event.priority, reason, at, track)
        elif event.priority != state.priority:
            run.recalculate(event.priority, f"routed with priority {event.priority}", at)
        if run.policy is None:  # moved to a track (or priority) without SLA: clocks were cancelled
            run.exclude()


# What an excluded ticket follows of the lifecycle, to start its clocks as the ticket stands.
_HELD_AFTER: dict[tuple[type, str], str] = {
    (te.WaitingOnCustomer, "active"): "waiting",
    (te.CustomerMessageAdded, "waiting"): "active",
    (te.TicketResolved, "active"): "resolved",
    (te.TicketResolved, "waiting"): "resolved",
    (te.TicketReopened, "resolved"): "active",
}


def _follow_excluded(
    state: TicketSla, event: te.TicketEvent, at: int, cause: uuid.UUID | None, rules: Rules
) -> Decision:
    """An excluded ticket: no clocks; it keeps its priority, track and lifecycle status, and gets
    clocks at the move (routing to an SLA track, a priority with a policy) that gives it a policy."""
    if isinstance(event, te.TicketReferred):
        return Decision(replace(state, status="referred"))
    if isinstance(event, te.AgentReplied):
        return Decision(state if state.replied else replace(state, replied=True))
    held = _HELD_AFTER.get((type(event), state.held))
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
        run = _Run(moved, rules, cause)
        if run.policy is not None:
            run.include(reason, at)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, notes=run.notes)


def advance(state: TicketSla, now: int, rules: Rules) -> Decision:
    """Fire every ladder level due by `now` (the timer path)."""
    if state.status in ("excluded", "closed", "opened"):
        return Decision(state)
    try:
        run = _Run(state, rules, None)
        run.check_calendar(now)
        run.check_policy(now)
        run.advance(now)
    except RulesError as error:
        return Decision(state, rejected=str(error))
    return Decision(run.state, run.emitted, timers=_timers(run))


def _timers(run: _Run) -> dict[SlaTarget, tuple[int, int]]:
    """`firings(run.state)`, reusing the next firing `_Run.advance` computed for each clock it fired
    (the timer path would otherwise do the calendar maths of a firing twice)."""
    if _timerless(run.state) or run.policy is None or run.calendar is None:
        return {}
    return _next_firings(run.state.clocks, run.policy.warnings, run.calendar, run.next_firings)


def _next_firings(
    clocks: tuple[Clock, ...],
    warnings: tuple[float, ...],
    calendar: Calendar,
    known: dict[SlaTarget, tuple[int, int] | None] | None = None,
) -> dict[SlaTarget, tuple[int, int]]:
    """Per clock with a next firing, (level, due); `known`: firings already computed, by target."""
    result: dict[SlaTarget, tuple[int, int]] = {}
    for clock in clocks:
        firing = known[clock.target] if known and clock.target in known else next_firing(clock, warnings, calendar)
        if firing is not None:
            result[clock.target] = firing
    return result


def _timerless(state: TicketSla) -> bool:
    return state.status in ("excluded", "closed", "opened") or not state.clocks


def configuration_changed(state: TicketSla, rules: Rules) -> bool:
    """The desk configuration moved under a kept state (calendar version or a pending clock's
    target): its timers must not be armed from the state as it is (`advance` recalculates first)."""
    if _timerless(state):
        return False
    if state.calendar and state.calendar != rules.calendar_version(state.desk_id, state.track_id):
        return True
    policy = rules.policy(state.desk_id, state.track_id, state.priority)
    return policy is not None and any(
        c.pending and c.target_seconds != _target_of(policy, c.target) for c in state.clocks
    )


def firings(state: TicketSla, rules: Rules) -> dict[SlaTarget, tuple[int, int]]:
    """Per running clock, (level, due epoch second) of its next firing: what the timer engine holds."""
    if _timerless(state):
        return {}
    policy = rules.policy(state.desk_id, state.track_id, state.priority)
    if policy is None:
        return {}
    return _next_firings(state.clocks, policy.warnings, rules.calendar(state.desk_id, state.track_id))


def evolve(clocks: tuple[Clock, ...], event: sla.SlaEvent, at: int) -> tuple[Clock, ...]:
    """Rebuild clocks from the SLA stream alone: the replay of what `decide` emitted."""
    current = next((c for c in clocks if c.target == event.target), None)
    others = tuple(c for c in clocks if c.target != event.target)
    if isinstance(event, sla.SlaClockStarted):
        ts = int(event.started_at.timestamp())
        return (*others, Clock(event.target, event.target_seconds, ts, running_since=ts))
    if isinstance(event, sla.SlaClockCancelled) or current is None:
        return others
    if isinstance(event, sla.SlaClockPaused):
        current = replace(current, elapsed=event.elapsed_seconds, running_since=None)
    elif isinstance(event, sla.SlaClockResumed):
        current = replace(current, running_since=int(event.resumed_at.timestamp()), stopped=False)
    elif isinstance(event, sla.SlaMet):
        current = replace(current, elapsed=event.elapsed_seconds, running_since=None, stopped=True)
    elif isinstance(event, sla.SlaRecalculated):
        if event.rule == "restart":
            current = Clock(event.target, event.target_seconds, at, 0, at if current.running else None)
        elif event.elapsed_seconds is not None:  # the calendar changed too: rebased at `at`
            running = at if current.running else None
            current = replace(current, target_seconds=event.target_seconds, elapsed=event.elapsed_seconds,
                              running_since=running)  # fmt: skip
        else:
            current = replace(current, target_seconds=event.target_seconds)
    elif isinstance(event, sla.SlaWarning | sla.SlaBreached):
        fraction = event.level if isinstance(event, sla.SlaWarning) else 1.0
        current = replace(current, fired=max(current.fired, fraction))
    return (*others, current)


__all__ = [
    "TARGETS",
    "Decision",
    "Emitted",
    "TicketSla",
    "advance",
    "configuration_changed",
    "decide",
    "evolve",
    "firings",
    "level_due",
]
