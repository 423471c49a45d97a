"""TICKETFLOW_INTAKE_ACCEPT=store: the webhook records into PostgreSQL before answering, so concurrent
requests race inside the database itself. The conversation lock and the idempotency key must hold."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from intake_payloads import BOT_ID, b24_message, botx_headers, botx_message
from intake_service import RunningIntake, migrate_intake, seed_install, start_intake, stop_intake

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_COUNT = """SELECT event_type, count(*) FROM events WHERE stream_id IN (
    SELECT 'ticket-' || ticket_id FROM intake_messages WHERE conversation_key = $1) GROUP BY event_type"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def direct(pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any) -> AsyncIterator[RunningIntake]:
    await migrate_intake(pg_database)
    env = {"TICKETFLOW_INTAKE_CONSUME": "0"}
    service = await start_intake(
        pg_database, kafka_bootstrap, tmp_path_factory.mktemp("direct"), accept="store", extra_env=env
    )
    yield service
    await stop_intake(service)


async def counts(service: RunningIntake, conversation_key: str) -> dict[str, int]:
    return {r[0]: r[1] for r in await service.pool.fetch(_COUNT, conversation_key)}


async def test_identical_deliveries_race_in_the_database_and_one_wins(direct: RunningIntake) -> None:
    chat = uuid.uuid4()
    payload = botx_message("гонка", chat_id=chat)
    async with direct.client() as client:
        answers = await asyncio.gather(
            *(client.post("/command", json=payload, headers=botx_headers()) for _ in range(20))
        )
    assert {a.status_code for a in answers} == {202}
    # Recorded before the answer: no waiting needed.
    assert await counts(direct, f"express:{BOT_ID}:{chat}") == {"TicketOpened": 1}


async def test_different_first_messages_race_and_share_one_ticket(direct: RunningIntake) -> None:
    chat = uuid.uuid4()
    payloads = [botx_message(f"m{n}", chat_id=chat) for n in range(20)]
    async with direct.client() as client:
        answers = await asyncio.gather(*(client.post("/command", json=p, headers=botx_headers()) for p in payloads))
    assert {a.status_code for a in answers} == {202}
    assert await counts(direct, f"express:{BOT_ID}:{chat}") == {"TicketOpened": 1, "CustomerMessageAdded": 19}
    tickets = await direct.pool.fetchval(
        "SELECT count(DISTINCT ticket_id) FROM intake_messages WHERE conversation_key = $1", f"express:{BOT_ID}:{chat}"
    )
    assert tickets == 1


async def test_bitrix24_reordered_and_repeated_deliveries(direct: RunningIntake) -> None:
    dialog = f"chat{uuid.uuid4().int % 10**6}"
    async with direct.client() as client:
        await seed_install(direct.pool)
        bodies = [b24_message(f"m{n}", dialog_id=dialog, message_id=str(70000 + n)) for n in range(5)]
        deliveries = [*reversed(bodies), *bodies, *bodies]  # reordered, then repeated twice
        answers = await asyncio.gather(*(client.post("/bitrix24/events", content=b, headers=FORM) for b in deliveries))
    assert {a.status_code for a in answers} == {200}
    assert await counts(direct, f"bitrix24:bac1cd5c8940947a75e0d71b1a84e348:{dialog}") == {
        "TicketOpened": 1,
        "CustomerMessageAdded": 4,
    }
