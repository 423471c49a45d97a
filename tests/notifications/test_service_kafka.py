"""End to end through the real broker: events appended to the store, relayed from the store to Kafka,
consumed in-process by the `ticket.events` consumer as the service builds it (`consumer.ticket_events`,
per-key batches, manual commits), delivered to the local BotX and Bitrix24 servers exactly once per
notification, and NotificationDelivered found in the store. A record that is not an envelope lands on
`<topic>.dlq` with its cause."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from support.infra import KafkaTopicFactory
from support.polling import eventually
from support.relay import relay_from_now

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import envelope_encoder
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.per_key import per_key_batches
from ticketflow.messaging.producer import make_producer
from ticketflow.notifications.consumer import ticket_events

from .letters import dead_letters_on
from .test_service import append, opened, outcomes, running_platforms, running_service, taken

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


async def test_events_relayed_through_kafka_reach_the_platforms_once_and_are_recorded(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3, suffix="ticket-events")
    dead_letter_topic = f"{topic}.dlq"
    await kafka_admin.create_topics([NewTopic(dead_letter_topic, num_partitions=1, replication_factor=1)])
    stop = asyncio.Event()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    store = EventStore(pool)
    relaying = asyncio.create_task((await relay_from_now(store, kafka_bootstrap, {TICKET_EVENTS: topic})).run(stop))
    async with running_platforms() as platforms, running_service(pool, platforms) as service:
        broker = KafkaBroker(kafka_bootstrap)
        worker = ticket_events(service, DeadLetterWriter(producer, "notifications"))
        per_key_batches(broker, [topic], f"notifications-{uuid.uuid4()}", worker, max_records=500, batch_timeout_ms=10)
        await broker.start()
        try:
            box, express = uuid.uuid4(), uuid.uuid4()
            box_events = await append(store, opened(box), taken(box), t.TicketResolved(box, "cache cleared", "anna"))
            await append(
                store,
                opened(express, "express"),
                taken(express),
                t.AgentReplied(express, "anna", "r-1", "Try again, please."),
            )
            await broker.publish(b"not an envelope", topic=topic, key=b"junk")

            async def delivered(ticket_id: uuid.UUID) -> bool:
                return (
                    len([e for e in await outcomes(store, ticket_id) if isinstance(e, ne.NotificationDelivered)]) == 2
                )

            await eventually(lambda: delivered(box), "two NotificationDelivered for the Bitrix24 ticket")
            await eventually(lambda: delivered(express), "two NotificationDelivered for the eXpress ticket")

            # The same events published again (a relay crash between publish and mark): nothing new is sent.
            for envelope in box_events:
                await broker.publish(envelope_encoder.encode(envelope), topic=topic, key=str(box).encode())
            # 6 ticket events, the 4 NotificationDelivered relayed back, the 3 published again.
            await eventually(lambda: worker.handled >= 13, "the redelivered events handled")

            [letter] = await dead_letters_on(kafka_bootstrap, dead_letter_topic)
            assert (letter.value, letter.reason, letter.original_topic) == (b"not an envelope", "undecodable", topic)
        finally:
            stop.set()
            await broker.stop()
            with contextlib.suppress(Exception):
                await relaying
            await producer.stop()
            await kafka_admin.delete_topics([dead_letter_topic])

    assert [m.dialog_id for m in platforms.bitrix.received] == ["chat42", "chat42"]
    assert "зарегистрировано" in platforms.bitrix.received[0].message  # on PreflightPassed, not TicketOpened
    assert "cache cleared" in platforms.bitrix.received[1].message
    assert len(platforms.botx.received) == 2 and "Try again, please." in platforms.botx.received[1].body
    assert len(await outcomes(store, box)) == 2  # redelivery appended nothing (deterministic event ids)
