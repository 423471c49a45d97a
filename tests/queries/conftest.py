from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from queries_world import RunningQueries, World, api_client, fill, start_queries, stop_queries
from support.eventstore import migrated_pool

from ticketflow.eventstore import EventStore


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(pg_database: str) -> AsyncIterator[World]:
    pool = await migrated_pool(pg_database)
    try:
        yield await fill(EventStore(pool), 120)
    finally:
        await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(world.pool) as made:
        yield made


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service(
    world: World, pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any
) -> AsyncIterator[RunningQueries]:
    """The service as a real process, on this module's world."""
    running = await start_queries(pg_database, kafka_bootstrap, tmp_path_factory.mktemp("queries"))
    yield running
    stop_queries(running)
