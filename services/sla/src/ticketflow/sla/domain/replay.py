"""Replay: a ticket's clocks rebuilt from its SLA stream alone (`evolve(clocks, sla_event, at)`), the
inverse of what the decider emits (property-tested: replaying the emitted events gives the kept
clocks). The writer uses it to take in firings found stored after a crash. Pure."""

from __future__ import annotations

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.domain.clocks import Clock


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
