"""One decision under way (`Run`): the ticket's state as it evolves, what it emits, and the policy
and calendar it is decided under; with the elementary clock transitions (start, pause, resume, meet,
cancel), each one state change and one SLA event.

The decider's other modules move a run on: `firing` (levels due by a time), `recalculation` (policy,
track and calendar changes), `exclusion` (tickets without SLA), and `decider` (which lifecycle event
does what). Pure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.domain.clocks import Clock, consumed, deadline_of
from ticketflow.sla.domain.policies import Rules
from ticketflow.sla.domain.state import Emitted, TicketSla, event_id_of, utc


class Run:
    """Accumulates one decision: the state as it evolves and what is emitted."""

    def __init__(self, state: TicketSla, rules: Rules, cause: uuid.UUID | None) -> None:
        self.state, self.rules, self.cause = state, rules, cause
        self.emitted: list[Emitted] = []
        self.notes: list[str] = []
        self.next_firings: dict[SlaTarget, tuple[int, int] | None] = {}  # per clock `fire_due` fired
        self.policy = rules.policy(state.desk_id, state.track_id, state.priority)
        self.calendar = rules.calendar(state.desk_id, state.track_id) if self.policy is not None else None

    def put(self, clock: Clock | None, target: SlaTarget) -> None:
        others = tuple(c for c in self.state.clocks if c.target != target)
        self.state = replace(self.state, clocks=others if clock is None else (*others, clock))

    def emit(self, event: sla.SlaEvent, at: int) -> None:
        event_id = event_id_of("sla", self.cause, event.target, type(event).__name__)
        self.emitted.append(Emitted(event_id, event, at))

    @contextmanager
    def caused_by(self, cause: uuid.UUID) -> Iterator[None]:
        """Events emitted meanwhile get ids from `cause`: a configuration change, not the event at hand,
        caused them (ids of their own, per change, so a replay gives the same ones)."""
        saved, self.cause = self.cause, cause
        try:
            yield
        finally:
            self.cause = saved

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
