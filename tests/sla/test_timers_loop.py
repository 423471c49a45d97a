"""The firing loop on a manual clock, plus example-based checks of the wheel's edges."""

from __future__ import annotations

import asyncio

import numpy as np
from sla_clock import ManualClock

from ticketflow.sla.timers import FiredTimers, SystemClock, TimerLoop, TimerWheel

T0 = 1_700_000_000_000


async def yield_to_loop(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class Sink:
    def __init__(self, clock: ManualClock | SystemClock) -> None:
        self.clock = clock
        self.batches: list[tuple[int, list[int]]] = []

    async def __call__(self, batch: FiredTimers) -> None:
        self.batches.append((self.clock.now_ms(), sorted(batch.keys.tolist())))


async def test_loop_fires_each_batch_when_due_and_sleeps_between() -> None:
    clock = ManualClock(T0)
    wheel = TimerWheel(now_ms=T0)
    sink = Sink(clock)
    loop = TimerLoop(wheel, sink, clock)
    wheel.schedule_many(np.array([1, 2, 3], np.int64), np.array([T0 + 100, T0 + 100, T0 + 5_000], np.int64))
    task = asyncio.create_task(loop.run())
    await yield_to_loop()
    wakeups_while_idle = loop.wakeups
    clock.advance(99)
    await yield_to_loop()
    assert sink.batches == []
    assert loop.wakeups == wakeups_while_idle  # no ticking: an early clock move does not wake it
    clock.advance(1)
    await yield_to_loop()
    assert sink.batches == [(T0 + 100, [1, 2])]
    clock.advance_to(T0 + 10_000)
    await yield_to_loop()
    assert sink.batches[1] == (T0 + 10_000, [3])
    loop.stop()
    await task


async def test_an_earlier_schedule_wakes_the_sleeping_loop() -> None:
    clock = ManualClock(T0)
    wheel = TimerWheel(now_ms=T0)
    sink = Sink(clock)
    loop = TimerLoop(wheel, sink, clock)
    wheel.schedule(1, T0 + 60_000)
    task = asyncio.create_task(loop.run())
    await yield_to_loop()
    wheel.schedule(2, T0 + 10)
    loop.notify_scheduled(T0 + 10)
    await yield_to_loop()
    clock.advance(10)
    await yield_to_loop()
    assert sink.batches == [(T0 + 10, [2])]
    wheel.schedule(3, T0 - 1)  # already past: fires at once
    loop.notify_scheduled(T0 - 1)
    await yield_to_loop()
    assert sink.batches[-1] == (T0 + 10, [3])
    loop.stop()
    await task


async def test_an_empty_wheel_sleeps_until_something_is_scheduled() -> None:
    clock = ManualClock(T0)
    wheel = TimerWheel(now_ms=T0)
    sink = Sink(clock)
    loop = TimerLoop(wheel, sink, clock)
    task = asyncio.create_task(loop.run())
    await yield_to_loop()
    clock.advance(3_600_000)
    await yield_to_loop()
    assert loop.wakeups == 1
    wheel.schedule(7, T0)
    loop.notify_scheduled(T0)
    await yield_to_loop()
    assert sink.batches == [(T0 + 3_600_000, [7])]
    loop.stop()
    await task


async def test_system_clock_loop_fires_real_timers() -> None:
    clock = SystemClock()
    now = clock.now_ms()
    wheel = TimerWheel(now_ms=now)
    sink = Sink(clock)
    loop = TimerLoop(wheel, sink, clock)
    task = asyncio.create_task(loop.run())
    wheel.schedule_many(np.arange(100, dtype=np.int64), now + np.arange(100, dtype=np.int64) % 30)
    loop.notify_scheduled(now)
    for _ in range(200):
        if sum(len(keys) for _, keys in sink.batches) == 100:
            break
        await asyncio.sleep(0.01)
    loop.stop()
    await task
    fired = [key for _, keys in sink.batches for key in keys]
    assert sorted(fired) == list(range(100))
    assert all(at >= now + min(keys) % 30 for at, keys in sink.batches)  # never early


def test_far_future_timers_cascade_down_and_fire_exactly() -> None:
    wheel = TimerWheel(now_ms=T0)
    years = 30 * 365 * 86_400_000
    dues = np.array([T0 + years, T0 + years + 1, T0 + 5 * 86_400_000, T0 + 64**3], np.int64)
    wheel.schedule_many(np.arange(4, dtype=np.int64), dues)
    for expected_key, due in sorted(enumerate(dues.tolist()), key=lambda pair: pair[1]):
        assert wheel.next_due_ms() == due
        assert wheel.pop_due(due - 1).tolist() == []
        assert wheel.pop_due(due).tolist() == [expected_key]
    assert wheel.next_due_ms() is None
    assert len(wheel) == 0


def test_capacity_grows_and_handles_of_fired_or_cancelled_timers_stay_dead() -> None:
    wheel = TimerWheel(1, now_ms=T0)
    handles = wheel.schedule_many(np.arange(1000, dtype=np.int64), T0 + np.arange(1000, dtype=np.int64))
    assert len(wheel) == 1000
    assert wheel.cancel_many(handles[:500]).all()
    assert sorted(wheel.pop_due(T0 + 999).tolist()) == list(range(500, 1000))
    reused = wheel.schedule_many(np.arange(1000, dtype=np.int64), np.full(1000, T0 + 10**6, np.int64))
    assert not wheel.cancel_many(handles).any()  # slots are reused; old handles must not hit them
    assert len(wheel) == 1000
    assert wheel.cancel_many(reused).all()
    assert len(wheel) == 0


def test_compaction_drops_stale_entries() -> None:
    wheel = TimerWheel(now_ms=T0)
    wheel.compact_slack = 0
    handles = wheel.schedule_many(np.arange(10_000, dtype=np.int64), T0 + 10**7 + np.arange(10_000))
    wheel.cancel_many(handles[:9_000])
    before = wheel.nbytes()
    wheel.cancel_many(handles[9_000:9_990])
    assert wheel.nbytes() < before
    assert sorted(wheel.pop_due(T0 + 10**8).tolist()) == list(range(9_990, 10_000))


def test_draining_a_large_random_wheel_matches_sorting_the_deadlines() -> None:
    """100k deadlines over 5 days, a third cancelled, drained by next_due/pop: exact and never early."""
    rng = np.random.default_rng(11)
    count = 100_000
    dues = T0 + rng.integers(-1_000, 5 * 86_400_000, count)
    wheel = TimerWheel(1_000, now_ms=T0)
    handles = wheel.schedule_many(np.arange(count, dtype=np.int64), dues)
    cancelled = rng.random(count) < 0.33
    assert wheel.cancel_many(handles[cancelled]).all()
    remaining = np.sort(dues[~cancelled])
    fired_upto = 0
    now = T0
    while (next_due := wheel.next_due_ms()) is not None:
        assert next_due == max(int(remaining[fired_upto]), T0)
        now = next_due + int(rng.integers(0, 3_600_000))
        fired = np.sort(wheel.pop_due_batch(now).due_ms)
        expected_end = int(np.searchsorted(remaining, now, side="right"))
        assert fired.tolist() == remaining[fired_upto:expected_end].tolist()
        fired_upto = expected_end
    assert fired_upto == len(remaining)
