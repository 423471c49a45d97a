"""Partition checkpoints in PostgreSQL: the next offset to read, plus the SLA state of each of the
partition's tickets and the timers armed for it, written incrementally (only tickets changed since the
previous checkpoint). Tables `sla_partition_checkpoints` (a row per topic and partition) and
`sla_ticket_states` (a row per ticket), SLA migrations 0001-0006.

Timers are a function of the state (`domain.firings`) under the desk configuration the checkpoint
names, so each row keeps the ones armed for its state (`timers`, `TIMER_ROW`: what `firings` gave),
and a restore under the same configuration arms them as stored instead of doing the calendar maths
of every ticket again, which was most of a cold restore (`make bench-sla-restore`,
docs/benchmarks.md). A row without them (written while its partition was still replaying, or before
migration 0006) is derived as before. Whatever fell due while nobody owned the partition fires at once.
The offset row and the changed ticket rows commit in one transaction, so a checkpoint is never half
written. A restore reads a partition as a few rows of concatenated byte strings (states, timers),
decoded with one msgspec call and one numpy view each instead of a Python object per ticket.
"""

from __future__ import annotations

import asyncio
import gc
import struct
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import asyncpg
import msgspec
import numpy as np

from ticketflow.sla.domain.policies import TARGETS
from ticketflow.sla.domain.state import TicketSla

ROWS_PER_STATEMENT = 20_000
# A ticket's timers: one little-endian int64 per target of `TARGETS` (due epoch second << 4 | ladder
# level; NO_TIMER for none). UNKNOWN_TIMERS marks a row whose timers were not stored.
TIMER_ROW = struct.Struct("<" + "q" * len(TARGETS))
NO_TIMER = -1
UNKNOWN = -2
LEVEL_BITS = 4
UNKNOWN_TIMERS = TIMER_ROW.pack(*([UNKNOWN] * len(TARGETS)))
TimerArray = np.ndarray[tuple[int, int], np.dtype[np.int64]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TicketSla)
_group_decoder = msgspec.msgpack.Decoder(list[TicketSla])

_SAVE_OFFSET = """
INSERT INTO sla_partition_checkpoints (topic, partition, next_offset, tickets, configuration, written_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, tickets = EXCLUDED.tickets, configuration = EXCLUDED.configuration,
    written_at = now()
"""
_SAVE_STATES = """
INSERT INTO sla_ticket_states (topic, partition, ticket_id, state, timers)
SELECT $1, $2, u.ticket_id, u.state, u.timers
FROM unnest($3::uuid[], $4::bytea[], $5::bytea[]) AS u(ticket_id, state, timers)
ON CONFLICT (topic, partition, ticket_id) DO UPDATE SET state = EXCLUDED.state, timers = EXCLUDED.timers
"""
_DELETE_STATES = """
DELETE FROM sla_ticket_states WHERE topic = $1 AND partition = $2 AND ticket_id = ANY($3::uuid[])
"""
_LOAD_OFFSET = "SELECT next_offset, configuration FROM sla_partition_checkpoints WHERE topic = $1 AND partition = $2"
# The partition's rows in LOAD_GROUPS groups (by the ticket id's last byte: random in UUIDv4 and v7),
# each group one row of two concatenated byte strings: no value near PostgreSQL's 1 GB limit, one
# scan, no sort. The hash aggregate holds the partition in memory (work_mem for this transaction).
LOAD_GROUPS = 8
_LOAD_STATES = """
SELECT count(*) AS rows, string_agg(state, ''::bytea) AS states, string_agg(coalesce(timers, $3), ''::bytea) AS timers
FROM sla_ticket_states WHERE topic = $1 AND partition = $2
GROUP BY get_byte(uuid_send(ticket_id), 15) % $4
"""


def timer_row(armed: Sequence[tuple[int, int] | None]) -> bytes:
    """The stored form of a ticket's timers: per target index, (level, due epoch second) or None."""
    values = [NO_TIMER if t is None else (t[1] << LEVEL_BITS) | t[0] for t in armed]
    if any(t is not None and not (0 <= t[0] < 1 << LEVEL_BITS and t[1] >= 0) for t in armed):
        return UNKNOWN_TIMERS  # not representable: derived again at the restore
    return TIMER_ROW.pack(*values)


def decode_timers(raw: bytes) -> TimerArray:
    """Rows of `TIMER_ROW`, one per ticket: an (n, len(TARGETS)) int64 array."""
    return np.frombuffer(raw, "<i8").reshape(-1, len(TARGETS))


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
    timers: Mapping[uuid.UUID, bytes] | None = None,
) -> None:
    """Record `next_offset`, the states of the tickets changed since the previous checkpoint (with their
    `timer_row`s where `timers` has them: armed for that state under `configuration`), and drop the rows
    of the tickets pruned since (finished: closed, merged, refused). `configuration`: the
    `Rules.fingerprint` every kept state of the partition is consistent with ('' : unknown)."""
    ids, blobs = await asyncio.to_thread(encode_states, changed)
    known = timers or {}
    rows = [known.get(ticket) for ticket in ids]
    gone = list(removed)
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, len(ids), ROWS_PER_STATEMENT):
            end = start + ROWS_PER_STATEMENT
            await conn.execute(_SAVE_STATES, topic, partition, ids[start:end], blobs[start:end], rows[start:end])
        for start in range(0, len(gone), ROWS_PER_STATEMENT):
            await conn.execute(_DELETE_STATES, topic, partition, gone[start : start + ROWS_PER_STATEMENT])
        await conn.execute(_SAVE_OFFSET, topic, partition, next_offset, len(ids), configuration)


class Checkpoint(NamedTuple):
    next_offset: int
    tickets: dict[uuid.UUID, TicketSla]
    configuration: str  # the `Rules.fingerprint` the states are consistent with ('': unknown)
    # The stored `timer_row` of each ticket, in the order of `tickets` (UNKNOWN where none was stored).
    timers: TimerArray = np.empty((0, len(TARGETS)), np.int64)


async def load(pool: asyncpg.Pool | Any, topic: str, partition: int) -> Checkpoint | None:
    """The latest checkpoint of the partition; None when it never had one."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow(_LOAD_OFFSET, topic, partition)
        if head is None:
            return None
        await conn.execute("SET LOCAL work_mem = '1GB'")
        groups = await conn.fetch(_LOAD_STATES, topic, partition, UNKNOWN_TIMERS, LOAD_GROUPS)
    # Off the event loop: a partition of a million tickets decodes for a second (heartbeats go on).
    states = await asyncio.to_thread(_decode_groups, [(g["rows"], g["states"]) for g in groups])
    tickets = {state.ticket_id: state for state in states}
    timers = [decode_timers(g["timers"]) for g in groups]
    stored = np.concatenate(timers) if timers else np.empty((0, len(TARGETS)), np.int64)
    return Checkpoint(int(head["next_offset"]), tickets, head["configuration"], stored)


def _decode_groups(groups: list[tuple[int, bytes]]) -> list[TicketSla]:
    """Each group's concatenated msgpack states, decoded as one msgpack array of its rows. The cyclic
    GC is held off meanwhile: each state's clocks tuple is a tracked container, and the collections a
    million of them trigger (each walking everything still young) tripled the decoding time."""
    states: list[TicketSla] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        for rows, concatenated in groups:
            states += _group_decoder.decode(b"\xdd" + rows.to_bytes(4, "big") + concatenated)
    finally:
        if collecting:
            gc.enable()
    return states


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
        timers: Mapping[uuid.UUID, bytes] | None = None,
    ) -> None:
        await save(self.pool, self.topic, partition, next_offset, changed, removed, configuration, timers)
