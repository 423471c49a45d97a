"""An accepted message is never lost: while PostgreSQL refuses intake's connections, webhooks are still
accepted (durable on chat.inbound); the consumer's batches fail, are sought back, and are recorded once
PostgreSQL is back, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from intake_payloads import BOT_ID, botx_headers, botx_message
from intake_service import RunningIntake, migrate_intake, start_intake, stop_intake

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fragile(pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any) -> AsyncIterator[RunningIntake]:
    await migrate_intake(pg_database)
    service = await start_intake(pg_database, kafka_bootstrap, tmp_path_factory.mktemp("outage"))
    yield service
    await stop_intake(service)


async def test_messages_accepted_during_a_database_outage_are_recorded_afterwards(
    fragile: RunningIntake, pg_dsn: str
) -> None:
    database = await fragile.pool.fetchval("SELECT current_database()")
    server = await asyncpg.connect(pg_dsn)  # another database: unaffected by the limit below
    chat = uuid.uuid4()
    payloads = [botx_message(f"во время сбоя {n}", chat_id=chat) for n in range(5)]
    try:
        await server.execute(f'ALTER DATABASE "{database}" CONNECTION LIMIT 0')
        await server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        async with fragile.client() as client:
            for payload in payloads:  # in order, so the first one opens the ticket
                answer = await client.post("/command", json=payload, headers=botx_headers())
                assert answer.status_code == 202, answer.text
        await asyncio.sleep(3)  # the consumer tries, fails, seeks back, tries again
    finally:
        await server.execute(f'ALTER DATABASE "{database}" CONNECTION LIMIT -1')
        await server.close()
    key = f"express:{BOT_ID}:{chat}"
    query = "SELECT outcome, count(*) FROM intake_messages WHERE conversation_key = $1 GROUP BY outcome"
    outcomes = await fragile.eventually(
        lambda: fragile.pool.fetch(query, key), lambda rows: sum(r[1] for r in rows) >= 5, wait_s=60
    )
    assert {r[0]: r[1] for r in outcomes} == {"opened": 1, "added": 4}
    assert "will be redelivered" in fragile.log_path.read_text()
