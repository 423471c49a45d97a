"""Partition checkpoints: the SLA state of one partition's tickets plus the next offset to read.

Timers are not stored: they are a function of the state (`domain.firings`), so a restore re-arms
them, and whatever fell due while nobody owned the partition fires at once. The snapshot is the
tickets as msgpack, zlib-compressed (clocks repeat a lot of structure).
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from typing import Any

import asyncpg
import msgspec

from ticketflow.sla.domain import TicketSla

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[TicketSla])

_SAVE = """
INSERT INTO sla_partition_checkpoints (topic, partition, next_offset, tickets, snapshot, written_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, tickets = EXCLUDED.tickets, snapshot = EXCLUDED.snapshot,
    written_at = now()
"""
_LOAD = "SELECT next_offset, snapshot FROM sla_partition_checkpoints WHERE topic = $1 AND partition = $2"


def encode_tickets(tickets: dict[uuid.UUID, TicketSla]) -> bytes:
    return zlib.compress(_encoder.encode(list(tickets.values())), 1)


def decode_tickets(data: bytes) -> dict[uuid.UUID, TicketSla]:
    return {t.ticket_id: t for t in _decoder.decode(zlib.decompress(data))}


async def save(pool: asyncpg.Pool, topic: str, partition: int, next_offset: int, snapshot: bytes, count: int) -> None:
    await pool.execute(_SAVE, topic, partition, next_offset, count, snapshot)


async def load(pool: asyncpg.Pool | Any, topic: str, partition: int) -> tuple[int, dict[uuid.UUID, TicketSla]] | None:
    """(next offset, tickets) of the latest checkpoint; None when the partition never had one."""
    row = await pool.fetchrow(_LOAD, topic, partition)
    if row is None:
        return None
    # Off the event loop: a partition of a million tickets decodes for seconds (heartbeats go on).
    return int(row["next_offset"]), await asyncio.to_thread(decode_tickets, bytes(row["snapshot"]))
