"""Roster events appended straight to an agent's stream, as `ticketflow agent join/status` does."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from ticketflow.contracts.ids import agent_stream
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.eventstore import EventStore, new_event


async def agent_event(pg_dsn: str, event: AgentEvent) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        store = EventStore(pool)
        stream = agent_stream(event.agent_id)
        version = len(await store.read_stream(stream))
        await store.append(stream, version, [new_event(event, datetime.now(UTC))])
    finally:
        await pool.close()
