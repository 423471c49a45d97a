"""Given/when/then: tickets without SLA ("excluded": eXpress client support) and referred tickets, and
moves between tracks with and without SLA, on the packaged eXpress desk: client-l1 serves client
support (no SLA), technical-l2 technical-standard (Mon-Fri 09:00-18:00 MSK), technical-l3
technical-premium (around the clock)."""

from __future__ import annotations

import uuid

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from sla_builders import (
    DESKS,
    Driver,
    customer,
    opened,
    passed,
    priority,
    reopened,
    replied,
    resolved,
    scripted,
    ts,
    waiting,
)

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.sla.adapters.checkpoints import decode_states
from ticketflow.sla.domain import TicketSla, event_id_of, firings
from ticketflow.sla.domain.clocks import Clock

T = uuid.UUID("00000000-0000-7000-8000-0000000000e1")
MIN = 60
TUESDAY_10 = ts(2025, 3, 4, 10)
STANDARD = DESKS.calendar("express", "technical-standard")


def routed(queue: str, priority: str = "normal") -> te.TicketRouted:
    return te.TicketRouted(T, queue, "l2", priority, "rule-1", "test")  # type: ignore[arg-type]


def client_ticket() -> Driver:
    """An eXpress client-support ticket past preflight: no SLA, so excluded."""
    d = Driver().given([(TUESDAY_10, opened(T, "express", "client")), (TUESDAY_10, passed(T))])
    assert d.emitted == [] and d.state is not None and d.state.status == "excluded"
    return d


def standard_ticket() -> Driver:
    return Driver().given([(TUESDAY_10, opened(T, "express", "technical-standard")), (TUESDAY_10, passed(T))])


def of_type(events: list[sla.SlaEvent], kind: type) -> dict[str, sla.SlaEvent]:
    return {e.target: e for e in events if isinstance(e, kind)}


def replayed(d: Driver) -> list[Clock]:
    return sorted(d.replayed(), key=lambda c: c.target)


def test_an_excluded_ticket_routed_to_an_sla_track_gets_its_clocks_at_the_move() -> None:
    # Given a client-support ticket (no SLA) whose priority changed meanwhile (kept, nothing emitted);
    d = client_ticket()
    assert d.when(TUESDAY_10 + 5 * MIN, priority(T, "normal", "high")) == []
    assert d.state is not None and d.state.priority == "high" and d.state.status == "excluded"
    # when routing moves it to technical-l2 (technical-standard) at 10:30,
    move_at = TUESDAY_10 + 30 * MIN
    emitted = d.when(move_at, routed("technical-l2", "high"))
    # then first response and resolution start at the move, under technical-standard/high, in its calendar,
    started = of_type([e.event for e in emitted], sla.SlaClockStarted)
    assert set(started) == {"first_response", "resolution"} and len(emitted) == 2
    first = started["first_response"]
    assert isinstance(first, sla.SlaClockStarted) and first.policy_id == "express/technical-standard/high"
    assert int(first.started_at.timestamp()) == move_at and first.target_seconds == 60 * MIN
    assert int(first.deadline.timestamp()) == move_at + 60 * MIN
    assert d.state is not None and d.state.status == "active" and d.state.track_id == "technical-standard"
    assert d.state.calendar == DESKS.calendar_version("express", "technical-standard")
    # with ids deterministic from the move's event id, timers armed, and the replay giving the same clocks.
    cause = uuid.uuid5(uuid.NAMESPACE_OID, f"{routed('technical-l2', 'high')!r}{move_at}{len(d.decisions) - 1}")
    assert [e.event_id for e in emitted] == [
        event_id_of("sla", cause, target, "SlaClockStarted") for target in ("first_response", "resolution")
    ]
    assert firings(d.state, DESKS)["first_response"] == (0, move_at + 30 * MIN)
    assert replayed(d) == sorted(d.state.clocks, key=lambda c: c.target)
    # The clocks then behave as any: the reply meets first response.
    [met] = [e.event for e in d.when(move_at + 10 * MIN, replied(T))]
    assert isinstance(met, sla.SlaMet) and met.elapsed_seconds == 10 * MIN


def test_a_reply_while_excluded_means_no_first_response_clock_at_the_move() -> None:
    d = client_ticket()
    assert d.when(TUESDAY_10 + 5 * MIN, replied(T)) == []
    emitted = d.when(TUESDAY_10 + 30 * MIN, routed("technical-l3"))
    assert set(of_type([e.event for e in emitted], sla.SlaClockStarted)) == {"resolution"}
    # A customer message after the reply starts next response as usual (premium/normal has none: nothing).
    assert d.when(TUESDAY_10 + 40 * MIN, customer(T)) == []


