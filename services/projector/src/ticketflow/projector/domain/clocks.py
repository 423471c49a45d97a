"""SLA clocks as the sla service's events tell them (pure): one clock per target, and a ticket's SLA at a
glance. The sla service decides; this only follows what it recorded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from ticketflow.contracts import sla_events as s
from ticketflow.contracts.views import SlaClock, SlaState

_replace = msgspec.structs.replace


def follow_clock(clock: SlaClock | None, event: s.SlaEvent) -> SlaClock | None:
    """The clock after one SLA event of its target (None: no clock of this target has started)."""
    if isinstance(event, s.SlaClockStarted):
        return SlaClock(
            target=event.target,
            state="running",
            policy_id=event.policy_id,
            target_seconds=event.target_seconds,
            started_at=event.started_at,
            deadline=event.deadline,
        )
    if clock is None:
        return None
    match event:
        case s.SlaClockPaused():
            return _replace(
                clock, state="paused", deadline=None, paused_at=event.paused_at, elapsed_seconds=event.elapsed_seconds
            )
        case s.SlaClockResumed():
            return _replace(clock, state="running", deadline=event.deadline, paused_at=None, met_at=None)
        case s.SlaRecalculated():
            changed = _replace(
                clock,
                target_seconds=event.target_seconds,
                deadline=event.new_deadline if clock.state == "running" else clock.deadline,
            )
            if event.rule == "restart":  # a new clock for the new target: nothing has fired on it yet
                changed = _replace(changed, breached=False, warning_level=0.0, elapsed_seconds=None)
            return changed
        case s.SlaWarning():
            return _replace(clock, warning_level=max(clock.warning_level, event.level))
        case s.SlaBreached():
            return _replace(clock, breached=True)
        case s.SlaMet():
            return _replace(
                clock, state="met", deadline=None, met_at=event.met_at, elapsed_seconds=event.elapsed_seconds
            )
        case s.SlaClockCancelled():
            return _replace(clock, state="cancelled", deadline=None, cancel_reason=event.reason)
    return clock


def pending(clock: SlaClock) -> bool:
    return clock.state in ("running", "paused")


def sla_state(clocks: Iterable[SlaClock]) -> SlaState:
    """The worst of a ticket's clocks: breached > paused > warning > running > met (none: no clock)."""
    states: set[str] = set()
    for clock in clocks:
        if pending(clock) and clock.breached:
            states.add("breached")
        elif clock.state == "running":
            states.add("warning" if clock.warning_level > 0 else "running")
        elif clock.state in ("paused", "met"):
            states.add(clock.state)
    for state in ("breached", "paused", "warning", "running", "met"):
        if state in states:
            return state  # type: ignore[return-value]
    return "none"


def due_at(clocks: Iterable[SlaClock]) -> datetime | None:
    """The earliest deadline of a running clock."""
    deadlines = [c.deadline for c in clocks if c.state == "running" and c.deadline is not None]
    return min(deadlines) if deadlines else None
