"""A manual clock for the SLA timer loop (`ticketflow.sla.timers.loop.Clock`): time moves only when a
test moves it."""

from __future__ import annotations

import asyncio


class ManualClock:
    """A clock for tests: time moves only through ``advance_to``/``advance``."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms
        self._sleepers: list[tuple[int | None, asyncio.Event]] = []

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, delta_ms: int) -> None:
        self.advance_to(self._now_ms + delta_ms)

    def advance_to(self, now_ms: int) -> None:
        self._now_ms = now_ms
        for deadline, wake in self._sleepers:
            if deadline is not None and deadline <= now_ms:
                wake.set()

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        if deadline_ms is not None and deadline_ms <= self._now_ms:
            return
        sleeper = (deadline_ms, wake)
        self._sleepers.append(sleeper)
        try:
            await wake.wait()
        finally:
            self._sleepers.remove(sleeper)
