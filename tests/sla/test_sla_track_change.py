"""Given/when/then: a routing move to a queue of another track (another policy and calendar) on a live
ticket, on the packaged eXpress desk: technical-l2 serves technical-standard (Mon-Fri 09:00-18:00 MSK),
technical-l3 serves technical-premium (around the clock), client-l1 serves client support (no SLA);
and a desk configuration change of a calendar under running clocks."""

from __future__ import annotations

import uuid

from msgspec.structs import replace
from sla_builders import BOX, DESKS, Driver, FakeRules, customer, opened, passed, replied, ts, waiting

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.deskconfig.model import WeeklyHours
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.domain import firings
from ticketflow.sla.domain.clocks import Clock

T = uuid.UUID("00000000-0000-7000-8000-00000000007c")
MIN = 60
TUESDAY_17 = ts(2025, 3, 4, 17)  # contract-standard: one business hour left today


def routed(queue: str, priority: str = "normal") -> te.TicketRouted:
    return te.TicketRouted(T, queue, "l3", priority, "technical", "fallback")  # type: ignore[arg-type]


def standard_ticket() -> Driver:
    return Driver().given([(TUESDAY_17, opened(T, "express", "technical-standard")), (TUESDAY_17, passed(T))])


def recalculated(events: list[sla.SlaEvent]) -> dict[str, sla.SlaRecalculated]:
    return {e.target: e for e in events if isinstance(e, sla.SlaRecalculated)}


def test_moving_to_a_premium_queue_keeps_the_used_time_counted_in_the_old_calendar() -> None:
    # Given a technical-standard ticket whose clocks started Tuesday 17:00 (first response 240 business
    # minutes: due Wednesday 12:00 in the 09-18 calendar);
    d = standard_ticket()
    assert int(d.emitted[0].event.deadline.timestamp()) == ts(2025, 3, 5, 12)  # type: ignore[union-attr]
    # when routing moves it to technical-l3 (technical-premium, 24/7) at 17:30,
    events = [e.event for e in d.when(TUESDAY_17 + 30 * MIN, routed("technical-l3"))]
    # then both clocks are recalculated under the premium policy with keep_elapsed: the 30 minutes
    # used are kept (counted in the standard calendar), the rest counts around the clock.
    changes = recalculated(events)
    assert set(changes) == {"first_response", "resolution"}
    first = changes["first_response"]
    assert first.rule == "keep_elapsed" and first.elapsed_seconds == 30 * MIN and first.target_seconds == 60 * MIN
    assert int(first.old_deadline.timestamp()) == ts(2025, 3, 5, 12)
    assert int(first.new_deadline.timestamp()) == TUESDAY_17 + 60 * MIN  # 30 min left, counted at 17:30
    resolution = changes["resolution"]
    assert resolution.target_seconds == 1440 * MIN
    assert int(resolution.new_deadline.timestamp()) == TUESDAY_17 + 30 * MIN + (1440 - 30) * MIN
    assert d.state is not None and d.state.track_id == "technical-premium"
    # The timers follow the premium calendar (18:00 is past the standard close and still counts), and
    # replaying the SLA events alone gives the same clocks.
    fire = firings(d.state, DESKS)
    assert fire["first_response"] == (0, TUESDAY_17 + 30 * MIN)  # the 0.5 warning, at once
    assert sorted(d.replayed(), key=lambda c: c.target) == sorted(d.state.clocks, key=lambda c: c.target)


def test_a_move_after_closing_time_does_not_count_the_closed_hours_and_a_paused_clock_stays_paused() -> None:
    # Given the ticket waits on the customer from 17:45 (45 business minutes used);
    d = standard_ticket()
    d.when(TUESDAY_17 + 30 * MIN, replied(T))
    d.when(TUESDAY_17 + 45 * MIN, waiting(T))
    # when it is moved to premium at 23:00 (closed hours of the standard calendar),
    events = [e.event for e in d.when(ts(2025, 3, 4, 23), routed("technical-l3"))]
    # then the resolution clock keeps its 45 minutes, stays paused, and resumes in the premium calendar.
    change = recalculated(events)["resolution"]
    assert change.elapsed_seconds == 45 * MIN
    assert d.state is not None and d.state.clock("resolution") == Clock(
        "resolution", 1440 * MIN, TUESDAY_17, 45 * MIN, running_since=None
    )
    resumed = [e.event for e in d.when(ts(2025, 3, 4, 23, 30), customer(T))]
    [resume] = [e for e in resumed if isinstance(e, sla.SlaClockResumed) and e.target == "resolution"]
    assert int(resume.deadline.timestamp()) == ts(2025, 3, 4, 23, 30) + (1440 - 45) * MIN
    assert sorted(d.replayed(), key=lambda c: c.target) == sorted(d.state.clocks, key=lambda c: c.target)


