"""Issue 21, faults: the producer every service shares for its dead letters, ops answers and the dashboard's
commands (`runtime.service.shared_producer`) after the broker restarts under load. A plain aiokafka
idempotent producer may then refuse every later send to a partition (`OutOfOrderSequenceNumber`), as
tests/chaos found for intake's webhook producer; a consumer that must dead-letter a record would then wait
on it forever.

A private broker (the project's scripts, other ports; the shared one is never stopped) is stopped for 45 s
while dead letters are written (longer than a request times out), then started again. Afterwards a dead
letter is accepted on every partition within a bounded time, and every acknowledged one is on the topic
exactly once. With a plain producer this failed: 37 of 60 keys refused with OutOfOrderSequenceNumber."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.kafka_broker import PrivateKafka
from support.records import FakeRecord

from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.runtime.service import shared_producer
from ticketflow.runtime.settings import ServiceSettings, load_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
TOPIC, PARTITIONS = "ticket.commands", 6
# Down longer than a request times out (aiokafka: 40 s): a plain producer then refuses every later send
# to some partitions with OutOfOrderSequenceNumber (measured: 37 of 60 keys, 10 s down did not show it).
SENDERS, DOWN_S, RECOVER_S = 5, 45, 60


def bad_record(key: int) -> FakeRecord:
    return FakeRecord(TOPIC, 0, key, f"key-{key % 60}".encode(), uuid.uuid4().bytes)


async def dead_letters(bootstrap: str) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(f"{TOPIC}.dlq", p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read: list[DeadLetter] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            read += [DeadLetter.of(r) for rs in batches.values() for r in rs]  # type: ignore[arg-type]
        return read
    finally:
        await consumer.stop()


async def test_dead_letters_are_written_again_after_a_broker_restart_each_once() -> None:
    with PrivateKafka() as kafka:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{TOPIC}.dlq", PARTITIONS, 1)])
        finally:
            await admin.close()
        producer = shared_producer(load_settings(ServiceSettings, kafka_bootstrap=kafka.bootstrap), "test")
        await producer.start()
        writer = DeadLetterWriter(producer, "test")
        acknowledged: list[bytes] = []
        refused: Counter[str] = Counter()
        stop = asyncio.Event()

        async def send(n: int) -> None:
            record = bad_record(n)
            await writer.send(record, "undecodable", "a test's bad record")
            acknowledged.append(record.value or b"")

        async def sender(first: int) -> None:
            n = first
            while not stop.is_set():
                try:
                    await send(n)
                except Exception as exc:  # a consumer would hold its batch and retry
                    refused[type(exc).__name__] += 1
                n += SENDERS
                await asyncio.sleep(0.02)

        try:
            senders = [asyncio.create_task(sender(i)) for i in range(SENDERS)]
            await asyncio.sleep(3)
            assert acknowledged, "nothing was written before the fault"
            await asyncio.to_thread(kafka.stop)
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(kafka.start)
            await asyncio.sleep(5)
            stop.set()
            await asyncio.gather(*senders)

            pending, last_error = set(range(60)), None  # 60 keys: every partition
            deadline = asyncio.get_running_loop().time() + RECOVER_S
            while pending and asyncio.get_running_loop().time() < deadline:
                for key in sorted(pending):
                    try:
                        await send(key)
                    except Exception as exc:
                        last_error = exc
                        continue
                    pending.discard(key)
                if pending:
                    await asyncio.sleep(1)
            assert not pending, f"{len(pending)} keys refused: {last_error!r} (under load: {refused})"
        finally:
            stop.set()
            await producer.stop()

        on_topic = Counter(letter.value for letter in await dead_letters(kafka.bootstrap))
        assert [v for v in acknowledged if on_topic[v] == 0] == []  # none lost
        assert [v for v, n in on_topic.items() if n > 1] == []  # none written twice
