"""The asyncio firing loop: sleeps until the next due timer, is woken early by an earlier schedule.

No ticking: between bursts the loop makes exactly one wake-up per distinct due time. Under a burst
each wake-up pops everything already due in one batch, so a slow sink makes batches larger rather
than making the loop fall behind timer by timer (burst lateness: `make bench-sla`,
tests/load/sla/timer_bench_burst.py). The clock is injectable: `SystemClock` here, a manual one in
tests (tests/sla/sla_clock.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ticketflow.sla.timers.wheel import FiredTimers


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        """Return at ``deadline_ms`` (never, if None) or as soon as ``wake`` is set."""


class TimerSource(Protocol):
    def pop_due_batch(self, now_ms: int) -> FiredTimers: ...

    def next_due_ms(self) -> int | None: ...


class SystemClock:
    """Wall-clock epoch milliseconds; sleeps with the event loop's timer."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        if deadline_ms is None:
            await wake.wait()
            return
        delay_s = (deadline_ms - time.time_ns() / 1_000_000) / 1000
        if delay_s <= 0:
            return
        timer = asyncio.get_running_loop().call_later(delay_s, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()


class TimerLoop:
    """Drives a timer source: hands each due batch to ``on_fire`` (the Kafka produce in the service)."""

    def __init__(
        self,
        source: TimerSource,
        on_fire: Callable[[FiredTimers], Awaitable[None]],
        clock: Clock | None = None,
    ) -> None:
        self._source = source
        self._on_fire = on_fire
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._wake = asyncio.Event()
        self._sleeping_until: int | None = None
        self._stopping = False
        self.wakeups = 0  # loop iterations, for observing that idle time costs nothing

    def notify_scheduled(self, earliest_due_ms: int) -> None:
        """Call after scheduling: wakes the loop if the new deadline precedes the one it sleeps for."""
        if self._sleeping_until is None or earliest_due_ms < self._sleeping_until:
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self.wakeups += 1
            self._wake.clear()
            self._sleeping_until = None
            batch = self._source.pop_due_batch(self._clock.now_ms())
            if len(batch):
                await self._on_fire(batch)
                continue
            deadline = self._source.next_due_ms()
            self._sleeping_until = deadline
            if deadline is None or deadline > self._clock.now_ms():
                await self._clock.sleep_until(deadline, self._wake)
