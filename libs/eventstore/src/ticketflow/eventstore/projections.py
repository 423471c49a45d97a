"""Projections: read models fed from the global log, with a stored checkpoint, rebuildable from zero.

Each batch of events is applied and its checkpoint stored in one transaction, so a crash never
applies an event twice or skips one. `rebuild` empties the read model and replays the whole log;
a rebuilt read model equals the live one (tests/eventstore/test_projections.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from tqdm import tqdm

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.eventstore.store import Checkpoint, EventStore
from ticketflow.eventstore.tracking import forget_checkpoint, load_checkpoint, save_checkpoint


class Projection(Protocol):
    name: str

    async def reset(self, conn: Any) -> None:
        """Empty the read model (for a rebuild)."""

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        """Apply a batch of events, in global-log order, inside the runner's transaction."""


class ProjectionRunner:
    def __init__(self, store: EventStore, projection: Projection, *, batch_size: int = 1000) -> None:
        self.store = store
        self.projection = projection
        self.batch_size = batch_size

    async def checkpoint(self) -> Checkpoint:
        return await load_checkpoint(self.store.pool, self.projection.name)

    async def step(self) -> int:
        """Apply one batch after the checkpoint; returns the number of events applied."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            after = await load_checkpoint(conn, self.projection.name, for_update=True)
            batch = await self.store.read_all(after, self.batch_size, conn=conn)
            if not batch:
                return 0
            await self.projection.apply(conn, [stored.envelope for stored in batch])
            await save_checkpoint(conn, self.projection.name, batch[-1].checkpoint)
            return len(batch)

    async def catch_up(self, progress: tqdm[Any] | None = None, *, max_wait_s: float = 60.0) -> int:
        """Apply everything committed before this call. An empty batch alone does not mean "done":
        a transaction still open on the server holds the visible log back, so wait it out."""
        target = await self.store.head()
        deadline = asyncio.get_running_loop().time() + max_wait_s
        total = 0
        while await self.checkpoint() < target:
            applied = await self.step()
            total += applied
            if progress is not None:
                progress.update(applied)
            if not applied:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.projection.name}: log still held back after {max_wait_s}s")
                await asyncio.sleep(0.01)
        return total

    async def rebuild(self, *, show_progress: bool = False) -> int:
        async with self.store.pool.acquire() as conn, conn.transaction():
            await self.projection.reset(conn)
            await forget_checkpoint(conn, self.projection.name)
        total = await self.store.count() if show_progress else None
        with tqdm(total=total, unit="ev", desc=f"rebuild {self.projection.name}", disable=not show_progress) as bar:
            return await self.catch_up(bar)

    async def run(self, stop: asyncio.Event, idle_sleep: float = 0.05) -> None:
        while not stop.is_set():
            if await self.step() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle_sleep)
