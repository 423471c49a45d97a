"""Helpers for tests that need a migrated event store in a fresh database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id
from ticketflow.contracts.ticket_events import TicketClosed
from ticketflow.eventstore import Checkpoint, EventStore, StoredEvent, migrate


async def migrated_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply_all(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    assert pool is not None
    return pool


def some_events(ticket_id: uuid.UUID, count: int, label: str = "e") -> list[NewEvent]:
    """Cheap, distinct events for store tests (the store does not judge lifecycle rules)."""
    now = datetime.now(UTC)
    return [
        NewEvent(new_event_id(), TicketClosed(ticket_id, reason=f"{label}{i}", actor="test"), now) for i in range(count)
    ]


async def read_all_settled(
    store: EventStore, after: Checkpoint | None = None, max_wait_s: float = 30.0
) -> list[StoredEvent]:
    """The global log after `after`, up to everything committed before this call. Transactions still
    open anywhere on the server (other tests' databases too) hold the readable log back for a while;
    this waits them out instead of mistaking a delay for the end of the log."""
    after = after or Checkpoint()
    target = await store.head()
    deadline = asyncio.get_running_loop().time() + max_wait_s
    read: list[StoredEvent] = []
    while not read or read[-1].checkpoint < target:
        batch = await store.read_all(read[-1].checkpoint if read else after, limit=10_000)
        read.extend(batch)
        if not batch:
            if after >= target:
                return read
            assert asyncio.get_running_loop().time() < deadline, "the global log stayed held back"
            await asyncio.sleep(0.01)
    return read
