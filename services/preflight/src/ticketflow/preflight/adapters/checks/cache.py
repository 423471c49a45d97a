"""Per-portal cache of check reports, with TTLs and coalescing of concurrent runs for one portal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ticketflow.preflight.domain.checks import PortalCheckReport


class CheckCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, PortalCheckReport]] = {}
        self._running: dict[str, asyncio.Task[PortalCheckReport]] = {}

    def get(self, key: str) -> PortalCheckReport | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, report = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        return report

    def put(self, key: str, report: PortalCheckReport, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, report)

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)

    async def run_once(
        self,
        key: str,
        run: Callable[[], Awaitable[PortalCheckReport]],
        ttl_for: Callable[[PortalCheckReport], float],
    ) -> PortalCheckReport:
        """The cached report, or one run shared by every caller asking for `key` meanwhile."""
        cached = self.get(key)
        if cached is not None:
            return cached
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(run())
            self._running[key] = task
            task.add_done_callback(lambda t: self._finish(key, t, ttl_for))
        # shield: one impatient caller's cancellation must not cancel the run the others wait for
        return await asyncio.shield(task)

    def _finish(
        self, key: str, task: asyncio.Task[PortalCheckReport], ttl_for: Callable[[PortalCheckReport], float]
    ) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            report = task.result()
            self.put(key, report, ttl_for(report))