def test_an_excluded_ticket_waiting_on_the_customer_gets_paused_clocks_that_resume_on_the_answer() -> None:
    d = client_ticket()
    assert d.when(TUESDAY_10 + 5 * MIN, waiting(T)) == []
    move_at = TUESDAY_10 + 30 * MIN
    events = [e.event for e in d.when(move_at, routed("technical-l2"))]
    assert [type(e).__name__ for e in events] == [
        "SlaClockStarted",
        "SlaClockStarted",
        "SlaClockPaused",
        "SlaClockPaused",
    ]
    assert d.state is not None and d.state.status == "waiting" and firings(d.state, DESKS) == {}
    resumed = of_type([e.event for e in d.when(TUESDAY_10 + 90 * MIN, customer(T))], sla.SlaClockResumed)
    first = resumed["first_response"]
    assert isinstance(first, sla.SlaClockResumed)
    assert int(first.deadline.timestamp()) == TUESDAY_10 + 90 * MIN + 240 * MIN  # nothing used while waiting
    assert d.state is not None and d.state.status == "active"
    assert replayed(d) == sorted(d.state.clocks, key=lambda c: c.target)


def test_an_excluded_ticket_resolved_then_moved_starts_resolution_when_reopened() -> None:
    d = client_ticket()
    d.when(TUESDAY_10 + 5 * MIN, resolved(T))
    assert d.when(TUESDAY_10 + 10 * MIN, routed("technical-l3")) == []
    assert d.state is not None and d.state.status == "resolved" and d.state.clocks == ()
    [started] = [e.event for e in d.when(TUESDAY_10 + 20 * MIN, reopened(T))]
    assert isinstance(started, sla.SlaClockStarted) and started.target == "resolution"
    assert d.state is not None and d.state.status == "active"


def test_moved_to_a_track_without_sla_the_ticket_is_excluded_and_moved_back_it_gets_clocks_again() -> None:
    # Given a technical-standard ticket whose first response was met;
    d = standard_ticket()
    d.when(TUESDAY_10 + 10 * MIN, replied(T))
    # when routed to client support (no SLA),
    events = [e.event for e in d.when(TUESDAY_10 + 20 * MIN, routed("client-l1"))]
    # then the pending clock is cancelled with the reason, and the ticket is excluded: no timers, and
    # nothing is emitted for what it does meanwhile (a priority change is kept).
    [cancelled] = events
    assert isinstance(cancelled, sla.SlaClockCancelled) and cancelled.target == "resolution"
    assert "track technical-standard -> client" in cancelled.reason and "no SLA policy" in cancelled.reason
    assert d.state is not None and d.state.status == "excluded" and firings(d.state, DESKS) == {}
    assert d.when(TUESDAY_10 + 25 * MIN, priority(T, "normal", "urgent")) == []
    assert d.when(TUESDAY_10 + 26 * MIN, customer(T)) == []
    assert d.state is not None and d.state.priority == "urgent"
    # When routed back to technical-l2, resolution starts again (first response was met: not again).
    started = of_type(
        [e.event for e in d.when(TUESDAY_10 + 40 * MIN, routed("technical-l2", "urgent"))], sla.SlaClockStarted
    )
    assert set(started) == {"resolution"}
    assert started["resolution"].policy_id == "express/technical-standard/urgent"  # type: ignore[union-attr]
    assert d.state is not None and d.state.status == "active"
    assert replayed(d) == sorted(d.state.clocks, key=lambda c: c.target)
    ids = [e.event_id for e in d.emitted]
    assert len(ids) == len(set(ids))


def test_a_waiting_ticket_moved_out_of_sla_and_back_keeps_waiting() -> None:
    d = standard_ticket()
    d.when(TUESDAY_10 + 10 * MIN, waiting(T))
    d.when(TUESDAY_10 + 20 * MIN, routed("client-l1"))
    assert d.state is not None and (d.state.status, d.state.held) == ("excluded", "waiting")
    d.when(TUESDAY_10 + 30 * MIN, routed("technical-l3"))
    assert d.state is not None and d.state.status == "waiting"
    assert d.state.clocks and not any(c.running for c in d.state.clocks)


def test_a_ticket_routed_before_preflight_passed_gets_the_clocks_of_its_new_track_at_preflight() -> None:
    d = Driver().given([(TUESDAY_10, opened(T, "express", "client"))])
    assert d.state is not None and d.state.status == "opened"
    assert d.when(TUESDAY_10 + MIN, routed("technical-l3")) == []
    started = of_type([e.event for e in d.when(TUESDAY_10 + 2 * MIN, passed(T))], sla.SlaClockStarted)
    assert started["first_response"].policy_id == "express/technical-premium/normal"  # type: ignore[union-attr]


