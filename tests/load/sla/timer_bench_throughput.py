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
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from ticketflow.sla.timers import FiredTimers, TimerWheel

DAY_MS = 86_400_000
Result = dict[str, Any]


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def deadlines(count: int, now_ms: int, seed: int = 7) -> np.ndarray:  # type: ignore[type-arg]
    return now_ms + np.random.default_rng(seed).integers(1_000, 5 * DAY_MS, count, dtype=np.int64)


def engine(timers: int, batch: int, singles: int, snapshot_dir: str) -> Result:
    now = time.time_ns() // 1_000_000
    keys = np.arange(timers, dtype=np.int64)
    dues = deadlines(timers, now)
    kinds = (keys % 4).astype(np.int8)
    before = rss()
    wheel = TimerWheel(timers, now_ms=now)
    handles = np.empty(timers, np.int64)  # the caller keeps handles: counted in the RSS delta
    began = time.perf_counter()
    for i in range(0, timers, batch):
        handles[i : i + batch] = wheel.schedule_many(keys[i : i + batch], dues[i : i + batch], kinds[i : i + batch])
    schedule_s = time.perf_counter() - began
    resident = rss() - before
    nbytes = wheel.nbytes()

    # One call per timer, on top of the loaded wheel.
    single_dues = dues[:singles].tolist()
    began = time.perf_counter()
    single_handles = [wheel.schedule(key, due) for key, due in enumerate(single_dues)]
    single_schedule_s = time.perf_counter() - began
    began = time.perf_counter()
    for handle in single_handles:
        wheel.cancel(handle)
    single_cancel_s = time.perf_counter() - began

    path = Path(snapshot_dir) / "timers.snapshot"
    began = time.perf_counter()
    path.write_bytes(wheel.snapshot())
    snapshot_s = time.perf_counter() - began
    began = time.perf_counter()
    restored = TimerWheel.restore(path.read_bytes())
    restore_s = time.perf_counter() - began
    assert len(restored) == timers
    snapshot_bytes = path.stat().st_size
    path.unlink()
    del restored
    gc.collect()

    shuffled = handles[np.random.default_rng(3).permutation(timers)]
    began = time.perf_counter()
    for i in range(0, timers, batch):
        wheel.cancel_many(shuffled[i : i + batch])
    cancel_s = time.perf_counter() - began
    assert len(wheel) == 0
    return {
        "n": timers,
        "schedule_per_s": timers / schedule_s,
        "cancel_per_s": timers / cancel_s,
        "single_n": singles,
        "single_schedule_per_s": singles / single_schedule_s,
        "single_cancel_per_s": singles / single_cancel_s,
        "rss_per_timer": resident / timers,
        "nbytes_per_timer": nbytes / timers,
        "snapshot_s": snapshot_s,
        "restore_s": restore_s,
        "snapshot_bytes": snapshot_bytes,
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
    began = time.perf_counter()
    entries = [timers_heap.schedule(key, due) for key, due in enumerate(dues)]
    schedule_s = time.perf_counter() - began
    resident = rss() - before
    order = np.random.default_rng(3).permutation(timers).tolist()
    shuffled = [entries[i] for i in order]
    began = time.perf_counter()
    for entry in shuffled:
        timers_heap.cancel(entry)
    timers_heap.next_due_ms()  # tombstones are paid for when the top is reached
    cancel_s = time.perf_counter() - began
    return {"n": timers, "schedule_per_s": timers / schedule_s, "cancel_per_s": timers / cancel_s,
            "rss_per_timer": resident / timers}  # fmt: skip


def call_later_baseline(timers: int) -> Result:
    async def run() -> Result:
        loop = asyncio.get_running_loop()
        now_s = time.time()
        delays = ((deadlines(timers, int(now_s * 1000)) / 1000.0) - now_s).tolist()
        before = rss()
        began = time.perf_counter()
        handles = [loop.call_later(delay, print, key) for key, delay in enumerate(delays)]
        schedule_s = time.perf_counter() - began
        resident = rss() - before
        order = np.random.default_rng(3).permutation(timers).tolist()
        shuffled = [handles[i] for i in order]
        began = time.perf_counter()
        for handle in shuffled:
            handle.cancel()
        await asyncio.sleep(0)  # the loop purges its cancelled timers here: part of the cancel cost
        cancel_s = time.perf_counter() - began
        return {"n": timers, "schedule_per_s": timers / schedule_s, "cancel_per_s": timers / cancel_s,
                "rss_per_timer": resident / timers}  # fmt: skip

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
        began = time.perf_counter()
        for key, run_date in enumerate(run_dates):
            scheduler.add_job(fire, "date", run_date=run_date, args=[key], id=str(key))
        schedule_s = time.perf_counter() - began
        resident = rss() - before
        order = np.random.default_rng(3).permutation(timers).tolist()
        began = time.perf_counter()
        for key in order:
            scheduler.remove_job(str(key))
        cancel_s = time.perf_counter() - began
        scheduler.shutdown(wait=False)
        return {"n": timers, "schedule_per_s": timers / schedule_s, "cancel_per_s": timers / cancel_s,
                "rss_per_timer": resident / timers}  # fmt: skip

    return asyncio.run(run())
