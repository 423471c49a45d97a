"""Helpers for tests that need a migrated event store in a fresh database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id
from ticketflow.contracts.ticket_events import TicketClosed
from ticketflow.eventstore import migrate


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
        NewEvent(new_event_id(), TicketClosed(ticket_id, reason=f"{label}{i}", actor="test"), now)
        for i in range(count)
    ]
