"""Pattern (b), the ordered pipeline, against a real Kafka consumer and its real committed offsets; the
"store" is a gate per batch, so batch N can be held while batch N+1 is stored:
- the committed offset never moves past a batch that is not stored, even when a later one is;
- a failed batch is sought back, `on_rewind` is told, and a batch fetched before the seek is dropped;
- `begin` runs in fetch order, synchronously, before the next batch is admitted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from support.polling import eventually

from ticketflow.messaging.ordered import OrderedPipeline
from ticketflow.messaging.records import Record

pytestmark = [pytest.mark.kafka]


class GatedStore:
    """`begin` for the pipeline: a batch's values are "stored" once its gate (if any) opens; a batch
    holding a value of `fail_once` fails the first time."""

    def __init__(self) -> None:
        self.begun: list[list[str]] = []
        self.stored: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail_once: set[str] = set()
        self.rewinds = 0

    def begin(self, records: Sequence[Record]) -> asyncio.Task[None]:
        values = [(r.value or b"").decode() for r in records]
        self.begun.append(values)
        return asyncio.create_task(self._store(values))

    async def _store(self, values: list[str]) -> None:
        for value in values:
            if value in self.gates:
                await self.gates[value].wait()
            if value in self.fail_once:
                self.fail_once.discard(value)
                raise OSError(f"store outage while storing {value}")
        self.stored += values

    def rewound(self) -> None:
        self.rewinds += 1


@pytest_asyncio.fixture(loop_scope="session")
async def consumer(kafka_bootstrap: str, kafka_topic_factory: Any) -> AsyncIterator[AIOKafkaConsumer]:
    topic = await kafka_topic_factory(partitions=1, suffix="ordered")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(8):  # batches of two: N = v0 v1 | N+1 = v2 v3 | N+2 = v4 v5 | N+3 = v6 v7
            await producer.send_and_wait(topic, f"v{n}".encode(), partition=0)
    finally:
        await producer.stop()
    kafka = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"ordered-{uuid.uuid4().hex[:8]}",
                             enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
    await kafka.start()
    kafka.assign([TopicPartition(topic, 0)])
    yield kafka
    await kafka.stop()


async def fetch(kafka: AIOKafkaConsumer, count: int) -> list[Any]:
    batch = await kafka.getmany(timeout_ms=10_000, max_records=count)
    records = [r for part in batch.values() for r in part]
    assert len(records) == count, records
    return records


async def test_the_offset_does_not_pass_a_batch_held_while_later_ones_are_stored(consumer: AIOKafkaConsumer) -> None:
    (tp,) = consumer.assignment()
    store = GatedStore()
    store.gates["v0"] = asyncio.Event()  # batch N is held in the store
    pipeline = OrderedPipeline("test", store.begin, depth=3)
    for _ in range(3):
        await pipeline.handle(await fetch(consumer, 2), consumer)
    assert store.begun == [["v0", "v1"], ["v2", "v3"], ["v4", "v5"]]  # begun at once, in fetch order
    await eventually(lambda: {"v2", "v3", "v4", "v5"} <= set(store.stored), "N+1 and N+2 stored while N is held")
    await asyncio.sleep(0.3)  # room for a wrong commit
    assert await consumer.committed(tp) is None, "an offset was committed past batch N, which is not stored"
    assert pipeline.in_flight == 3

    store.gates["v0"].set()
    await eventually(lambda: pipeline.in_flight == 0, "the three batches done", seconds=10)
    assert await consumer.committed(tp) == 6
    await pipeline.handle(await fetch(consumer, 2), consumer)
    await pipeline.drain()
    assert await consumer.committed(tp) == 8 and store.rewinds == 0


async def test_a_failed_batch_is_sought_back_and_a_batch_fetched_before_the_seek_is_dropped(
    consumer: AIOKafkaConsumer,
) -> None:
    (tp,) = consumer.assignment()
    store = GatedStore()
    store.gates["v0"] = asyncio.Event()
    store.fail_once.add("v0")  # batch N fails, after N+1 is stored
    pipeline = OrderedPipeline("test", store.begin, depth=3, retry_after_s=0.2, on_rewind=store.rewound)
    for _ in range(3):
        await pipeline.handle(await fetch(consumer, 2), consumer)
    stale = await fetch(consumer, 2)  # N+3, fetched before the failure and the seek
    await eventually(lambda: {"v2", "v3"} <= set(store.stored), "N+1 stored while N is held")

    store.gates["v0"].set()  # v0 fails now
    await eventually(lambda: store.rewinds == 1 and pipeline.in_flight == 0, "recovery done", seconds=10)
    await eventually(lambda: not pipeline.waiting.waiting or True, "")
    assert await consumer.position(tp) == 0, "not sought back to batch N's first offset"
    assert await consumer.committed(tp) is None, "committed although batch N failed"
    assert pipeline.waiting.waiting  # readiness says so until a batch is stored again

    await pipeline.handle(stale, consumer)  # fetched before the seek: dropped, it comes again
    assert pipeline.in_flight == 0 and ["v6", "v7"] not in store.begun

    for _ in range(4):  # redelivered from offset 0
        await pipeline.handle(await fetch(consumer, 2), consumer)
    await pipeline.drain()
    assert await consumer.committed(tp) == 8
    assert set(store.stored) == {f"v{n}" for n in range(8)} and not pipeline.waiting.waiting
