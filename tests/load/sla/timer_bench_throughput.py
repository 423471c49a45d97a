"""Schedule / cancel throughput and resident memory per timer: the engine and the in-process baselines.

Each function runs in a fresh process (the caller spawns it), so RSS deltas are not polluted by
earlier phases. Deadlines are spread uniformly over 5 days from now; cancels go in random order.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psutil

from ticketflow.sla.timers import FiredTimers, TimerWheel

DAY_MS = 86_400_000
Result = dict[str, Any]


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


class Stopwatch:
    """Wall and process-CPU seconds of a block: on a shared machine CPU/wall shows the share we got."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def rates(count: int, schedule: Stopwatch, cancel: Stopwatch) -> Result:
    return {
        "n": count,
        "schedule_per_s": count / schedule.wall,
        "cancel_per_s": count / cancel.wall,
        "schedule_per_cpu_s": count / schedule.cpu,
        "cancel_per_cpu_s": count / cancel.cpu,
    }


def deadlines(count: int, now_ms: int, seed: int = 7) -> np.ndarray:  # type: ignore[type-arg]
    return now_ms + np.random.default_rng(seed).integers(1_000, 5 * DAY_MS, count, dtype=np.int64)


def engine(timers: int, batch: int, singles: int) -> Result:
    now = time.time_ns() // 1_000_000
    keys = np.arange(timers, dtype=np.int64)
    dues = deadlines(timers, now)
    kinds = (keys % 4).astype(np.int8)
    before = rss()
    wheel = TimerWheel(timers + singles, now_ms=now)  # sized for the backlog: no growth mid-measurement
    handles = np.empty(timers, np.int64)  # the caller keeps handles: counted in the RSS delta
    with Stopwatch() as schedule:
        for i in range(0, timers, batch):
            part = slice(i, i + batch)
            handles[part] = wheel.schedule_many(keys[part], dues[part], kinds[part])
    resident = rss() - before
    nbytes = wheel.nbytes()

    # One call per timer, on top of the loaded wheel.
    single_dues = dues[:singles].tolist()
    with Stopwatch() as single_schedule:
        single_handles = [wheel.schedule(key, due) for key, due in enumerate(single_dues)]
    with Stopwatch() as single_cancel:
        for handle in single_handles:
            wheel.cancel(handle)

    shuffled = handles[np.random.default_rng(3).permutation(timers)]
    with Stopwatch() as cancel:
        for i in range(0, timers, batch):
            wheel.cancel_many(shuffled[i : i + batch])
    assert len(wheel) == 0
    return rates(timers, schedule, cancel) | {
        "single_n": singles,
        "single_schedule_per_s": singles / single_schedule.wall,
        "single_cancel_per_s": singles / single_cancel.wall,
        "single_schedule_per_cpu_s": singles / single_schedule.cpu,
        "single_cancel_per_cpu_s": singles / single_cancel.cpu,
        "rss_per_timer": resident / timers,
        "nbytes_per_timer": nbytes / timers,
    }


class HeapTimers:
    """Baseline: heapq of [due, seq, key, live] entries; cancel marks the entry (a tombstone)."""

    def __init__(self) -> None:
        self.heap: list[list[int]] = []
        self.seq = itertools.count()
        self.live = 0

    def schedule(self, key: int, due_ms: int) -> list[int]:
        entry = [due_ms, next(self.seq), key, 1]
        heapq.heappush(self.heap, entry)
        self.live += 1
        return entry

    def cancel(self, entry: list[int]) -> bool:
        if not entry[3]:
            return False
        entry[3] = 0
        self.live -= 1
        return True

    def pop_due_batch(self, now_ms: int) -> FiredTimers:
        """Same contract as the wheel's, so the same TimerLoop drives both."""
        keys: list[int] = []
        dues: list[int] = []
        heap = self.heap
        while heap and heap[0][0] <= now_ms:
            due, _, key, live = heapq.heappop(heap)
            if live:
                keys.append(key)
                dues.append(due)
                self.live -= 1
        no_payload = np.zeros(len(keys), np.int8)
        return FiredTimers(np.array(keys, np.int64), no_payload, no_payload, np.array(dues, np.int64))

    def next_due_ms(self) -> int | None:
        heap = self.heap
        while heap and not heap[0][3]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None


def heap_baseline(timers: int) -> Result:
    now = time.time_ns() // 1_000_000
    dues = deadlines(timers, now).tolist()
    before = rss()
    timers_heap = HeapTimers()
    with Stopwatch() as schedule:
        entries = [timers_heap.schedule(key, due) for key, due in enumerate(dues)]
    resident = rss() - before
    order = np.random.default_rng(3).permutation(timers).tolist()
    shuffled = [entries[i] for i in order]
    with Stopwatch() as cancel:
        for entry in shuffled:
            timers_heap.cancel(entry)
        timers_heap.next_due_ms()  # tombstones are paid for when they reach the top
    return rates(timers, schedule, cancel) | {"rss_per_timer": resident / timers}


def call_later_baseline(timers: int) -> Result:
    async def run() -> Result:
        loop = asyncio.get_running_loop()
        now_s = time.time()
        delays = ((deadlines(timers, int(now_s * 1000)) / 1000.0) - now_s).tolist()
        before = rss()
        with Stopwatch() as schedule:
            handles = [loop.call_later(delay, print, key) for key, delay in enumerate(delays)]
        resident = rss() - before
        order = np.random.default_rng(3).permutation(timers).tolist()
        shuffled = [handles[i] for i in order]
        with Stopwatch() as cancel:
            for handle in shuffled:
                handle.cancel()
            await asyncio.sleep(0)  # the loop purges its cancelled timers here: part of the cancel cost
        return rates(timers, schedule, cancel) | {"rss_per_timer": resident / timers}

    return asyncio.run(run())


def apscheduler_baseline(timers: int) -> Result:
    from apscheduler.executors.asyncio import AsyncIOExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def fire(key: int) -> None:
        pass

    async def run() -> Result:
        scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"misfire_grace_time": None, "coalesce": False},
            timezone=UTC,
        )
        scheduler.start()
        now = time.time_ns() // 1_000_000
        run_dates = [datetime.fromtimestamp(due / 1000, UTC) for due in deadlines(timers, now).tolist()]
        before = rss()
        with Stopwatch() as schedule:
            for key, run_date in enumerate(run_dates):
                scheduler.add_job(fire, "date", run_date=run_date, args=[key], id=str(key))
        resident = rss() - before
        order = np.random.default_rng(3).permutation(timers).tolist()
        with Stopwatch() as cancel:
            for key in order:
                scheduler.remove_job(str(key))
        scheduler.shutdown(wait=False)
        return rates(timers, schedule, cancel) | {"rss_per_timer": resident / timers}

    return asyncio.run(run())
