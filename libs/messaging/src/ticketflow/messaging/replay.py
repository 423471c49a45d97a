"""Replay: a stream's stored events queued in the outbox again, so the relay publishes them once more,
in order, to the topic their stream goes to (`contracts.topics.topic_for_stream`). Consumers recognise
the event ids they have processed and do nothing new; a consumer that lost its state catches up. Used by
the CLI (`ticketflow replay`) and the `ReplayTicket` operator command."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from ticketflow.contracts.ids import notification_stream, sla_stream, ticket_stream
from ticketflow.contracts.topics import key_for_stream, topic_for_stream

_QUEUE = """
INSERT INTO outbox (position, topic, key)
SELECT position, $2, $3 FROM events WHERE stream_id = $1
ON CONFLICT (position) DO NOTHING
"""


async def replay_streams(pool: asyncpg.Pool, streams: Sequence[str]) -> int:
    """Queue every event of `streams` for the relay; returns how many were queued (already queued: not
    counted)."""
    queued = 0
    async with pool.acquire() as conn, conn.transaction():
        for stream in streams:
            done = await conn.execute(_QUEUE, stream, topic_for_stream(stream), key_for_stream(stream))
            queued += int(done.split()[-1])
    return queued


def ticket_streams(ticket_id: uuid.UUID) -> list[str]:
    """Every stream of a ticket: its lifecycle, its SLA clocks, its notifications (all on ticket.events)."""
    return [ticket_stream(ticket_id), sla_stream(ticket_id), notification_stream(ticket_id)]
