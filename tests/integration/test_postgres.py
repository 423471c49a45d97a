"""The real PostgreSQL server with asyncpg, through the shared fixtures (pg_dsn, pg_database)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

pytestmark = [pytest.mark.pg, pytest.mark.timeout(60)]


async def test_rows_written_are_read_back_in_a_throwaway_database(pg_database: str) -> None:
    connection = await asyncpg.connect(pg_database)
    try:
        await connection.execute(
            "CREATE TABLE ticket_notes (ticket_id uuid, version int, body jsonb, PRIMARY KEY (ticket_id, version))"
        )
        ticket_id = uuid.uuid4()
        rows = [(ticket_id, version, f'{{"text": "note {version}"}}') for version in range(1, 4)]
        await connection.executemany("INSERT INTO ticket_notes VALUES ($1, $2, $3::jsonb)", rows)
        read_back = await connection.fetch(
            "SELECT version, body->>'text' AS text FROM ticket_notes WHERE ticket_id = $1 ORDER BY version",
            ticket_id,
        )
        pairs = [(row["version"], row["text"]) for row in read_back]
        assert pairs == [(1, "note 1"), (2, "note 2"), (3, "note 3")]
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute("INSERT INTO ticket_notes VALUES ($1, 1, '{}'::jsonb)", ticket_id)
    finally:
        await connection.close()


async def test_throwaway_database_has_pg_trgm(pg_database: str) -> None:
    connection = await asyncpg.connect(pg_database)
    try:
        assert await connection.fetchval("SELECT similarity('printer offline', 'printer is offline')") > 0.5
    finally:
        await connection.close()


async def test_project_database_accepts_the_ticketflow_role(pg_dsn: str) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        assert await connection.fetchval("SELECT current_user") == "ticketflow"
        assert await connection.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == 1
    finally:
        await connection.close()
