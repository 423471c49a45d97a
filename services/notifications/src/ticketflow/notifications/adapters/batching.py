"""Coalesce concurrent single-item calls into one batch call (group commit for the ledger).

Benchmark-driven (73b881f; `tests/load/notifications/bench_e2e.py` and `bench_delivery.py`,
docs/benchmarks.md "Notifications"): every delivery makes three ledger writes (claim, fence, record).
With tens of deliveries in flight, each as its own statement, the round trips and commits, not the SQL,
were the cost (asyncpg ≈ 33 % of the service's CPU; with this and aiohttp, 1.6 → 0.4 ms CPU a message). `Coalescer`
keeps the per-delivery API (`await submit(item) -> result`) and runs what was submitted in the same
event-loop turn, or while earlier batches were still running, as one call: no timer, so an idle
service adds no latency, and a busy one gets bigger batches.

- At most `max_inflight` batch calls run at once (each holds a pool connection); the rest wait and
  are taken by the next call, so batches grow with load.
- Two items with the same `key` never share a batch (one statement must not touch a row twice);
  the second waits for the next batch, which sees what the first did.
- The batch call answers one result or exception per item, in order; if it raises, every item of
  the batch gets the exception (a PostgreSQL outage: the callers retry or give up as before).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchCall = Callable[[list[T]], Awaitable[list[R | BaseException]]]


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        call: BatchCall[T, R],
        *,
        key: Callable[[T], Hashable],
        max_batch: int = 500,
        max_inflight: int = 4,
    ) -> None:
        self._call = call
        self._key = key
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._inflight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many batch calls were made (tests, benchmarks)
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)  # after everything already runnable in this turn has submitted
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._queue and self._inflight < self._max_inflight:
            batch: list[tuple[T, asyncio.Future[R]]] = []
            keys: set[Hashable] = set()
            held: list[tuple[T, asyncio.Future[R]]] = []
            while self._queue and len(batch) < self._max_batch:
                entry = self._queue.popleft()
                if entry[1].done():  # the caller was cancelled before its batch started
                    continue
                key = self._key(entry[0])
                (held if key in keys else batch).append(entry)
                keys.add(key)
            self._queue.extendleft(reversed(held))
            if not batch:
                break
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if held:  # the rest must wait for this batch: it touches the same rows
                break

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._call([item for item, _ in batch])
        except asyncio.CancelledError:  # shutting down: the callers are cancelled too
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._inflight -= 1
            if self._queue and not self._scheduled:
                self._start()