def test_a_referred_ticket_stays_out_of_sla_for_good_and_is_closed_by_a_terminal_event() -> None:
    # An SLA ticket referred: its clocks are cancelled, and no move brings them back.
    d = standard_ticket()
    events = [e.event for e in d.when(TUESDAY_10 + 10 * MIN, te.TicketReferred(T, "custom", "partners"))]
    assert {type(e).__name__ for e in events} == {"SlaClockCancelled"}
    assert d.state is not None and d.state.status == "referred" and firings(d.state, DESKS) == {}
    assert d.when(TUESDAY_10 + 20 * MIN, routed("technical-l3")) == []
    assert d.when(TUESDAY_10 + 21 * MIN, priority(T, "normal", "urgent")) == []
    assert d.state is not None and d.state.status == "referred"
    # An excluded ticket referred, likewise; a terminal event closes either (the service prunes it).
    e = client_ticket()
    assert e.when(TUESDAY_10 + 10 * MIN, te.TicketReferred(T, "custom", "partners")) == []
    assert e.when(TUESDAY_10 + 20 * MIN, routed("technical-l2")) == []
    assert e.state is not None and e.state.status == "referred"
    assert e.when(TUESDAY_10 + 30 * MIN, te.TicketClosed(T, "done", "agent")) == []
    assert e.state is not None and e.state.status == "closed"


def test_a_terminal_event_closes_an_excluded_ticket() -> None:
    d = client_ticket()
    assert d.when(TUESDAY_10 + MIN, te.TicketMerged(T, uuid.uuid4(), "agent")) == []
    assert d.state is not None and d.state.status == "closed"
    assert d.when(TUESDAY_10 + 2 * MIN, routed("technical-l2")) == []


class CheckpointedBefore(msgspec.Struct, frozen=True):
    """TicketSla as checkpoints stored it before `held` and `replied` were added."""

    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    priority: str
    status: str = "opened"
    clocks: tuple[Clock, ...] = ()
    version: int = 0
    sla_version: int = 0
    calendar: str = ""


def test_checkpoints_written_before_the_new_fields_still_decode() -> None:
    old = CheckpointedBefore(T, "express", "client", "normal", "excluded", version=3)
    [state] = decode_states([msgspec.msgpack.encode(old)]).values()
    assert state == TicketSla(T, "express", "client", "normal", "excluded", version=3)
    assert (state.held, state.replied) == ("active", False)


QUEUES = ("technical-l2", "technical-l3", "client-l1")
PRIORITIES = ("urgent", "high", "normal", "low")
moves = st.sampled_from(["customer", "replied", "waiting", "resolved", "reopened", "priority", "routed", "referred"])
scripts = st.lists(
    st.tuples(st.integers(0, 2 * 86400), moves, st.sampled_from(PRIORITIES), st.sampled_from(QUEUES)), max_size=14
)


def run_moves(track: str, script: list[tuple[int, str, str, str]]) -> tuple[Driver, list[str]]:
    """Folds a random script; returns the driver and the status after each step."""
    d = Driver().given([(TUESDAY_10, opened(T, "express", track)), (TUESDAY_10, passed(T))])
    at, statuses = TUESDAY_10, []
    for n, (gap, kind, new_priority, queue) in enumerate(script):
        at += gap
        assert d.state is not None
        event: te.TicketEvent
        if kind == "routed":
            event = routed(queue, new_priority)
        elif kind == "referred":
            event = te.TicketReferred(T, "custom", "partners")
        else:
            event = scripted(kind, T, n, d.state.priority, new_priority)
        d.when(at, event)
        statuses.append(d.state.status)  # type: ignore[union-attr]
    d.tick(at + 20 * 86400)
    return d, statuses


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["client", "technical-standard", "technical-premium"]), scripts)
def test_moves_in_and_out_of_sla_keep_the_clocks_consistent_and_replayable(
    track: str, script: list[tuple[int, str, str, str]]
) -> None:
    d, statuses = run_moves(track, script)
    state = d.state
    assert state is not None
    # Excluded or referred: no pending clock, nothing armed. With clocks: the track and priority have a policy.
    if state.status in ("excluded", "referred"):
        assert not any(c.pending for c in state.clocks) and firings(state, DESKS) == {}
    if state.status in ("active", "waiting"):
        assert DESKS.policy(state.desk_id, state.track_id, state.priority) is not None
        assert state.calendar == DESKS.calendar_version(state.desk_id, state.track_id)
    if state.status == "waiting":
        assert not any(c.running for c in state.clocks)
    # Referred is for good: nothing is emitted after it.
    if "referred" in statuses:
        after = statuses.index("referred") + 2  # the two opening decisions come first
        assert all(decision.emitted == [] for decision in d.decisions[after + 1 :])
        assert set(statuses[statuses.index("referred") :]) == {"referred"}
    # The SLA stream alone rebuilds the clocks; ids are unique and the same on a second run.
    assert replayed(d) == sorted(state.clocks, key=lambda c: c.target)
    assert len({e.event_id for e in d.emitted}) == len(d.emitted)
    assert run_moves(track, script)[0].emitted == d.emitted
