"""The warning ladder over time: fire every level of a run's clocks due by an instant (`fire_due`),
and what the timer wheel must hold for a state (`firings`: per running clock, its next level and
when). Pure.

The ladder is the policy's warning fractions followed by the breach; each level fires once, at the
instant `clocks.level_due` gives (warnings never in closed hours unless the breach comes first)."""

from __future__ import annotations

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.domain.clocks import (
    Clock,
    deadline_of,
    level_fraction,
    level_label,
    next_firing,
    surely_not_due,
)
from ticketflow.sla.domain.policies import Calendar, Rules
from ticketflow.sla.domain.run import Run
from ticketflow.sla.domain.state import Emitted, TicketSla, event_id_of, timerless, utc


def fire_due(run: Run, until: int) -> None:
    """Emit every ladder level due by `until` (`SlaWarning`, `SlaBreached`), in order, and note each
    fired clock's next firing (what the timer wheel needs, `timers_after`)."""
    policy, calendar = run.policy, run.calendar
    if policy is None or calendar is None:
        return
    warnings = policy.warnings
    for clock in run.state.clocks:
        if surely_not_due(clock, warnings, until):
            continue
        # Running (else surely not due), and firing a level changes only `fired`, never the deadline:
        # computed once here, not once per level and again inside `level_due`.
        deadline = deadline_of(clock, calendar)
        while (firing := next_firing(clock, warnings, calendar, deadline)) is not None and firing[1] <= until:
            level, due = firing
            event_id = event_id_of(run.state.ticket_id, clock.target, deadline, level_label(level, warnings))
            event: sla.SlaEvent
            if level < len(warnings):
                event = sla.SlaWarning(
                    run.state.ticket_id, clock.target, warnings[level], utc(deadline), utc(due), policy.notify
                )
            else:
                escalate = (*policy.notify, *policy.escalate_to)
                event = sla.SlaBreached(run.state.ticket_id, clock.target, utc(deadline), utc(due), escalate)
            run.emitted.append(Emitted(event_id, event, due))
            clock = replace(clock, fired=level_fraction(level, warnings))
            run.put(clock, clock.target)
        run.next_firings[clock.target] = firing  # the first one not due: what the timer wheel needs


def timers_after(run: Run) -> dict[SlaTarget, tuple[int, int]]:
    """`firings(run.state)`, reusing the next firing `fire_due` computed for each clock it fired
    (the timer path would otherwise do the calendar maths of a firing twice)."""
    if timerless(run.state) or run.policy is None or run.calendar is None:
        return {}
    return _next_firings(run.state.clocks, run.policy.warnings, run.calendar, run.next_firings)


def firings(state: TicketSla, rules: Rules) -> dict[SlaTarget, tuple[int, int]]:
    """Per running clock, (level, due epoch second) of its next firing: what the timer engine holds."""
    if timerless(state):
        return {}
    policy = rules.policy(state.desk_id, state.track_id, state.priority)
    if policy is None:
        return {}
    return _next_firings(state.clocks, policy.warnings, rules.calendar(state.desk_id, state.track_id))


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
