"""What the Kafka side measures, on the real broker and PostgreSQL: consumer lag per group and partition
as Kafka sees it (committed offsets), the relay's backlog and lag (from its checkpoint in Kafka), dead letters by
topic and reason."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY
from support.eventstore import some_events
from support.infra import KafkaTopicFactory
from support.records import FakeRecord, RecordingProducer
from support.relay import relay_from_now

from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.lag import ConsumerLag
from ticketflow.messaging.relay_metrics import RelayMetrics

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


async def test_the_relay_backlog_is_the_events_past_its_checkpoint_and_its_lag_the_oldest_ones_age(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    relay = await relay_from_now(store, kafka_bootstrap, {TICKET_EVENTS: topic})
    metrics = RelayMetrics(relay)
    assert await metrics.measure() == (0, 0.0)  # nothing after its start: no lag
    ticket = uuid.uuid4()
    await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
    await asyncio.sleep(1.0)  # the events table is append-only: their recorded_at ages, it cannot be set
    backlog, lag = await metrics.measure()
    assert backlog == 3 and 1.0 <= lag < 300  # stored over a second ago and not published
    assert REGISTRY.get_sample_value("ticketflow_relay_backlog") == 3
    assert REGISTRY.get_sample_value("ticketflow_relay_lag_seconds") == lag
    produced = REGISTRY.get_sample_value("ticketflow_records_produced_total", {"topic": topic}) or 0.0
    assert await relay.drain() == 3
    assert await metrics.measure() == (0, 0.0)  # read from the checkpoint the relay committed in Kafka
    assert REGISTRY.get_sample_value("ticketflow_records_produced_total", {"topic": topic}) == produced + 3


async def test_every_dead_letter_is_counted_by_topic_reason_and_consumer() -> None:
    labels = {"topic": "chat.inbound", "reason": "invalid_record", "consumer": "intake"}
    before = REGISTRY.get_sample_value("ticketflow_dead_letters_total", labels) or 0.0
    writer = DeadLetterWriter(RecordingProducer(), "intake")  # type: ignore[arg-type]
    await writer.send(FakeRecord("chat.inbound", 0, 7, b"k", b"not json"), "invalid_record", "bad JSON")
    assert REGISTRY.get_sample_value("ticketflow_dead_letters_total", labels) == before + 1