def test_the_new_policys_restart_rule_applies_on_a_track_change() -> None:
    # Given a premium ticket (24/7) opened Tuesday 17:00;
    d = Driver().given([(TUESDAY_17, opened(T, "express", "technical-premium")), (TUESDAY_17, passed(T))])
    # when it is moved to technical-l2 with priority low at 17:20 (technical-standard/low: restart),
    events = [e.event for e in d.when(TUESDAY_17 + 20 * MIN, routed("technical-l2", "low"))]
    # then the clocks start again from 17:20 in the standard calendar with the low targets.
    first = recalculated(events)["first_response"]
    assert first.rule == "restart" and first.elapsed_seconds is None and first.target_seconds == 480 * MIN
    # 480 business minutes from Tuesday 17:20: 40 on Tuesday (to 18:00), 440 from Wednesday 09:00.
    assert int(first.new_deadline.timestamp()) == ts(2025, 3, 5, 16, 20)
    assert d.state is not None and d.state.clock("first_response") == Clock(
        "first_response", 480 * MIN, TUESDAY_17 + 20 * MIN, 0, running_since=TUESDAY_17 + 20 * MIN
    )


def test_a_move_to_a_track_without_sla_cancels_the_clocks_and_one_within_the_track_changes_nothing() -> None:
    d = standard_ticket()
    # When routed to the other queue of the same track with the same priority, then nothing is emitted;
    # an unknown queue keeps the track too (routing validated it; the SLA service does not guess).
    assert d.when(TUESDAY_17 + 5 * MIN, routed("technical-l2")) == []
    assert d.when(TUESDAY_17 + 6 * MIN, routed("no-such-queue")) == []
    # When routed to client support (no SLA), then every pending clock is cancelled, with the reason.
    events = [e.event for e in d.when(TUESDAY_17 + 10 * MIN, routed("client-l1"))]
    assert {type(e).__name__ for e in events} == {"SlaClockCancelled"} and len(events) == 2
    assert all("track technical-standard -> client" in e.reason for e in events)  # type: ignore[union-attr]
    assert d.state is not None and d.state.clocks == () and firings(d.state, DESKS) == {}


class Reconfigured:
    """The packaged desks after a configuration change: the box track's calendar is now 24/7. The
    old calendar is still known by its version, unless `forgotten` (never stored)."""

    def __init__(self, forgotten: bool = False) -> None:
        self.changed = False
        self.forgotten = forgotten

    def __getattr__(self, name: str) -> object:
        return getattr(DESKS, name)

    def calendar(self, desk_id: str, track_id: str) -> object:
        if self.changed and track_id == "box":
            return DESKS.calendar("express", "technical-premium")
        return DESKS.calendar(desk_id, track_id)

    def calendar_version(self, desk_id: str, track_id: str) -> str:
        version = DESKS.calendar_version(desk_id, track_id)
        return f"{version}+24x7" if self.changed and track_id == "box" else version

    def calendar_of_version(self, version: str) -> object:
        if version.endswith("+24x7"):
            return DESKS.calendar("express", "technical-premium")
        return None if self.forgotten else DESKS.calendar_of_version(version)


BOX_TICKET = uuid.UUID("00000000-0000-7000-8000-0000000000b0")
TUESDAY_11 = ts(2025, 3, 4, 11)


def box_ticket(rules: object) -> Driver:
    """A Bitrix24 box ticket (Mon-Fri 10-19 MSK) whose clocks started Tuesday 11:00."""
    d = Driver(rules).given([(TUESDAY_11, opened(BOX_TICKET)), (TUESDAY_11, passed(BOX_TICKET))])
    assert d.state is not None and d.state.calendar.startswith("moscow-weekdays@")
    return d


def assigned_at_20() -> te.TicketAssigned:
    return te.TicketAssigned(BOX_TICKET, "anna", "round_robin", "routing")


