"""Fixtures for the notifications tests: the platform fakes and an isolated ledger schema."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

# tests/ on sys.path, so `fakes` imports under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ticketflow.notifications.ledger import migration_sql

PG_DSN = os.environ.get("TICKETFLOW_PG_DSN", "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow")


@pytest.fixture(scope="session")
async def ledger_pool() -> AsyncIterator[asyncpg.Pool]:
    """A pool whose search_path is a fresh schema holding this component's migrations.

    Until the shared migrator exists, the SQL files are applied here; the schema keeps parallel
    test runs (and other engineers' tables) apart.
    """
    schema = f"notif_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=8, server_settings={"search_path": schema})
    try:
        async with pool.acquire() as connection:
            for _name, sql in migration_sql():
                await connection.execute(sql)
        yield pool
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
