"""Several chat.inbound batches in flight (`consumer.chat_inbound_pipeline`: the ordered pipeline of
ticketflow.messaging with intake's per-conversation order, conversation_order.py), against a real Kafka
consumer and its real committed offsets; the store is a gated fake that holds batch N while batch N+1
goes on:
- the committed offset never moves past a batch that is not stored, even when a later one is;
- a conversation's next message waits behind the batch in flight that holds it; other conversations don't;
- a failed batch is sought back and redelivered; a batch fetched before the seek is dropped, not recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from support.polling import eventually

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.intake.app import Inbound
from ticketflow.intake.consumer import chat_inbound_pipeline
from ticketflow.messaging.ordered import OrderedPipeline
from ticketflow.messaging.records import Record

pytestmark = [pytest.mark.kafka]


def message(conversation: str, n: int) -> ChatMessage:
    return ChatMessage(
        platform="generic",
        tenant_id="acme",
        conversation_id=conversation,
        message_id=f"{conversation}-{n}",
        sender=ChatSender(user_id="u1"),
        text=f"{conversation} {n}",
        received_at=datetime.now(UTC),
    )


class GatedStore:
    """What the pipeline records with (`Intake.record_inbound` in the service): records message ids in
    the order they are stored. A unit holding a gated message id waits for its gate; `fail_once` makes
    the first attempt at a message id fail."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.attempts: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail_once: set[str] = set()

    async def record(self, good: list[Inbound]) -> None:
        ids = [m.message_id for _, m in good]
        self.attempts += ids
        for message_id in ids:
            if message_id in self.gates:
                await self.gates[message_id].wait()
            if message_id in self.fail_once:
                self.fail_once.discard(message_id)
                raise OSError(f"store outage while recording {message_id}")
        self.stored += ids

    async def reject(self, undecodable: list[tuple[Record, str]]) -> None:
        assert not undecodable

    def pipeline(self, depth: int, retry_after_s: float = 1.0) -> OrderedPipeline:
        return chat_inbound_pipeline(self.record, self.reject, name="test", depth=depth, retry_after_s=retry_after_s)


@pytest_asyncio.fixture(loop_scope="session")
async def consumer(kafka_bootstrap: str, kafka_topic_factory: Any) -> AsyncIterator[AIOKafkaConsumer]:
    topic = await kafka_topic_factory(partitions=1, suffix="pipeline")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # Batches of two: N = a1 b1 | N+1 = c1 d1 | N+2 = a2 e1 | N+3 = f1 a3
        for conversation, n in [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("a", 2), ("e", 1), ("f", 1), ("a", 3)]:
            value = msgspec.json.encode(message(conversation, n))
            await producer.send_and_wait(topic, value, key=conversation.encode(), partition=0)
    finally:
        await producer.stop()
    kafka = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"pipeline-test-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await kafka.start()
    kafka.assign([TopicPartition(topic, 0)])
    yield kafka
    await kafka.stop()


async def fetch(kafka: AIOKafkaConsumer, count: int) -> list[Any]:
    batch = await kafka.getmany(timeout_ms=10_000, max_records=count)
    records = [r for part in batch.values() for r in part]
    assert len(records) == count, records
    return records


def tp_of(kafka: AIOKafkaConsumer) -> TopicPartition:
    (tp,) = kafka.assignment()
    return tp


async def test_offset_does_not_pass_a_batch_held_while_the_next_one_completes(consumer: AIOKafkaConsumer) -> None:
    tp = tp_of(consumer)
    store = GatedStore()
    store.gates["a-1"] = asyncio.Event()  # batch N is held in the store
    pipeline = store.pipeline(depth=3)

    await pipeline.handle(await fetch(consumer, 2), consumer)  # N: a1 b1 (held)
    await pipeline.handle(await fetch(consumer, 2), consumer)  # N+1: c1 d1 (nothing in common with N)
    await pipeline.handle(await fetch(consumer, 2), consumer)  # N+2: a2 (behind a1) e1
    assert pipeline.in_flight == 3

    await eventually(lambda: {"c-1", "d-1", "e-1"} <= set(store.stored), "N+1 and e1 stored while N is held")
    await asyncio.sleep(0.5)  # room for a wrong commit or a wrong a2 to happen
    assert "a-2" not in store.attempts, "a2 overtook a1, which batch N still holds"
    assert await consumer.committed(tp) is None, "an offset was committed past batch N, which is not stored"
    assert pipeline.in_flight == 3  # N+1 is stored, waiting for N to commit first

    store.gates["a-1"].set()
    await eventually(lambda: pipeline.in_flight == 0, "the three batches done", seconds=10)
    assert await consumer.committed(tp) == 6
    assert store.stored.index("a-1") < store.stored.index("a-2")
    assert sorted(store.stored) == ["a-1", "a-2", "b-1", "c-1", "d-1", "e-1"]

    await pipeline.handle(await fetch(consumer, 2), consumer)  # N+3: f1 a3, nothing held
    await pipeline.drain()
    assert await consumer.committed(tp) == 8
    assert sorted(store.stored[-2:]) == ["a-3", "f-1"]


async def test_a_failed_batch_is_sought_back_and_a_batch_fetched_before_the_seek_is_dropped(
    consumer: AIOKafkaConsumer,
) -> None:
    tp = tp_of(consumer)
    store = GatedStore()
    store.gates["a-1"] = asyncio.Event()
    store.fail_once.add("a-1")  # batch N fails, after N+1 is stored
    pipeline = store.pipeline(depth=3, retry_after_s=0.2)

    await pipeline.handle(await fetch(consumer, 2), consumer)  # N: a1 b1
    await pipeline.handle(await fetch(consumer, 2), consumer)  # N+1: c1 d1
    await pipeline.handle(await fetch(consumer, 2), consumer)  # N+2: a2 e1
    stale = await fetch(consumer, 2)  # N+3: f1 a3, fetched before the failure and the seek
    await eventually(lambda: {"c-1", "d-1", "e-1"} <= set(store.stored), "N+1 and e1 stored while N is held")

    store.gates["a-1"].set()  # a1 fails now
    await eventually(lambda: pipeline._recovery is None and pipeline.in_flight == 0, "recovery done", seconds=10)
    assert await consumer.position(tp) == 0, "not sought back to batch N's first offset"
    assert await consumer.committed(tp) is None, "committed although batch N failed"
    assert "a-2" not in store.attempts, "a2 was tried although a1 (the unit it waits for) failed"

    await pipeline.handle(stale, consumer)  # fetched before the seek: dropped, it comes again
    assert pipeline.in_flight == 0
    assert "f-1" not in store.attempts and "a-3" not in store.attempts

    for _ in range(4):  # redelivered from offset 0
        await pipeline.handle(await fetch(consumer, 2), consumer)
    await pipeline.drain()
    assert await consumer.committed(tp) == 8
    stored = store.stored
    assert stored.index("a-1") < stored.index("a-2") < stored.index("a-3")
    assert set(stored) == {"a-1", "a-2", "a-3", "b-1", "c-1", "d-1", "e-1", "f-1"}
