"""The bot's replies outside the lifecycle (`chat.replies`, `ChatReply`) through the real broker.

Records are published to a fresh topic and consumed in-process by the `chat.replies` consumer as the
service builds it (`consumer.chat_replies`, per-key batches, manual commits); the application delivers
through the real channel clients to the local BotX and Bitrix24 servers and the real PostgreSQL ledger.
Assertions are on what the servers received and on `<topic>.dlq` (read back with `DeadLetter.of`).
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
from support.polling import eventually

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts.chat import ChatReply
from ticketflow.contracts.values import ChatRef
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.per_key import per_key_batches
from ticketflow.messaging.producer import make_producer
from ticketflow.notifications.consumer import chat_replies

from .letters import dead_letters_on
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
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        worker = chat_replies(service, DeadLetterWriter(producer, "notifications"))
        per_key_batches(broker, [topic], f"notifications-replies-{uuid.uuid4()}", worker, max_records=500,
                        batch_timeout_ms=10)  # fmt: skip
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

            await eventually(lambda: worker.handled >= 5, "the replies handled")
            letters = await dead_letters_on(kafka_bootstrap, dead_letter_topic, 2)
            # Published again after the first ones were handled: still nothing new is sent.
            await broker.publish(msgspec.json.encode(express), topic=topic, key=express.chat.conversation_id.encode())
            await eventually(lambda: worker.handled >= 6, "the republished reply handled")
            recorded = await outcomes(service.store, ticket_id)
        finally:
            await broker.stop()
            await producer.stop()
            await kafka_admin.delete_topics([dead_letter_topic])

    assert [m.body.rstrip() for m in platforms.botx.received] == ["Ваше обращение TF-1 в работе."]
    assert platforms.botx.received[0].chat_id == CHAT
    assert [(m.dialog_id, m.message.rstrip()) for m in platforms.bitrix.received] == [("chat42", "Обращение закрыто.")]
    assert [type(e) for e in recorded] == [ne.NotificationDelivered]  # the reply that names a ticket
    junk, failed = sorted(letters, key=lambda letter: letter.reason, reverse=True)
    assert (junk.reason, junk.value) == ("undecodable", b'{"schema": "chat.reply/v1"}'), junk
    assert failed.reason == "delivery failed", failed
    assert failed.detail.startswith("bitrix24: portal 'no-such-portal': not_installed"), failed
    assert failed.context["reply-key"] == unknown_portal.reply_key and failed.context["idempotency-key"]
    assert failed.original_topic == topic and failed.consumer == "notifications"
    row = await service.deliverer._ledger.row(failed.context["idempotency-key"])
    assert row is not None and row["status"] == "dead"  # in the ledger, for redrive


async def test_the_same_reply_handled_twice_at_once_sends_one_message(pool: asyncpg.Pool) -> None:
    async with running_platforms() as platforms, running_service(pool, platforms) as service:
        record = reply(ChatRef("bitrix24", PORTAL, "chat7"), "Подсказка: очистите кэш.")
        first, second = await asyncio.gather(service.reply(record), service.reply(record))
        again = await service.reply(record)
    assert first.sent + second.sent == 1 and again.sent == 0 and not again.failures
    assert [m.message.rstrip() for m in platforms.bitrix.received] == ["Подсказка: очистите кэш."]
