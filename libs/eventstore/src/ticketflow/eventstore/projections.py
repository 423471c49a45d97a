"""Projections: read models fed from the global log, each with its own stored checkpoint.

A runner applies a batch of events and saves its checkpoint in one transaction, so a crash never applies
an event twice or skips one. The batch starts by locking the checkpoint row (`tracking.lock_checkpoint`,
which creates it when missing): two runners of one projection, or a runner and a rebuild's swap, take
turns and never apply the same events twice. A rebuild never empties the live tables: it fills copies
and swaps them in (`ticketflow.eventstore.rebuild`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.eventstore.store import Checkpoint, EventStore
from ticketflow.eventstore.tracking import load_checkpoint, lock_checkpoint, save_checkpoint


class Projection(Protocol):
    """A read model: its name (the checkpoint's), its tables (in the default schema; a rebuild fills copies
    of them in another schema and swaps them in together), and how a batch of events changes them."""

    name: str
    tables: tuple[str, ...]

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        """Apply a batch of events, in global-log order, inside the runner's transaction. Table names in
        its SQL are unqualified: a rebuild runs it with its copies first on the search path."""


class ProjectionRunner:
    """Follows the global log for one projection. `checkpoint` names the stored checkpoint (default: the
    projection's name); `conn` pins the runner to one connection (a rebuild's, with its search path)."""

    def __init__(
        self,
        store: EventStore,
        projection: Projection,
        *,
        batch_size: int = 1000,
        checkpoint: str | None = None,
        conn: Any = None,
    ) -> None:
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.name = checkpoint or projection.name
        self._conn = conn

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._conn is not None:
            yield self._conn
        else:
            async with self.store.pool.acquire() as conn:
                yield conn

    async def checkpoint(self) -> Checkpoint:
        async with self._connection() as conn:
            return await load_checkpoint(conn, self.name)

    async def step(self) -> int:
        """Apply one batch after the checkpoint; returns the number of events applied. With nothing new it
        writes nothing (no lock, no transaction id): an idle projector polls without loading the server."""
        async with self._connection() as conn:
            if not await self.store.read_all(await load_checkpoint(conn, self.name), 1, conn=conn):
                return 0
            async with conn.transaction():
                after = await lock_checkpoint(conn, self.name)
                batch = await self.store.read_all(after, self.batch_size, conn=conn)
                if not batch:
                    return 0
                await self.projection.apply(conn, [stored.envelope for stored in batch])
                await save_checkpoint(conn, self.name, batch[-1].checkpoint)
                return len(batch)

    async def catch_up(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        until: Checkpoint | None = None,
        max_wait_s: float = 60.0,
    ) -> int:
        """Apply everything committed before this call (or up to `until`). An empty batch alone does not
        mean "done": a transaction still open on the server holds the visible log back, so wait it out."""
        target = until if until is not None else await self.store.head()
        deadline = asyncio.get_running_loop().time() + max_wait_s
        total = 0
        while await self.checkpoint() < target:
            applied = await self.step()
            total += applied
            if progress is not None and applied:
                progress(applied)
            if not applied:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.projection.name}: log still held back after {max_wait_s}s")
                await asyncio.sleep(0.01)
        return total

    async def run(self, stop: asyncio.Event, idle_sleep: float = 0.05) -> None:
        while not stop.is_set():
            if await self.step() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle_sleep)
