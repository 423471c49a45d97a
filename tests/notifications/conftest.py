"""Fixtures for the notifications tests: the platform fakes and a migrated ledger database."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest_asyncio
from support.eventstore import migrated_pool

# tests/ on sys.path, so `fakes` imports under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ticketflow.eventstore.migrate import Migration, apply_all, discover
from ticketflow.notifications.adapters.ledger import migration_sql

from .platform_stack import Stack, running_stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    """tests/conftest.py's migrated pool with room for 16 connections (the service under test shares it)."""
    p = await migrated_pool(pg_database, max_size=16)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ledger_pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database (tests/conftest.py) holding this component's migrations,
    applied by the project's migrator (only ours, so other components' SQL is not involved)."""
    ours = [m for m in discover() if m.component == "bitrix24"] + [  # the channel reads the installs
        Migration("notifications", int(re.match(r"\d+", name).group()), name, sql)  # type: ignore[union-attr]
        for name, sql in migration_sql()
    ]
    connection = await asyncpg.connect(pg_database)
    try:
        await apply_all(connection, ours)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(pg_database, min_size=1, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def stack(ledger_pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with running_stack(ledger_pool) as running:
        yield running
