"""Given/when/then for the SLA decider, on the packaged desks (Bitrix24 box: Mon-Fri 10:00-19:00 MSK)
and on test rules with an always-open calendar."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sla_builders import (
    BOX,
    DESKS,
    MONDAY_11_MSK,
    Driver,
    FakeRules,
    customer,
    opened,
    passed,
    priority,
    reopened,
    replied,
    resolved,
    ts,
    waiting,
)

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.sla.domain import decide, firings

T = uuid.UUID("00000000-0000-7000-8000-000000000001")
U = uuid.UUID("00000000-0000-7000-8000-000000000002")
HOUR = 3600
B = 1_750_000_000  # an epoch second in 2025 for the always-open test calendar


def started(driver: Driver) -> dict[str, sla.SlaClockStarted]:
    return {e.event.target: e.event for e in driver.emitted if isinstance(e.event, sla.SlaClockStarted)}


def test_preflight_passed_starts_first_response_and_resolution_through_the_calendar() -> None:
    # Box normal: first response 120 business minutes, resolution 2700 (five 9-hour days).
    friday_18 = ts(2025, 3, 7, 18)
    d = Driver().given([(friday_18, opened(T)), (friday_18, passed(T))])
    clocks = started(d)
    assert set(clocks) == {"first_response", "resolution"}
    # 1 hour left on Friday, the second hour on Monday 10:00-11:00.
    assert int(clocks["first_response"].deadline.timestamp()) == ts(2025, 3, 10, 11)
    # 2700 min = 45 h: Fri 1 h + Mon..Thu 36 h + Fri 8 h -> Friday 2025-03-14 18:00.
    assert int(clocks["resolution"].deadline.timestamp()) == ts(2025, 3, 14, 18)


def test_no_clock_before_preflight_for_tracks_without_sla_and_for_refused_or_referred_tickets() -> None:
    express_client = Driver().given([(MONDAY_11_MSK, opened(T, "express", "client")), (MONDAY_11_MSK, passed(T))])
    assert express_client.emitted == [] and express_client.state is not None
    assert express_client.state.status == "excluded"
    before_preflight = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, customer(T))])
    assert before_preflight.emitted == []
    referred = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, te.TicketReferred(T, "custom", "partners"))])
    referred.when(MONDAY_11_MSK + 60, passed(T))
    assert referred.emitted == []
    refused = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, te.TicketRefused(T, "not_admin", "x"))])
    assert refused.emitted == [] and refused.state is not None and refused.state.clocks == ()


def test_agent_reply_meets_first_response_and_each_customer_message_starts_next_response() -> None:
    d = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, passed(T))])
    [met] = d.when(MONDAY_11_MSK + 1800, replied(T))
    assert isinstance(met.event, sla.SlaMet) and met.event.target == "first_response"
    assert met.event.elapsed_seconds == 1800
    [next_started] = d.when(MONDAY_11_MSK + 3600, customer(T))
    assert isinstance(next_started.event, sla.SlaClockStarted) and next_started.event.target == "next_response"
    assert d.when(MONDAY_11_MSK + 3700, customer(T, 2)) == []  # already counting from the first message
    [next_met] = d.when(MONDAY_11_MSK + 4600, replied(T, 2))
    assert isinstance(next_met.event, sla.SlaMet) and next_met.event.elapsed_seconds == 1000


def test_waiting_on_customer_pauses_and_the_answer_resumes_with_elapsed_exact() -> None:
    d = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, passed(T)), (MONDAY_11_MSK + 600, replied(T))])
    paused = d.when(MONDAY_11_MSK + HOUR, waiting(T))
    [resolution_paused] = [e.event for e in paused if e.event.target == "resolution"]
    assert isinstance(resolution_paused, sla.SlaClockPaused) and resolution_paused.elapsed_seconds == HOUR
    assert firings(d.state, DESKS) == {}  # type: ignore[arg-type]  # nothing armed while paused
    # Answer arrives Tuesday 12:00 MSK: the resolution clock resumes with one business hour used.
    resumed = d.when(ts(2025, 3, 4, 12), customer(T))
    [res] = [e.event for e in resumed if isinstance(e.event, sla.SlaClockResumed)]
    assert int(res.deadline.timestamp()) == ts(2025, 3, 11, 11)  # 44 business hours after Tue 12:00
    [met] = [e.event for e in d.when(ts(2025, 3, 4, 13), resolved(T)) if e.event.target == "resolution"]
    assert isinstance(met, sla.SlaMet) and met.elapsed_seconds == 2 * HOUR


def test_resolution_stops_the_clocks_and_reopen_resumes_resolution_with_elapsed_kept() -> None:
    d = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, passed(T))])
    stopped = d.when(MONDAY_11_MSK + 50 * 60, resolved(T))  # before the 50% warning (60 of 120 min)
    assert sorted(type(e.event).__name__ for e in stopped) == ["SlaMet", "SlaMet"]
    assert firings(d.state, DESKS) == {}  # type: ignore[arg-type]
    [resumed] = d.when(MONDAY_11_MSK + 3 * HOUR, reopened(T))
    assert isinstance(resumed.event, sla.SlaClockResumed) and resumed.event.target == "resolution"
    # 45 h target, 50 min used: 44 h 10 min from Monday 14:00 (41 h to Friday 19:00) -> next Monday 13:10.
    assert int(resumed.event.deadline.timestamp()) == ts(2025, 3, 10, 13, 10)


def test_priority_change_keeps_elapsed_by_default_and_is_recorded() -> None:
    d = Driver().given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, passed(T))])
    events = d.when(MONDAY_11_MSK + HOUR, priority(T, "normal", "urgent"))
    recalculated = {e.event.target: e.event for e in events}
    first = recalculated["first_response"]
    assert isinstance(first, sla.SlaRecalculated) and first.rule == "keep_elapsed"
    # urgent: 30 min first response and 60 min already used: the deadline was 11:30, so it is overdue.
    assert int(first.new_deadline.timestamp()) == MONDAY_11_MSK + 1800
    resolution = recalculated["resolution"]
    assert isinstance(resolution, sla.SlaRecalculated) and resolution.target_seconds == 540 * 60
    # 540 business minutes from Monday 11:00: 8 h on Monday, 1 h on Tuesday -> Tuesday 11:00.
    assert int(resolution.new_deadline.timestamp()) == MONDAY_11_MSK + 24 * HOUR


def test_restart_rule_starts_the_target_again() -> None:
    rules = FakeRules(recalculation="restart", by_priority={"urgent": 20})
    d = Driver(rules).given([(B + 1000, opened(T, "d", "t")), (B + 1000, passed(T))])
    [*_, res] = [e for e in d.when(B + 1030, priority(T, "normal", "urgent")) if e.event.target == "resolution"]
    assert isinstance(res.event, sla.SlaRecalculated) and res.event.rule == "restart"
    assert int(res.event.new_deadline.timestamp()) == B + 1050


def test_warning_ladder_fires_each_level_once_then_the_breach_with_escalation() -> None:
    d = Driver(FakeRules(first_response=None, next_response=None, resolution=100)).given(
        [(B + 1000, opened(T, "d", "t")), (B + 1000, passed(T))]
    )
    fired = d.tick(B + 1074) + d.tick(B + 1074) + d.tick(B + 1100) + d.tick(B + 5000)
    assert [(type(e.event).__name__, e.at - B) for e in fired] == [
        ("SlaWarning", 1050),
        ("SlaWarning", 1075),
        ("SlaWarning", 1090),
        ("SlaBreached", 1100),
    ]
    breach = fired[-1].event
    assert isinstance(breach, sla.SlaBreached) and breach.escalate_to == ("assignee", "queue:l2")
    assert d.tick(10_000) == []


def test_warnings_move_to_the_next_opening_unless_the_breach_comes_first() -> None:
    # Urgent first response: 30 business minutes. Passed Friday 18:50: 10 min left on Friday.
    friday_1850 = ts(2025, 3, 7, 18, 50)
    d = Driver().given([(friday_1850, opened(T, priority="urgent")), (friday_1850, passed(T))])
    levels = firings(d.state, DESKS)  # type: ignore[arg-type]
    # 50% = 15 min -> Monday 10:05 (open), well inside business hours.
    assert levels["first_response"] == (0, ts(2025, 3, 10, 10, 5))
    # Passed Friday 18:00 with a 60-minute urgent... use high (60 min): all of it fits Friday.
    d2 = Driver().given([(ts(2025, 3, 7, 18), opened(T, priority="high")), (ts(2025, 3, 7, 18), passed(T))])
    fired = d2.tick(ts(2025, 3, 10, 12))
    first = [(e.event.level if isinstance(e.event, sla.SlaWarning) else "breach", e.at) for e in fired
             if e.event.target == "first_response"]  # fmt: skip
    # 0.5 at 18:30, 0.75 at 18:45, 0.9 at 18:54, breach at 19:00 (the closing instant, the deadline).
    assert first == [(0.5, ts(2025, 3, 7, 18, 30)), (0.75, ts(2025, 3, 7, 18, 45)),
                     (0.9, ts(2025, 3, 7, 18, 54)), ("breach", ts(2025, 3, 7, 19))]  # fmt: skip


def test_a_paused_clock_resumed_in_closed_hours_fires_overdue_warnings_at_the_next_opening() -> None:
    rules = DESKS
    d = Driver(rules).given([(MONDAY_11_MSK, opened(T)), (MONDAY_11_MSK, passed(T))])
    d.when(MONDAY_11_MSK + 50 * 60, waiting(T))  # 50 of 120 first-response minutes used
    d.when(MONDAY_11_MSK + 2 * HOUR, priority(T, "normal", "urgent"))  # 30 min target: overdue once resumed
    d.when(ts(2025, 3, 4, 22), customer(T))  # answered Tuesday 22:00, closed
    level, due = firings(d.state, rules)["first_response"]  # type: ignore[arg-type]
    assert (level, due) == (0, ts(2025, 3, 5, 10))  # 50% is long past: at Wednesday's opening, not at night


def test_decide_fires_what_was_due_before_the_event_whatever_the_consumer_lag() -> None:
    d = Driver(FakeRules()).given([(B + 1000, opened(T, "d", "t")), (B + 1000, passed(T))])
    events = d.when(B + 1015, replied(T))  # first response target 10 s: breached at 1010, reply at 1015
    assert [type(e.event).__name__ for e in events if e.event.target == "first_response"] == [
        "SlaWarning", "SlaWarning", "SlaWarning", "SlaBreached", "SlaMet"
    ]  # fmt: skip


def test_firing_ids_are_deterministic_and_replay_is_identical() -> None:
    script = [(B + 1000, opened(T, "d", "t")), (B + 1000, passed(T)), (B + 1003, waiting(T)), (B + 1030, customer(T)),
              (B + 1060, replied(T)), (B + 1100, resolved(T))]  # fmt: skip
    a, b = Driver(FakeRules()).given(script), Driver(FakeRules()).given(script)
    assert [e.event_id for e in a.emitted] == [e.event_id for e in b.emitted]
    assert a.emitted == b.emitted
    assert len({e.event_id for e in a.emitted}) == len(a.emitted)


def test_wrong_input_is_rejected_not_crashed() -> None:
    assert decide(replied(T), None, 0, None, DESKS).rejected == "AgentReplied for an unknown ticket"
    unknown_desk = decide(opened(T, "nowhere", "box"), None, 0, None, DESKS)
    assert unknown_desk.rejected is not None and "nowhere" in unknown_desk.rejected
    broken = Driver(FakeRules(calendar_broken=True)).given([(0, opened(T, "d", "t"))])
    decision = decide(passed(T), broken.state, 0, None, FakeRules(calendar_broken=True))
    assert decision.rejected is not None and "no working time" in decision.rejected
    assert decision.state == broken.state


def test_a_target_of_zero_is_due_at_once_and_noted() -> None:
    d = Driver(FakeRules(first_response=0)).given([(B + 500, opened(T, "d", "t"))])
    d.when(B + 500, passed(T))
    assert any("target is 0s" in note for note in d.decisions[-1].notes)
    fired = d.tick(B + 500)
    assert [type(e.event).__name__ for e in fired if e.event.target == "first_response"][-1] == "SlaBreached"


def test_close_and_merge_cancel_running_clocks_and_stop_everything() -> None:
    d = Driver(FakeRules()).given([(B + 1000, opened(T, "d", "t")), (B + 1000, passed(T))])
    cancelled = d.when(B + 1001, te.TicketClosed(T, "spam", "agent"))
    assert {type(e.event).__name__ for e in cancelled} == {"SlaClockCancelled"}
    assert d.tick(10_000) == [] and d.when(10_001, customer(T)) == []
    assert BOX  # the packaged desk id used above


def test_an_undone_automatic_merge_gets_its_clocks_from_the_merge_as_if_never_merged() -> None:
    # FakeRules: first response 10 s, warnings at 50/75/90 %, on an always-open calendar.
    merged_at = B + 100
    d = Driver(FakeRules()).given([(B, opened(T, "d", "t")), (merged_at, te.DuplicateSuspected(T, U, 0.9))])
    assert d.emitted == [] and d.state is not None and d.state.status == "closed"
    d.state = None  # the service forgets a finished ticket (engine._prune)
    merged = datetime.fromtimestamp(merged_at, UTC)
    undone = te.MergeUndone(T, U, "d", "t", "normal", "another requester's ticket", "lead", merged)
    assert d.when(B + 200, undone) == [] and d.state is not None and d.state.status == "opened"
    # Preflight passes it again 100 s after the merge: the clocks count from the merge, and what fell
    # due meanwhile (the whole first-response ladder) fires now, with the ids it would have had.
    fired = d.when(B + 200, passed(T))
    first = started(d)["first_response"]
    assert int(first.started_at.timestamp()) == merged_at and int(first.deadline.timestamp()) == merged_at + 10
    assert [type(e.event).__name__ for e in fired if e.event.target == "first_response"] == [
        "SlaClockStarted", "SlaWarning", "SlaWarning", "SlaWarning", "SlaBreached",
    ]  # fmt: skip
    assert d.state.clocks_from == 0  # used once


def test_an_undone_merge_with_no_recorded_time_starts_its_clocks_when_preflight_passes() -> None:
    d = Driver(FakeRules())
    d.when(B, te.MergeUndone(T, U, "d", "t", "normal", "wrong", "lead"))
    d.when(B + 50, passed(T))
    assert int(started(d)["first_response"].started_at.timestamp()) == B + 50
    unknown_desk = Driver(FakeRules())
    unknown_desk.when(B, te.MergeUndone(T, U, "nowhere", "t", "normal", "x", "y"))
    assert "nowhere" in (unknown_desk.decisions[-1].rejected or "")  # wrong input: a dead letter, not a crash
