"""Projections: read models fed from the global log, with a stored checkpoint, rebuildable from zero.

Each batch of events is applied and its checkpoint stored in one transaction, so a crash never
applies an event twice or skips one. `rebuild` empties the read model and replays the whole log;
a rebuilt read model equals the live one (tests/projector/test_projection.py). A rebuild holds the
projection's advisory lock from the reset to the head, so the runners of every instance (which skip a
batch while it is held) neither apply an event of the replay twice nor take a part of its count."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
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


def rebuild_lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key a rebuild of projection `name` holds."""
    digest = hashlib.blake2b(f"ticketflow-projection:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ProjectionRunner:
    def __init__(self, store: EventStore, projection: Projection, *, batch_size: int = 1000) -> None:
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.lock_key = rebuild_lock_key(projection.name)

    async def checkpoint(self, conn: Any = None) -> Checkpoint:
        return await load_checkpoint(conn if conn is not None else self.store.pool, self.projection.name)

    async def step(self, conn: Any = None) -> int:
        """Apply one batch after the checkpoint; returns the number of events applied (0 while a rebuild
        on another connection holds the projection; on the rebuild's own connection the lock is re-entrant)."""
        async with _connection(self.store, conn) as db, db.transaction():
            if not await db.fetchval("SELECT pg_try_advisory_xact_lock($1)", self.lock_key):
                return 0
            after = await load_checkpoint(db, self.projection.name, for_update=True)
            batch = await self.store.read_all(after, self.batch_size, conn=db)
            if not batch:
                return 0
            await self.projection.apply(db, [stored.envelope for stored in batch])
            await save_checkpoint(db, self.projection.name, batch[-1].checkpoint)
            return len(batch)

    async def catch_up(self, progress: tqdm[Any] | None = None, *, max_wait_s: float = 60.0, conn: Any = None) -> int:
        """Apply everything committed before this call. An empty batch alone does not mean "done":
        a transaction still open on the server holds the visible log back, so wait it out."""
        target = await self.store.head()
        deadline = asyncio.get_running_loop().time() + max_wait_s
        total = 0
        while await self.checkpoint(conn) < target:
            applied = await self.step(conn)
            total += applied
            if progress is not None:
                progress.update(applied)
            if not applied:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.projection.name}: log still held back after {max_wait_s}s")
                await asyncio.sleep(0.01)
        return total

    async def rebuild(self, *, show_progress: bool = False) -> int:
        """Empty the read model and replay the log into it up to the head; returns the events applied.
        Waits for a batch running elsewhere, then holds the projection's lock until the head is reached
        (the pool's reset of the connection releases it too, should the unlock not run)."""
        async with self.store.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", self.lock_key)
            try:
                async with conn.transaction():
                    await self.projection.reset(conn)
                    await forget_checkpoint(conn, self.projection.name)
                total = await self.store.count() if show_progress else None
                desc = f"rebuild {self.projection.name}"
                with tqdm(total=total, unit="ev", desc=desc, disable=not show_progress) as bar:
                    return await self.catch_up(bar, conn=conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self.lock_key)

    async def run(self, stop: asyncio.Event, idle_sleep: float = 0.05) -> None:
        while not stop.is_set():
            if await self.step() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=idle_sleep)


@contextlib.asynccontextmanager
async def _connection(store: EventStore, conn: Any) -> AsyncIterator[Any]:
    """The caller's connection, or one of the pool's for as long as the block runs."""
    if conn is not None:
        yield conn
        return
    async with store.pool.acquire() as acquired:
        yield acquired
