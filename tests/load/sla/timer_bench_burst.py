"""Burst firing: N timers due within a short window (the queue opening at 10:00 Monday).

Lateness is taken where a fired batch (or, for per-timer callbacks, a single timer) is handed to
the sink, which stands in for the Kafka produce: handoff wall time minus the deadline. The sink
only appends; percentiles are computed after the run with an HDR histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from timer_bench_throughput import DAY_MS, HeapTimers

from ticketflow.sla.timers import FiredTimers, TimerLoop, TimerSource, TimerWheel

Result = dict[str, Any]
Array = np.ndarray  # type: ignore[type-arg]
GIVE_UP_AFTER_S = 60


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def burst_deadlines(count: int, spread_ms: int, lead_ms: int) -> Array:
    start = now_ms() + lead_ms
    return start + np.arange(count, dtype=np.int64) * spread_ms // max(count, 1)


def summarise(handoff_ns: Array, due_ms: Array, expected: int, batches: int, ready_ms: int) -> Result:
    """Lateness percentiles (ms) and the firing rate: fired / (last handoff - first deadline)."""
    fired = len(due_ms)
    result: Result = {"fired": fired, "expected": expected, "batches": batches}
    first_due = int(due_ms.min()) if fired else 0
    result["scheduled_in_time"] = ready_ms < first_due  # all timers were in before the first fired
    if not fired:
        return result
    lateness_us = handoff_ns // 1_000 - due_ms * 1_000
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    values, counts = np.unique(np.maximum(lateness_us, 1), return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        histogram.record_value(value, count)
    window_s = max(int(handoff_ns.max()) / 1e6 - first_due, 0.001) / 1_000
    result.update(
        rate_per_s=fired / window_s,
        p50_ms=histogram.get_value_at_percentile(50) / 1_000,
        p99_ms=histogram.get_value_at_percentile(99) / 1_000,
        max_ms=int(lateness_us.max()) / 1_000,
        early=int((lateness_us < 0).sum()),
    )
    return result


async def wait_until(event: asyncio.Event, deadline_ms: int) -> None:
    """Wait for ``event``, giving up at ``deadline_ms`` (then the result shows fired < expected)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(deadline_ms - now_ms(), 0) / 1000)


async def _run_loop(source: TimerSource, count: int, deadline_ms: int) -> tuple[list[int], list[Array]]:
    handoff_ns: list[int] = []
    fired_due: list[Array] = []
    fired = 0
    all_fired = asyncio.Event()

    async def sink(batch: FiredTimers) -> None:
        nonlocal fired
        handoff_ns.append(time.time_ns())
        fired_due.append(batch.due_ms)
        fired += len(batch)
        if fired >= count:
            all_fired.set()

    loop = TimerLoop(source, sink)
    task = asyncio.create_task(loop.run())
    await wait_until(all_fired, deadline_ms)
    loop.stop()
    await task
    return handoff_ns, fired_due


def _batched_result(handoffs: list[int], dues: list[Array], count: int, ready_ms: int) -> Result:
    if not dues:
        return summarise(np.empty(0, np.int64), np.empty(0, np.int64), count, 0, ready_ms)
    times = np.repeat(np.array(handoffs, np.int64), [len(d) for d in dues])
    return summarise(times, np.concatenate(dues), count, len(dues), ready_ms)


def wheel_burst(count: int, spread_ms: int, lead_ms: int, background: int) -> Result:
    async def run() -> Result:
        wheel = TimerWheel(count + background, now_ms=now_ms())
        if background:  # live timers days away that the burst must not be slowed by
            far = now_ms() + DAY_MS + np.random.default_rng(5).integers(0, 4 * DAY_MS, background)
            wheel.schedule_many(np.arange(background, dtype=np.int64), far)
        dues = burst_deadlines(count, spread_ms, lead_ms)
        wheel.schedule_many(np.arange(count, dtype=np.int64), dues)
        ready = now_ms()
        handoffs, fired = await _run_loop(wheel, count, int(dues.max()) + GIVE_UP_AFTER_S * 1000)
        return _batched_result(handoffs, fired, count, ready) | {"background": background}

    return asyncio.run(run())


def heap_burst(count: int, spread_ms: int, lead_ms: int) -> Result:
    async def run() -> Result:
        heap = HeapTimers()
        dues = burst_deadlines(count, spread_ms, lead_ms)
        for key, due in enumerate(dues.tolist()):
            heap.schedule(key, due)
        ready = now_ms()
        handoffs, fired = await _run_loop(heap, count, int(dues.max()) + GIVE_UP_AFTER_S * 1000)
        return _batched_result(handoffs, fired, count, ready)

    return asyncio.run(run())


async def _collect_per_timer(count: int, dues: Array, schedule: Callable[[Callable[[int], None]], None]) -> Result:
    """Drive a per-timer-callback scheduler; each callback is one handoff."""
    handoff_ns: list[int] = []
    fired_due: list[int] = []
    all_fired = asyncio.Event()

    def record(due: int) -> None:
        handoff_ns.append(time.time_ns())
        fired_due.append(due)
        if len(fired_due) >= count:
            all_fired.set()

    schedule(record)
    ready = now_ms()
    await wait_until(all_fired, int(dues.max()) + GIVE_UP_AFTER_S * 1000)
    times, due = np.array(handoff_ns, np.int64), np.array(fired_due, np.int64)
    return summarise(times, due, count, len(fired_due), ready)


def call_later_burst(count: int, spread_ms: int, lead_ms: int) -> Result:
    async def run() -> Result:
        loop = asyncio.get_running_loop()
        dues = burst_deadlines(count, spread_ms, lead_ms)

        def schedule(record: Callable[[int], None]) -> None:
            # Convert wall-clock deadlines to loop time once, so slow scheduling does not shift them.
            wall_minus_loop = time.time() - loop.time()
            for due in dues.tolist():
                loop.call_at(due / 1000 - wall_minus_loop, record, due)

        return await _collect_per_timer(count, dues, schedule)

    return asyncio.run(run())


def apscheduler_burst(count: int, spread_ms: int, lead_ms: int) -> Result:
    from apscheduler.executors.asyncio import AsyncIOExecutor
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def run() -> Result:
        scheduler = AsyncIOScheduler(
            executors={"default": AsyncIOExecutor()},
            job_defaults={"misfire_grace_time": None, "coalesce": False},
            timezone=UTC,
        )
        scheduler.start()
        dues = burst_deadlines(count, spread_ms, lead_ms)

        def schedule(record: Callable[[int], None]) -> None:
            async def fire(due: int) -> None:
                record(due)

            for due in dues.tolist():
                scheduler.add_job(fire, "date", run_date=datetime.fromtimestamp(due / 1000, UTC), args=[due])

        result = await _collect_per_timer(count, dues, schedule)
        scheduler.shutdown(wait=False)
        return result

    return asyncio.run(run())
