from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from support.eventstore import migrated_pool

from ticketflow.eventstore import EventStore


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await migrated_pool(pg_database)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)
