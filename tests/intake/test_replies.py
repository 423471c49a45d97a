"""The reply relay on the real broker: queued `intake_replies` rows reach `chat.replies` as ChatReply
records, once per reply in the normal case, keyed by conversation, and are marked sent only after the
broker acknowledged them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from intake_payloads import BOT_ID, botx_headers, botx_message
from intake_service import RunningIntake, migrate_intake, read_replies, start_intake, stop_intake

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replies_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    topic = f"chat.replies.test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
        yield topic
        await admin.delete_topics([topic])
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service(
    pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any, replies_topic: str
) -> AsyncIterator[RunningIntake]:
    await migrate_intake(pg_database)
    running = await start_intake(
        pg_database,
        kafka_bootstrap,
        tmp_path_factory.mktemp("intake-replies"),
        extra_env={"TICKETFLOW_INTAKE_REPLIES_TOPIC": replies_topic},
    )
    yield running
    await stop_intake(running)


async def test_a_botx_status_command_produces_exactly_one_chat_reply(
    service: RunningIntake, replies_topic: str
) -> None:
    chat = uuid.uuid4()
    status = botx_message("/status", chat_id=chat)
    async with service.client() as client:
        for _ in range(3):  # BotX retries the same sync_id: still one reply
            assert (await client.post("/command", json=status, headers=botx_headers())).status_code == 202
    cause = f"express:{BOT_ID}:{status['sync_id']}"
    sent = await service.eventually(
        lambda: service.pool.fetchval("SELECT sent_at FROM intake_replies WHERE idempotency_key = $1", cause),
        lambda v: v is not None,
    )
    assert sent is not None, "the relay did not mark the reply sent"
    mine = [
        (k, r) for k, r in await read_replies(service.bootstrap, replies_topic) if r.chat.conversation_id == str(chat)
    ]
    assert len(mine) == 1, mine
    key, reply = mine[0]
    assert key == f"express:{BOT_ID}:{chat}".encode()
    assert (reply.chat.platform, reply.chat.tenant_id, reply.chat.conversation_id) == (
        "express",
        str(BOT_ID),
        str(chat),
    )
    assert (reply.reason, reply.body) == ("status", "Открытых обращений нет.")
    assert (reply.cause_key, reply.reply_key, reply.ticket_id) == (cause, f"{cause}#status", None)


async def test_self_help_hints_are_relayed_with_the_ticket_id(service: RunningIntake, replies_topic: str) -> None:
    chat = uuid.uuid4()
    first = botx_message("Не приходят уведомления", chat_id=chat, locale="en")
    async with service.client() as client:
        assert (await client.post("/command", json=first, headers=botx_headers())).status_code == 202
    cause = f"express:{BOT_ID}:{first['sync_id']}"
    await service.eventually(
        lambda: service.pool.fetchval("SELECT sent_at FROM intake_replies WHERE idempotency_key = $1", cause),
        lambda v: v is not None,
    )
    ticket = await service.pool.fetchval("SELECT ticket_id FROM intake_messages WHERE idempotency_key = $1", cause)
    mine = [r for _, r in await read_replies(service.bootstrap, replies_topic) if r.chat.conversation_id == str(chat)]
    assert [(r.reason, r.ticket_id) for r in mine] == [("self_help_hints", str(ticket))]
    assert mine[0].body.startswith("While we file your request, please try:") and "VPN" in mine[0].body
