"""Tracking: what a consumer has already processed, in the same transaction as its effects.

- Idempotent consumers claim each event id: `first_time` records (consumer, event id) in
  `processed_events` in the transaction that carries the effect, so a redelivered event changes
  nothing; `already_processed` asks without claiming (to skip work before opening a transaction).
- Followers of the global log (projections) keep a checkpoint per name in `projection_checkpoints`,
  saved in the transaction that applied the batch: a crash never applies an event twice or skips one.
  `lock_checkpoint` creates the row when it is missing before locking it, so two followers of one name
  (two projector instances, or a runner and a rebuild's swap) always exclude each other: a lock on a
  row that does not exist would lock nothing. Every saved checkpoint is announced on the channel
  `CHECKPOINTS_CHANNEL` (NOTIFY, delivered at commit) for readers that wait for a position.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ticketflow.eventstore.store import Checkpoint

_CLAIM = """
INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING true
"""
_PROCESSED = "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2"
_LOAD = "SELECT transaction_id::text AS transaction_id, position FROM projection_checkpoints WHERE projection = $1"
CHECKPOINTS_CHANNEL = "ticketflow_checkpoints"  # payload: "<name> <transaction id> <position>"
_SAVE = f"""
WITH saved AS (
    INSERT INTO projection_checkpoints (projection, transaction_id, position) VALUES ($1, $2::text::xid8, $3)
    ON CONFLICT (projection) DO UPDATE
    SET transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()
    RETURNING projection
)
SELECT pg_notify('{CHECKPOINTS_CHANNEL}', $1 || ' ' || $2 || ' ' || $3::bigint) FROM saved
"""
# Insert-or-lock in one statement: DO UPDATE locks the existing row (waiting for its holder), and after the
# wait returns the row as its holder committed it.
_LOCK = """
INSERT INTO projection_checkpoints AS c (projection, transaction_id, position) VALUES ($1, '0'::xid8, 0)
ON CONFLICT (projection) DO UPDATE SET projection = c.projection
RETURNING transaction_id::text AS transaction_id, position
"""
_FORGET = "DELETE FROM projection_checkpoints WHERE projection = $1"


async def claim(conn: Any, consumer: str, event_id: uuid.UUID) -> bool:
    """True the first time this consumer sees this event (inside the caller's transaction)."""
    return bool(await conn.fetchval(_CLAIM, consumer, event_id))


async def already_processed(db: Any, consumer: str, event_id: uuid.UUID) -> bool:
    """Whether the event was claimed already (a pool or a connection; no claim is made)."""
    return bool(await db.fetchval(_PROCESSED, consumer, event_id))


@asynccontextmanager
async def first_time(pool: asyncpg.Pool, consumer: str, event_id: uuid.UUID) -> AsyncIterator[Any | None]:
    """`async with first_time(pool, "sla", event.event_id) as conn:` yields a connection inside an open
    transaction when the event is new, or None when it was already processed. The claim and
    whatever the body writes on `conn` commit together, or not at all."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn if await claim(conn, consumer, event_id) else None


async def load_checkpoint(db: Any, name: str) -> Checkpoint:
    """A follower's place in the global log (the beginning when it has none), without locking."""
    row = await db.fetchrow(_LOAD, name)
    return Checkpoint(int(row["transaction_id"]), row["position"]) if row else Checkpoint()


async def lock_checkpoint(conn: Any, name: str) -> Checkpoint:
    """The follower's place, its row locked for the caller's transaction (created at the beginning of the
    log when missing): one holder of a name applies a batch at a time, the others wait here."""
    row = await conn.fetchrow(_LOCK, name)
    return Checkpoint(int(row["transaction_id"]), row["position"])


async def save_checkpoint(conn: Any, name: str, checkpoint: Checkpoint) -> None:
    """Store the follower's place (in the transaction that applied up to it) and announce it."""
    await conn.execute(_SAVE, name, str(checkpoint.transaction_id), checkpoint.position)


async def forget_checkpoint(conn: Any, name: str) -> None:
    await conn.execute(_FORGET, name)
