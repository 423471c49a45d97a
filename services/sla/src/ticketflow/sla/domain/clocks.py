"""One SLA clock and its business-time arithmetic (pure: the calendar is a value passed in).

A clock counts business seconds of its track's calendar. `elapsed` is what was consumed before
`running_since`; while running, the consumption at time t is `elapsed + between(running_since, t)`.
The firing ladder is the policy's warning fractions followed by the breach (fraction 1.0); `fired`
is the highest fraction already fired (1.0 once breached), so each level fires once, and a policy
change with another ladder (keep_elapsed) does not fire again what the old ladder already covered.

Warnings in closed hours: a warning whose instant falls outside business hours moves to the next
opening, unless the breach comes before that opening; then it fires at its own instant (the close
of business, still before the breach), so a warning is never skipped and never after its breach.
"""

from __future__ import annotations

import msgspec

from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.domain.policies import Calendar


class Clock(msgspec.Struct, frozen=True, gc=False):
    target: SlaTarget
    target_seconds: int
    started_at: int
    elapsed: int = 0
    running_since: int | None = None  # None: paused or stopped
    stopped: bool = False  # met (resolution can resume on reopen)
    fired: float = 0.0  # highest ladder fraction fired so far (1.0: breached)

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def pending(self) -> bool:
        """Counting or paused: not yet met."""
        return not self.stopped


def consumed(clock: Clock, at: int, calendar: Calendar) -> int:
    """Business seconds consumed by `at`."""
    if clock.running_since is None:
        return clock.elapsed
    return clock.elapsed + max(0, calendar.business_seconds_between_ts(clock.running_since, at))


def instant_of(clock: Clock, fraction: float, calendar: Calendar, since: int | None = None) -> int:
    """When `fraction` of the target is used up, counting from `since` (default: running_since).

    A target already used up (or a target of zero) gives `since`, or the next opening if closed."""
    start = clock.running_since if since is None else since
    assert start is not None, "a paused clock has no instants"
    needed = round(clock.target_seconds * fraction, 6) - clock.elapsed
    if needed <= 0:
        return calendar.next_opening_ts(start)
    return calendar.consumed_at_ts(start, clock.target_seconds, fraction, clock.elapsed)


def deadline_of(clock: Clock, calendar: Calendar, since: int | None = None) -> int:
    return instant_of(clock, 1.0, calendar, since)


def level_due(
    clock: Clock, level: int, warnings: tuple[float, ...], calendar: Calendar, deadline: int | None = None
) -> int:
    """When ladder level `level` fires (levels below len(warnings) are warnings, the last the breach).
    `deadline`: the clock's `deadline_of`, when the caller has it already (it does not depend on `fired`)."""
    if deadline is None:
        deadline = deadline_of(clock, calendar)
    if level >= len(warnings):
        return deadline
    due = min(instant_of(clock, warnings[level], calendar), deadline)
    if not calendar.is_open_ts(due):
        opening = calendar.next_opening_ts(due)
        if opening <= deadline:
            return opening
    return due


def next_level(clock: Clock, warnings: tuple[float, ...]) -> int | None:
    """Ladder index of the next level to fire (len(warnings): the breach); None once breached."""
    if clock.fired >= 1.0:
        return None
    for index, fraction in enumerate(warnings):
        if fraction > clock.fired:
            return index
    return len(warnings)


def surely_not_due(clock: Clock, warnings: tuple[float, ...], until: int) -> bool:
    """A cheap exact pre-check: business time never runs faster than wall time, so a level needing
    more business seconds than `until - running_since` cannot be due yet (no calendar maths)."""
    if clock.running_since is None or clock.stopped:
        return True
    level = next_level(clock, warnings)
    if level is None:
        return True
    needed = clock.target_seconds * level_fraction(level, warnings) - clock.elapsed
    return needed > 0 and until - clock.running_since < needed - 1


def level_fraction(level: int, warnings: tuple[float, ...]) -> float:
    return 1.0 if level >= len(warnings) else warnings[level]


def next_firing(
    clock: Clock, warnings: tuple[float, ...], calendar: Calendar, deadline: int | None = None
) -> tuple[int, int] | None:
    """(level, due) of the next firing of a running clock; None when paused, stopped or exhausted."""
    if clock.running_since is None or clock.stopped:
        return None
    level = next_level(clock, warnings)
    return None if level is None else (level, level_due(clock, level, warnings, calendar, deadline))


def level_label(level: int, warnings: tuple[float, ...]) -> str:
    """Part of a firing's deterministic event id: the fraction, or "breach"."""
    return "breach" if level >= len(warnings) else repr(warnings[level])
