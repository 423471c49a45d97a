"""Recalculation: a ticket's clocks moved onto another target or calendar, recorded as
`SlaRecalculated` (or `SlaClockCancelled` when the new policy has no such target), always with the
new policy's rule (`keep_elapsed`: the business time used is kept; `restart`: counted again from the
change). Pure.

What causes one:
- a priority change or a move to another track (`recalculate`, from the decider);
- a desk configuration change of the clocks' calendar (`check_calendar`): time used before the
  change counts in the old calendar, looked up by its recorded version, from then on in the new one;
- a desk configuration change of a policy's targets (`check_policy`).
`configuration_changed` tells whether a kept state needs either check before its timers are armed."""

from __future__ import annotations

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.domain.clocks import Clock, consumed, deadline_of
from ticketflow.sla.domain.policies import Calendar, Policy, Rules, target_of
from ticketflow.sla.domain.run import Run
from ticketflow.sla.domain.state import TicketSla, event_id_of, timerless, utc


def check_calendar(run: Run, at: int) -> None:
    """A desk configuration change of the clocks' calendar (hours, holidays, time zone) is applied
    like a track change, with the policy's rule, and recorded (`SlaRecalculated`): time used
    before `at` is counted in the recorded (old) calendar, looked up by its version, and from `at`
    on in the new one. An old version never stored is counted in the new calendar, with a note."""
    if run.calendar is None or not run.state.clocks:
        return
    current = run.rules.calendar_version(run.state.desk_id, run.state.track_id)
    recorded = run.state.calendar
    if recorded == current:
        return
    if not recorded:  # a state kept before calendar versions were recorded: adopt the current one
        run.state = replace(run.state, calendar=current)
        return
    old = run.rules.calendar_of_version(recorded)
    if old is None:
        run.notes.append(f"calendar {recorded} unknown (never stored): time used before {at} counted in {current}")
    else:
        run.calendar = old  # `recalculate` counts in it up to `at`
    change = _next_change(run)
    with run.caused_by(event_id_of("calendar", run.state.ticket_id, recorded, current, change)):
        recalculate(run, run.state.priority, f"calendar {recorded} -> {current}", at, rebase=True)


def check_policy(run: Run, at: int) -> None:
    """A desk configuration change of the policy's targets (same desk, track and priority, other
    minutes) is applied to each pending clock whose target changed, with the policy's rule, and
    recorded (`SlaRecalculated`; ids derived from the old and new targets): a clock never keeps
    counting against a target the configuration no longer has. After `check_calendar`."""
    policy, calendar = run.policy, run.calendar
    if policy is None or calendar is None:
        return
    changed = [c for c in run.state.clocks if c.pending and c.target_seconds != target_of(policy, c.target)]
    if not changed:
        return
    change = _next_change(run)
    for clock in changed:
        wanted = target_of(policy, clock.target)
        reason = f"policy {policy.policy_id}: {clock.target} target {clock.target_seconds}s -> {wanted}s"
        cause = event_id_of("policy", run.state.ticket_id, clock.target, clock.target_seconds, wanted, change)
        with run.caused_by(cause):
            retarget(run, clock, policy, reason, at, calendar, calendar, rebase=False)


def _next_change(run: Run) -> int:
    """Count one more configuration change applied to the ticket: its number goes into the ids."""
    change = run.state.config_changes + 1
    run.state = replace(run.state, config_changes=change)
    return change


def recalculate(
    run: Run, priority: str, reason: str, at: int, track: str | None = None, *, rebase: bool = False
) -> None:
    """A priority or track change: every pending clock gets the new policy's target under the new
    policy's rule, recorded as `SlaRecalculated`. A track change may also bring another calendar:
    with `keep_elapsed`, the business time used so far is counted in the old calendar up to `at`
    (`elapsed_seconds` on the event) and in the new one from `at` on."""
    track = run.state.track_id if track is None else track
    new = run.rules.policy(run.state.desk_id, track, priority)
    old_calendar = run.calendar
    moved = track != run.state.track_id or rebase
    run.state = replace(run.state, priority=priority, track_id=track)
    if moved:
        run.state = replace(run.state, calendar=run.rules.calendar_version(run.state.desk_id, track))
    if new is None:
        run.cancel_all(f"{reason}: no SLA policy", at)
        run.policy = None
        return
    calendar = run.rules.calendar(run.state.desk_id, track) if moved or old_calendar is None else old_calendar
    for clock in run.state.clocks:
        if clock.pending:
            retarget(run, clock, new, reason, at, old_calendar or calendar, calendar, rebase=moved)
    run.policy, run.calendar = new, calendar


def retarget(
    run: Run, clock: Clock, policy: Policy, reason: str, at: int, old: Calendar, new: Calendar, *, rebase: bool
) -> None:
    """One pending clock onto `policy`'s target under its rule, recorded (`SlaRecalculated`, or
    `SlaClockCancelled` when the policy has no such target). `rebase`: the calendar changed too,
    so with keep_elapsed the time used is counted in `old` up to `at` and in `new` from then on."""
    seconds = policy.target_seconds(clock.target)
    if seconds is None:
        run.put(None, clock.target)
        run.emit(sla.SlaClockCancelled(run.state.ticket_id, clock.target, f"{reason}: no target"), at)
        return
    seconds = max(seconds, 0)  # as `Run.start` does: a target of zero (or less) is due at once
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
    run.put(changed, clock.target)
    run.emit(sla.SlaRecalculated(run.state.ticket_id, clock.target, policy.recalculation, reason,
                                 utc(old_deadline), utc(new_deadline), seconds, elapsed), at)  # fmt: skip


def configuration_changed(state: TicketSla, rules: Rules) -> bool:
    """The desk configuration moved under a kept state (calendar version or a pending clock's
    target): its timers must not be armed from the state as it is (`advance` recalculates first)."""
    if timerless(state):
        return False
    if state.calendar and state.calendar != rules.calendar_version(state.desk_id, state.track_id):
        return True
    policy = rules.policy(state.desk_id, state.track_id, state.priority)
    return policy is not None and any(
        c.pending and c.target_seconds != target_of(policy, c.target) for c in state.clocks
    )
