"""The bot's replies outside the lifecycle (`chat.replies`, `ChatReply`) through the real broker.

Records are published to a fresh topic and consumed by `ReplyHandlers` in-process (batch subscriber,
AckPolicy.ACK); the service delivers through the real channel clients to the local BotX and Bitrix24
servers and the real PostgreSQL ledger. Assertions are on what the servers received and on
`<topic>.dlq`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from support.infra import KafkaTopicFactory
from support.kafka import dead_letters
from support.polling import eventually

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts.chat import ChatReply
from ticketflow.contracts.values import ChatRef
from ticketflow.notifications.handlers import ReplyHandlers, subscribe_replies
from ticketflow.runtime.kafka import DeadLetters

from .test_service import CHAT, EXPRESS_BOT, PORTAL, outcomes, running_platforms, running_service

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


def reply(chat: ChatRef, body: str, *, ticket_id: uuid.UUID | None = None) -> ChatReply:
    return ChatReply(
        reply_key=f"reply-{uuid.uuid4()}",
        chat=chat,
        reason="status",
        body=body,
        cause_key=f"{chat.platform}:{chat.tenant_id}:m-{uuid.uuid4().hex[:6]}",
        created_at=datetime.now(UTC),
        ticket_id=str(ticket_id) if ticket_id else None,
    )


async def test_replies_reach_their_chat_once_and_bad_records_are_dead_letters_with_the_cause(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3, suffix="chat-replies")
    dead_letter_topic = f"{topic}.dlq"
    await kafka_admin.create_topics([NewTopic(dead_letter_topic, num_partitions=1, replication_factor=1)])
    async with running_platforms() as platforms, running_service(pool, platforms) as service:
        broker = KafkaBroker(kafka_bootstrap)
        handlers = ReplyHandlers(DeadLetters(broker, "notifications"), service)
        subscribe_replies(broker, handlers, topic=topic, group_id=f"notifications-replies-{uuid.uuid4()}")
        await broker.start()
        try:
            ticket_id = uuid.uuid4()
            express = reply(ChatRef("express", str(EXPRESS_BOT), str(CHAT)), "Ваше обращение TF-1 в работе.")
            bitrix = reply(ChatRef("bitrix24", PORTAL, "chat42"), "Обращение закрыто.", ticket_id=ticket_id)
            unknown_portal = reply(ChatRef("bitrix24", "no-such-portal", "chat1"), "Привет")
            for record in (express, bitrix):
                value = msgspec.json.encode(record)
                key = record.chat.conversation_id.encode()
                await broker.publish(value, topic=topic, key=key)
                await broker.publish(value, topic=topic, key=key)  # the same record twice: one message
            await broker.publish(b'{"schema": "chat.reply/v1"}', topic=topic, key=b"junk")
            await broker.publish(msgspec.json.encode(unknown_portal), topic=topic, key=b"chat1")

            await eventually(lambda: handlers.handled >= 5, "the replies handled")
            letters = await dead_letters(kafka_bootstrap, dead_letter_topic, 2)
            # Published again after the first ones were handled: still nothing new is sent.
            await broker.publish(msgspec.json.encode(express), topic=topic, key=express.chat.conversation_id.encode())
            await eventually(lambda: handlers.handled >= 6, "the republished reply handled")
            recorded = await outcomes(service.store, ticket_id)
        finally:
            await broker.stop()
            await kafka_admin.delete_topics([dead_letter_topic])

    assert [m.body.rstrip() for m in platforms.botx.received] == ["Ваше обращение TF-1 в работе."]
    assert platforms.botx.received[0].chat_id == CHAT
    assert [(m.dialog_id, m.message.rstrip()) for m in platforms.bitrix.received] == [("chat42", "Обращение закрыто.")]
    assert [type(e) for e in recorded] == [ne.NotificationDelivered]  # the reply that names a ticket
    reasons = sorted(headers["x-dead-letter-reason"] for _, headers in letters)
    assert reasons[0].startswith("delivery failed: bitrix24: portal 'no-such-portal' is not configured"), reasons
    assert reasons[1].startswith("undecodable chat reply"), reasons
    failed = next(headers for value, headers in letters if value != b'{"schema": "chat.reply/v1"}')
    assert failed["x-reply-key"] == unknown_portal.reply_key and failed["x-idempotency-key"]
    row = await service.deliverer._ledger.row(failed["x-idempotency-key"])
    assert row is not None and row["status"] == "dead"  # in the ledger, for redrive


async def test_the_same_reply_handled_twice_at_once_sends_one_message(pool: asyncpg.Pool) -> None:
    async with running_platforms() as platforms, running_service(pool, platforms) as service:
        record = reply(ChatRef("bitrix24", PORTAL, "chat7"), "Подсказка: очистите кэш.")
        first, second = await asyncio.gather(service.reply(record), service.reply(record))
        again = await service.reply(record)
    assert first.sent + second.sent == 1 and again.sent == 0 and not again.failures
    assert [m.message.rstrip() for m in platforms.bitrix.received] == ["Подсказка: очистите кэш."]
