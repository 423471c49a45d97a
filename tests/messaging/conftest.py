from __future__ import annotations

import asyncpg
import pytest_asyncio

from ticketflow.eventstore import EventStore


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)
