"""Given/when/then: the desk configuration changes a policy's targets under running clocks (same
desk, track and priority, other minutes). The next decision or timer applies the policy's rule to
each clock whose target changed, recorded as `SlaRecalculated`; a restored partition is recalculated
before its timers are armed (on the real PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from sla_builders import Driver, FakeRules, customer, opened, passed, replied, waiting
from sla_clock import ManualClock
from sla_records import Ticket, count_of
from support.eventstore import migrated_pool

from ticketflow.contracts import sla_events as sla
from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters import checkpoints
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.domain import configuration_changed, firings

T = uuid.UUID("00000000-0000-7000-8000-0000000000bc")
B = 1_750_000_000


def started(rules: FakeRules) -> Driver:
    """First response 10 s, next response 10 s, resolution 40 s, 24/7, ladder 0.5 / 0.75 / 0.9."""
    return Driver(rules).given([(B, opened(T, "d", "t")), (B, passed(T))])


def test_a_longer_target_keeps_elapsed_time_and_moves_the_deadline() -> None:
    rules = FakeRules()
    d = started(rules)
    # Given resolution 40 s running since B; when the configuration makes it 100 s,
    rules.resolution = 100
    assert configuration_changed(d.state, rules)  # type: ignore[arg-type]
    events = [e.event for e in d.when(B + 3, customer(T))]
    # then the next decision recalculates it (keep_elapsed: same start, the new target),
    [change] = [e for e in events if isinstance(e, sla.SlaRecalculated)]
    assert (change.target, change.rule, change.target_seconds, change.elapsed_seconds) == (
        "resolution", "keep_elapsed", 100, None,
    )  # fmt: skip
    assert change.reason == "policy d/t/normal: resolution target 40s -> 100s"
    assert (int(change.old_deadline.timestamp()), int(change.new_deadline.timestamp())) == (B + 40, B + 100)
    # only the changed clock is recalculated, the timers follow, and the history replays to the same clocks.
    assert [e.target for e in events if isinstance(e, sla.SlaRecalculated)] == ["resolution"]
    assert d.state is not None and firings(d.state, rules)["resolution"] == (0, B + 50)
    assert d.replayed() == d.state.clocks and not configuration_changed(d.state, rules)
    # Ids are the change's own: the same change decided again (a replay) gives the same id.
    again = started(FakeRules())
    again.rules.resolution = 100  # type: ignore[attr-defined]
    assert [e.event_id for e in again.when(B + 3, customer(T)) if isinstance(e.event, sla.SlaRecalculated)] == [
        e.event_id for e in d.emitted if isinstance(e.event, sla.SlaRecalculated)
    ]


def test_every_step_of_a_configuration_flip_flop_is_recorded_with_an_id_of_its_own() -> None:
    """Issue 16: A -> B -> A -> B gave the third recalculation the id of the first, so the store took
    it for a replay and dropped it."""
    rules = FakeRules()
    d = started(rules)
    for n, resolution in enumerate((100, 40, 100, 40), start=1):  # A=40 s, B=100 s
        rules.resolution = resolution
        d.when(B + n, customer(T, n))
    changes = [e for e in d.emitted if isinstance(e.event, sla.SlaRecalculated) and e.event.target == "resolution"]
    assert [e.event.target_seconds for e in changes] == [100, 40, 100, 40]  # type: ignore[union-attr]
    assert len({e.event_id for e in changes}) == 4, "a step was given the id of an earlier one"
    assert d.state is not None and d.state.config_changes == 4 and d.replayed() == d.state.clocks


def test_a_shorter_target_found_by_a_timer_fires_what_is_now_due_under_the_restart_rule() -> None:
    rules = FakeRules(recalculation="restart")
    d = started(rules)
    # Given first response 10 s since B; when it becomes 4 s and the 0.5 timer (B + 5) fires,
    rules.first_response = 4
    fired = d.tick(B + 5)
    # then restart: the clock starts again at B + 5 with 4 s (deadline B + 9), nothing fired yet,
    [change] = [e.event for e in fired if isinstance(e.event, sla.SlaRecalculated)]
    assert (change.target, change.rule, int(change.new_deadline.timestamp())) == ("first_response", "restart", B + 9)
    assert [type(e.event).__name__ for e in fired] == ["SlaRecalculated"]
    # and the new ladder fires on the new clock: 0.5 at B + 7, the breach at B + 9.
    assert [type(e.event).__name__ for e in d.tick(B + 9) if e.event.target == "first_response"] == [
        "SlaWarning", "SlaWarning", "SlaWarning", "SlaBreached",
    ]  # fmt: skip
    assert d.replayed() == d.state.clocks  # type: ignore[union-attr]


def test_a_target_removed_from_the_policy_cancels_its_clock() -> None:
    rules = FakeRules()
    d = started(rules)
    rules.first_response = None
    events = [e.event for e in d.when(B + 2, customer(T))]
    [cancelled] = [e for e in events if isinstance(e, sla.SlaClockCancelled)]
    assert cancelled.target == "first_response" and cancelled.reason.endswith(": no target")
    assert d.state is not None and d.state.clock("first_response") is None
    assert d.replayed() == d.state.clocks


def test_an_unchanged_configuration_records_nothing() -> None:
    d = started(FakeRules())
    assert [e.event for e in d.when(B + 2, customer(T))] == []
    assert not configuration_changed(d.state, d.rules)  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await migrated_pool(pg_database)
    yield created
    await created.close()


@pytest.mark.pg
async def test_a_partition_restored_under_changed_targets_is_recalculated_before_its_timers_are_armed(
    pool: asyncpg.Pool,
) -> None:
    # Given a partition's ticket decided under resolution 40 s (first response 10 s) and checkpointed;
    rules = FakeRules()
    first = SlaEngine(rules, SlaWriter(EventStore(pool)), ManualClock(B * 1000))
    await first.assign(0, 0, {}, 0)
    t = Ticket()
    await first.handle(0, [0], [t.envelope(opened(t.ticket_id, "d", "t"), B)])
    await first.handle(0, [1], [t.envelope(passed(t.ticket_id), B)])
    kept = dict(first.partitions[0].tickets)
    await first.close()
    # when a new owner restores it after the configuration made resolution 400 s,
    rules.resolution = 400
    clock = ManualClock((B + 2) * 1000)
    second = SlaEngine(rules, SlaWriter(EventStore(pool)), clock)
    await second.assign(0, 2, dict(kept), 2)
    await second.drain()
    # then the restore recorded the recalculation and armed the resolution timer for the new target
    # (0.5 of 400 s at B + 200), not the old one (B + 20).
    assert await count_of(pool, "SlaRecalculated", t) == 1
    state = second.partitions[0].tickets[t.ticket_id]
    assert not configuration_changed(state, rules)
    armed = {due for _, _, due in second.partitions[0].armed.values()}
    assert armed == {B + 5, B + 200}  # first response unchanged (0.5 of 10 s), resolution moved
    # The checkpoint now records the configuration its states are consistent with,
    taken = second.snapshot_of(0)
    assert taken is not None and taken[3] == rules.fingerprint()
    await checkpoints.save(pool, "policy", 0, *taken)
    loaded = await checkpoints.load(pool, "policy", 0)
    assert loaded is not None and loaded.configuration == rules.fingerprint()
    await second.close()
    # and an owner restoring under that same configuration arms the states as they are: no recheck
    # (here a state deliberately left stale is trusted, which shows the per-ticket check is skipped).
    stale = {t.ticket_id: kept[t.ticket_id]}  # still resolution 40 s
    third = SlaEngine(rules, SlaWriter(EventStore(pool)), ManualClock((B + 2) * 1000))
    await third.assign(0, 2, stale, 2, rules.fingerprint())
    assert {due for _, _, due in third.partitions[0].armed.values()} == {B + 5, B + 20}
    await third.close()


targets = st.one_of(st.none(), st.integers(0, 120))
moves = st.lists(
    st.tuples(st.integers(0, 60), st.sampled_from(["customer", "replied", "waiting", "config", "tick"]), targets,
              st.sampled_from(["first_response", "next_response", "resolution"])),
    max_size=14,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(moves, st.sampled_from(["keep_elapsed", "restart"]))
def test_configuration_changes_leave_no_stale_target_and_replay_identically(
    script: list[tuple[int, str, int | None, str]], rule: str
) -> None:
    """Whatever the order of lifecycle events, timer firings and target changes, after each decision
    no pending clock counts against a target the configuration no longer has, and the SLA events
    alone rebuild the clocks."""
    rules = FakeRules(recalculation=rule)
    d, at = started(rules), B
    for n, (gap, kind, seconds, target) in enumerate(script):
        at += gap
        if kind == "config":
            setattr(rules, target, seconds)
            continue
        if kind == "tick":
            d.tick(at)
        else:
            d.when(at, {"customer": customer(T, n), "replied": replied(T, n), "waiting": waiting(T)}[kind])
        assert d.state is not None and not configuration_changed(d.state, rules)
        assert d.replayed() == d.state.clocks
    assert len({e.event_id for e in d.emitted}) == len(d.emitted)
