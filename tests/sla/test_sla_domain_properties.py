"""Property tests of the SLA decider over random lifecycle scripts on the Bitrix24 box calendar
(Mon-Fri 10:00-19:00 Moscow, Russian holidays)."""

from __future__ import annotations

import uuid

from hypothesis import event, given, settings
from hypothesis import strategies as st
from sla_builders import (
    DESKS,
    Driver,
    customer,
    opened,
    passed,
    replied,
    resolved,
    scripted,
    ts,
    waiting,
)

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts.ids import deterministic_event_id
from ticketflow.sla.domain import advance, event_id_of, evolve, firings

T = uuid.UUID("00000000-0000-7000-8000-0000000000aa")
CALENDAR = DESKS.calendar("bitrix24-box", "box")
START_2025 = ts(2025, 1, 9, 0)
PRIORITIES = ("urgent", "high", "normal", "low")

kinds = st.sampled_from(["customer", "replied", "waiting", "resolved", "reopened", "priority"])
steps = st.lists(st.tuples(st.integers(0, 3 * 86400), kinds, st.sampled_from(PRIORITIES)), max_size=12)
starts = st.integers(START_2025, START_2025 + 330 * 86400)


def run_script(start: int, first_priority: str, script: list[tuple[int, str, str]], fire_out: bool = True) -> Driver:
    d = Driver().given([(start, opened(T, priority=first_priority)), (start, passed(T))])
    at, current = start, first_priority
    for n, (gap, kind, new_priority) in enumerate(script):
        at += gap
        d.when(at, scripted(kind, T, n, current, new_priority))
        if kind == "priority":
            current = new_priority
    if fire_out:
        d.tick(at + 30 * 86400)  # let every running clock fire out
    return d


@settings(max_examples=150, deadline=None)
@given(starts, st.sampled_from(PRIORITIES), steps)
def test_warnings_never_fire_in_closed_hours_unless_the_breach_comes_before_the_opening(
    start: int, first_priority: str, script: list[tuple[int, str, str]]
) -> None:
    d = run_script(start, first_priority, script)
    for emitted in d.emitted:
        event = emitted.event
        if isinstance(event, sla.SlaWarning):
            fired, deadline = int(event.fired_at.timestamp()), int(event.deadline.timestamp())
            assert fired == emitted.at and fired <= deadline
            if not CALENDAR.is_open_ts(fired):
                assert deadline < CALENDAR.next_opening_ts(fired), (event, emitted.at)


@settings(max_examples=150, deadline=None)
@given(starts, st.sampled_from(PRIORITIES), steps)
def test_replaying_the_emitted_events_rebuilds_the_same_clocks_and_ids_are_unique_and_deterministic(
    start: int, first_priority: str, script: list[tuple[int, str, str]]
) -> None:
    d = run_script(start, first_priority, script)
    assert d.state is not None
    policy = DESKS.policy("bitrix24-box", "box", d.state.priority)
    assert policy is not None
    clocks: tuple = ()  # type: ignore[type-arg]
    for emitted in d.emitted:
        clocks = evolve(clocks, emitted.event, emitted.at)
    if d.state.status != "closed":
        assert sorted(clocks, key=lambda c: c.target) == sorted(d.state.clocks, key=lambda c: c.target)
    assert len({e.event_id for e in d.emitted}) == len(d.emitted)
    assert run_script(start, first_priority, script).emitted == d.emitted


@settings(max_examples=200, deadline=None)
@given(starts, st.integers(0, 5 * 86400), st.integers(0, 5 * 86400), st.integers(0, 5 * 86400))
def test_pause_and_resume_keep_elapsed_business_time_exact(start: int, run1: int, pause: int, run2: int) -> None:
    d = Driver().given([(start, opened(T, priority="low")), (start, passed(T))])
    d.when(start, replied(T))  # first response met at once: only resolution counts
    paused_at, resumed_at = start + run1, start + run1 + pause
    [paused] = [e.event for e in d.when(paused_at, waiting(T)) if isinstance(e.event, sla.SlaClockPaused)]
    used = CALENDAR.business_seconds_between_ts(start, paused_at)
    assert paused.elapsed_seconds == used
    [resumed] = [e.event for e in d.when(resumed_at, customer(T)) if isinstance(e.event, sla.SlaClockResumed)]
    target = 5400 * 60
    if used < target:
        assert int(resumed.deadline.timestamp()) == CALENDAR.add_business_seconds_ts(resumed_at, target - used)
    met_at = resumed_at + run2
    stopped = [e.event for e in d.when(met_at, resolved(T)) if e.event.target == "resolution"]
    [met] = [event for event in stopped if isinstance(event, sla.SlaMet)]
    assert met.elapsed_seconds == used + CALENDAR.business_seconds_between_ts(resumed_at, met_at)


@given(
    st.uuids(),
    st.sampled_from(["first_response", "next_response", "resolution"]),
    st.integers(0, 2**40),
    st.one_of(st.floats(0, 1), st.just("breach"), st.text(max_size=20)),
)
def test_the_deciders_event_ids_are_the_contracts_deterministic_ids(
    ticket: uuid.UUID, target: str, deadline: int, level: object
) -> None:
    # The decider computes ids with its own faster UUIDv5; they must stay the ids already stored.
    assert event_id_of(ticket, target, deadline, level) == deterministic_event_id(ticket, target, deadline, level)
    assert event_id_of("sla", ticket, target, "SlaMet") == deterministic_event_id("sla", ticket, target, "SlaMet")


@settings(max_examples=150, deadline=None)
@given(starts, st.sampled_from(PRIORITIES), steps, st.lists(st.integers(0, 20 * 86400), min_size=1, max_size=6))
def test_the_timer_paths_timers_are_the_new_states_firings(
    start: int, first_priority: str, script: list[tuple[int, str, str]], probes: list[int]
) -> None:
    """`advance` hands the engine the next firing it computed while firing (no second round of
    calendar maths): it must be exactly `firings` of the state it returns, at any moment."""
    d = run_script(start, first_priority, script, fire_out=False)  # clocks mid-flight
    state, at, fired_any = d.state, start + sum(gap for gap, _, _ in script), False
    assert state is not None
    for probe in sorted(probes):
        decision = advance(state, at + probe, d.rules)
        assert decision.state is not None and decision.timers is not None
        assert decision.timers == firings(decision.state, d.rules), (probe, decision.emitted)
        state = decision.state
        fired_any = fired_any or bool(decision.emitted)
    event(f"fired: {fired_any}, timers left: {bool(firings(state, d.rules))}")