def test_a_desk_calendar_change_counts_the_time_used_before_it_in_the_old_calendar() -> None:
    # Given a box ticket started Tuesday 11:00 with the calendar version recorded;
    rules = Reconfigured()
    d = box_ticket(rules)
    before = d.state.calendar  # type: ignore[union-attr]
    # when the desk's configuration changes (now 24/7) and the next event is consumed at 20:00,
    rules.changed = True
    decision_at = len(d.decisions)
    events = [e.event for e in d.when(ts(2025, 3, 4, 20), assigned_at_20())]
    # then each pending clock gets one SlaRecalculated naming both versions (keep_elapsed): the time
    # used before the change counts in the old calendar (11:00-19:00: 8 hours, not the 9 wall-clock
    # hours to 20:00), and the clock counts 24/7 from 20:00 on.
    changes = recalculated(events)
    assert set(changes) == {"first_response", "resolution"}
    resolution = changes["resolution"]
    assert resolution.reason == f"calendar {before} -> {before}+24x7" and resolution.rule == "keep_elapsed"
    assert resolution.elapsed_seconds == 8 * 3600
    # The old deadline is the old calendar's: 45 business hours from Tue 11:00 in Mon-Fri 10-19 (8 + 9 * 4
    # to Monday 19:00, then 1) -> the next Tuesday 11:00.
    assert int(resolution.old_deadline.timestamp()) == ts(2025, 3, 11, 11)
    target = resolution.target_seconds
    assert int(resolution.new_deadline.timestamp()) == ts(2025, 3, 4, 20) + target - 8 * 3600
    assert d.state is not None and d.state.calendar == f"{before}+24x7"
    assert d.decisions[decision_at].notes == []
    assert sorted(d.replayed(), key=lambda c: c.target) == sorted(d.state.clocks, key=lambda c: c.target)
    # A later event or timer does not record it again; the ids of the change are its own.
    assert recalculated([e.event for e in d.tick(ts(2025, 3, 4, 20, 1))]) == {}
    ids = [e.event_id for e in d.emitted]
    assert len(ids) == len(set(ids))


def test_an_old_calendar_version_never_stored_is_counted_in_the_new_calendar_with_a_note() -> None:
    rules = Reconfigured(forgotten=True)
    d = box_ticket(rules)
    before = d.state.calendar  # type: ignore[union-attr]
    rules.changed = True
    events = [e.event for e in d.when(ts(2025, 3, 4, 20), assigned_at_20())]
    # 11:00-20:00 counted 24/7: 9 hours; the decision says why.
    assert recalculated(events)["resolution"].elapsed_seconds == 9 * 3600
    [note] = d.decisions[-1].notes
    assert f"calendar {before} unknown (never stored)" in note


def around_the_clock(registry: DeskRegistry) -> DeskRegistry:
    """The registry with the box desk's calendar open 24/7 (a desk configuration change)."""
    desk = registry.desk(BOX)
    all_day = WeeklyHours(**{day: ("00:00-24:00",) for day in WeeklyHours.__struct_fields__})
    calendars = tuple(replace(c, weekly=all_day, holiday_country=None) for c in desk.calendars)
    return DeskRegistry({**registry.desks, BOX: replace(desk, calendars=calendars)})


def test_desk_rules_keep_old_calendar_versions_across_a_reload_and_from_stored_definitions() -> None:
    # Given desk rules that counted a box ticket's clocks in the Mon-Fri calendar;
    rules = DeskRules(load_desks())
    d = box_ticket(rules)
    before = d.state.calendar  # type: ignore[union-attr]
    stored = rules.definitions()
    assert before in stored
    # when the configuration is reloaded in the process (now 24/7),
    rules.reload(around_the_clock(rules.registry))
    after = rules.calendar_version(BOX, "box")
    assert after != before and rules.calendar_of_version(before) is not None
    events = [e.event for e in d.when(ts(2025, 3, 4, 20), assigned_at_20())]
    # then the time used before counts in the old calendar (8 hours), the rest 24/7.
    assert recalculated(events)["resolution"].elapsed_seconds == 8 * 3600
    assert d.state is not None and d.state.calendar == after
    # A new process on the changed configuration finds the old calendar in the stored definitions
    # (a definition whose hash does not match its version is ignored); without them it cannot.
    changed = around_the_clock(load_desks())
    mislabelled = "moscow-weekdays@000000000000"
    restarted = DeskRules(changed, {**stored, mislabelled: stored[before]})
    old = restarted.calendar_of_version(before)
    assert old is not None and not old.is_open_ts(ts(2025, 3, 4, 20)) and old.is_open_ts(ts(2025, 3, 4, 11))
    assert restarted.calendar_of_version(mislabelled) is None
    assert DeskRules(changed).calendar_of_version(before) is None
    assert DeskRules(changed).calendar_of_version(after) is not None  # the current one, by version


def test_a_calendar_change_found_by_a_timer_applies_the_restart_rule_of_the_policy() -> None:
    rules = FakeRules(recalculation="restart", resolution=100, first_response=None, next_response=None)
    d = Driver(rules).given([(1_750_000_000, opened(T, "d", "t")), (1_750_000_000, passed(T))])
    rules.calendar_tag = "always-open-v2"
    fired = [e.event for e in d.tick(1_750_000_040)]
    [change] = [e for e in fired if isinstance(e, sla.SlaRecalculated)]
    assert change.rule == "restart" and change.reason == "calendar always-open -> always-open-v2"
    assert int(change.new_deadline.timestamp()) == 1_750_000_140
    # Restarted at 40 s: nothing of the new ladder is due yet (the old 0.5 warning at 50 s is gone).
    assert [type(e).__name__ for e in fired] == ["SlaRecalculated"]
    assert d.tick(1_750_000_089) == [] and len(d.tick(1_750_000_090)) == 1  # the new 0.5 warning
