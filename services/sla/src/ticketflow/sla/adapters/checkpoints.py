"""Partition checkpoints in PostgreSQL: the next offset to read, plus the SLA state of each of the
partition's tickets, written incrementally (only tickets changed since the previous checkpoint).
Tables `sla_partition_checkpoints` (a row per topic and partition) and `sla_ticket_states` (a row
per ticket), SLA migrations 0001-0005.

Timers are not stored: they are a function of the state (`domain.firings`), so a restore re-arms
them, and whatever fell due while nobody owned the partition fires at once. The offset row and the
changed ticket rows commit in one transaction, so a checkpoint is never half written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

import asyncpg
import msgspec

from ticketflow.sla.domain.state import TicketSla

ROWS_PER_STATEMENT = 20_000
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TicketSla)

_SAVE_OFFSET = """
INSERT INTO sla_partition_checkpoints (topic, partition, next_offset, tickets, configuration, written_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, tickets = EXCLUDED.tickets, configuration = EXCLUDED.configuration,
    written_at = now()
"""
_SAVE_STATES = """
INSERT INTO sla_ticket_states (topic, partition, ticket_id, state)
SELECT $1, $2, u.ticket_id, u.state FROM unnest($3::uuid[], $4::bytea[]) AS u(ticket_id, state)
ON CONFLICT (topic, partition, ticket_id) DO UPDATE SET state = EXCLUDED.state
"""
_DELETE_STATES = """
DELETE FROM sla_ticket_states WHERE topic = $1 AND partition = $2 AND ticket_id = ANY($3::uuid[])
"""
_LOAD_OFFSET = "SELECT next_offset, configuration FROM sla_partition_checkpoints WHERE topic = $1 AND partition = $2"
_LOAD_STATES = "SELECT state FROM sla_ticket_states WHERE topic = $1 AND partition = $2"


def encode_states(tickets: dict[uuid.UUID, TicketSla]) -> tuple[list[uuid.UUID], list[bytes]]:
    return list(tickets), [_encoder.encode(state) for state in tickets.values()]


def decode_states(rows: list[bytes]) -> dict[uuid.UUID, TicketSla]:
    states = (_decoder.decode(row) for row in rows)
    return {state.ticket_id: state for state in states}


async def save(
    pool: asyncpg.Pool,
    topic: str,
    partition: int,
    next_offset: int,
    changed: dict[uuid.UUID, TicketSla],
    removed: Collection[uuid.UUID] = (),
    configuration: str = "",
) -> None:
    """Record `next_offset`, the states of the tickets changed since the previous checkpoint, and
    drop the rows of the tickets pruned since (finished: closed, merged, refused). `configuration`:
    the `Rules.fingerprint` every kept state of the partition is consistent with ('' : unknown)."""
    ids, blobs = await asyncio.to_thread(encode_states, changed)
    gone = list(removed)
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, len(ids), ROWS_PER_STATEMENT):
            end = start + ROWS_PER_STATEMENT
            await conn.execute(_SAVE_STATES, topic, partition, ids[start:end], blobs[start:end])
        for start in range(0, len(gone), ROWS_PER_STATEMENT):
            await conn.execute(_DELETE_STATES, topic, partition, gone[start : start + ROWS_PER_STATEMENT])
        await conn.execute(_SAVE_OFFSET, topic, partition, next_offset, len(ids), configuration)


class Checkpoint(NamedTuple):
    next_offset: int
    tickets: dict[uuid.UUID, TicketSla]
    configuration: str  # the `Rules.fingerprint` the states are consistent with ('': unknown)


async def load(pool: asyncpg.Pool | Any, topic: str, partition: int) -> Checkpoint | None:
    """The latest checkpoint of the partition; None when it never had one."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow(_LOAD_OFFSET, topic, partition)
        if head is None:
            return None
        rows = [bytes(r["state"]) for r in await conn.fetch(_LOAD_STATES, topic, partition)]
    # Off the event loop: a partition of a million tickets decodes for seconds (heartbeats go on).
    tickets = await asyncio.to_thread(decode_states, rows)
    return Checkpoint(int(head["next_offset"]), tickets, head["configuration"])


class PartitionCheckpoints:
    """The checkpoints of one topic's partitions (what the engine restores from and writes to)."""

    def __init__(self, pool: asyncpg.Pool, topic: str) -> None:
        self.pool = pool
        self.topic = topic

    async def load(self, partition: int) -> Checkpoint | None:
        return await load(self.pool, self.topic, partition)

    async def save(
        self,
        partition: int,
        next_offset: int,
        changed: dict[uuid.UUID, TicketSla],
        removed: Collection[uuid.UUID],
        configuration: str,
    ) -> None:
        await save(self.pool, self.topic, partition, next_offset, changed, removed, configuration)
