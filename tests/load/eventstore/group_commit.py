"""Group commit, the event-store benchmark's "group" mode (no service uses it: kept here, with the
benchmark, as the alternative it measures): concurrent appenders share transactions, so one fsync
durably stores many appends.

Each caller awaits its own result. Workers take whatever requests are queued (up to a batch limit,
each stream at most once per batch) and append them with one `append_many`. If that batch fails
on a conflict, its requests are retried one by one, so one caller's conflict never fails another's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ticketflow.contracts.envelope import NewEvent
from ticketflow.eventstore.errors import ConcurrencyError, EventIdReused
from ticketflow.eventstore.store import AppendRequest, AppendResult, EventStore

_Item = tuple[AppendRequest, "asyncio.Future[AppendResult]"]


class GroupCommitter:
    def __init__(self, store: EventStore, *, workers: int = 4, max_events: int = 1000) -> None:
        self.store = store
        self.max_events = max_events
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work()) for _ in range(workers)]
        self._held: list[_Item] = []

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((AppendRequest(stream_id, expected_version, events), future))
        return await future

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def _take_batch(self, first: _Item) -> list[_Item]:
        batch, streams, events = [first], {first[0].stream_id}, len(first[0].events)
        while events < self.max_events and not self._queue.empty():
            item = self._queue.get_nowait()
            if item[0].stream_id in streams:
                self._held.append(item)  # same stream twice: the second must see the first committed
                continue
            batch.append(item)
            streams.add(item[0].stream_id)
            events += len(item[0].events)
        for item in self._held:
            self._queue.put_nowait(item)
        self._held.clear()
        return batch

    async def _work(self) -> None:
        while True:
            batch = self._take_batch(await self._queue.get())
            try:
                results = await self.store.append_many([request for request, _ in batch])
            except (ConcurrencyError, EventIdReused):
                await self._one_by_one(batch)
                continue
            except Exception as exc:  # a store outage: every caller gets it, and may retry
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[_Item]) -> None:
        for request, future in batch:
            try:
                result = await self.store.append(request.stream_id, request.expected_version, request.events)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
