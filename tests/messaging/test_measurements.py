"""What the Kafka side measures, on the real broker and PostgreSQL: consumer lag per group and partition
as Kafka sees it (committed offsets), the outbox backlog and the relay's lag, dead letters by topic and
reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY
from support.eventstore import some_events
from support.records import FakeRecord, RecordingProducer

from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.lag import ConsumerLag
from ticketflow.messaging.outbox_metrics import OutboxMetrics

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


async def test_lag_is_end_offset_minus_committed_per_partition_and_counts_from_the_start_when_uncommitted(
    kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(topic, b"x", partition=0)
        await producer.send_and_wait(topic, b"y", partition=1)
    finally:
        await producer.stop()
    group = f"{topic}-group"
    committer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0)])
        await committer.commit({TopicPartition(topic, 0): 2})  # 2 of 5 stored; partition 1 never committed
    finally:
        await committer.stop()
    lag = ConsumerLag(kafka_bootstrap, lambda: {group: {topic}})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    ends = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await admin.start()
    await ends.start()
    try:
        measured = await lag.measure(admin, ends)
    finally:
        await ends.stop()
        await admin.close()
    assert measured == {(group, topic, 0): 3, (group, topic, 1): 1}
    labels = {"group": group, "topic": topic, "partition": "0"}
    assert REGISTRY.get_sample_value("ticketflow_consumer_lag", labels) == 3


async def test_the_outbox_backlog_and_the_age_of_its_oldest_event(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM outbox")
    metrics = OutboxMetrics(pool)
    assert await metrics.measure() == (0, 0.0)  # empty: no lag
    await EventStore(pool).append(ticket_stream(uuid.uuid4()), 0, some_events(uuid.uuid4(), 3))
    await pool.execute("UPDATE outbox SET created_at = $1", datetime(2020, 1, 1, tzinfo=UTC))
    backlog, lag = await metrics.measure()
    assert backlog == 3 and lag > 3600 * 24 * 365  # waiting since 2020: the relay is not publishing
    assert REGISTRY.get_sample_value("ticketflow_outbox_backlog") == 3


async def test_every_dead_letter_is_counted_by_topic_reason_and_consumer() -> None:
    labels = {"topic": "chat.inbound", "reason": "invalid_record", "consumer": "intake"}
    before = REGISTRY.get_sample_value("ticketflow_dead_letters_total", labels) or 0.0
    writer = DeadLetterWriter(RecordingProducer(), "intake")  # type: ignore[arg-type]
    await writer.send(FakeRecord("chat.inbound", 0, 7, b"k", b"not json"), "invalid_record", "bad JSON")
    assert REGISTRY.get_sample_value("ticketflow_dead_letters_total", labels) == before + 1
