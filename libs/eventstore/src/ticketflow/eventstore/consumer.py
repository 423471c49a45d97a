"""Idempotent consumers: record (consumer, event id) in the same transaction as the effect, so a
redelivered event changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

_CLAIM = """
INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING true
"""


async def claim(conn: Any, consumer: str, event_id: uuid.UUID) -> bool:
    """True the first time this consumer sees this event (inside the caller's transaction)."""
    return bool(await conn.fetchval(_CLAIM, consumer, event_id))


@asynccontextmanager
async def first_time(pool: asyncpg.Pool, consumer: str, event_id: uuid.UUID) -> AsyncIterator[Any | None]:
    """`async with first_time(pool, "sla", event.event_id) as conn:` yields a connection inside an open
    transaction when the event is new, or None when it was already processed. The claim and
    whatever the body writes on `conn` commit together, or not at all."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn if await claim(conn, consumer, event_id) else None
