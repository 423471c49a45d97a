"""The real broker with the clients the services use: aiokafka 0.14 and FastStream 0.7.

These tests are why deploy/kafka/pom.xml pins the Kafka version it does (docs/infrastructure.md):
idempotent producer, consumer-group commit and resume, rebalance on join and leave.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import UnknownTopicOrPartitionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from support.infra import KafkaTopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


class TicketNoted(msgspec.Struct, frozen=True):
    ticket_id: str
    sequence: int
    text: str


async def produce_idempotently(bootstrap: str, topic: str, events: list[TicketNoted]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, msgspec.json.encode(event), key=event.ticket_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def committed_offsets(bootstrap: str, group_id: str, partitions: list[TopicPartition]) -> list[int]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await reader.start()
    try:
        return [await reader.committed(partition) or 0 for partition in partitions]
    finally:
        await reader.stop()


async def test_faststream_group_consumes_msgspec_events_in_order_per_key_and_commits(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    tickets = [f"T-{n}" for n in range(5)]
    events = [TicketNoted(ticket, seq, f"note {seq}") for seq in range(8) for ticket in tickets]
    await produce_idempotently(kafka_bootstrap, topic, events)

    event_decoder = msgspec.json.Decoder(TicketNoted)

    def decode(message: StreamMessage[object]) -> TicketNoted:
        return event_decoder.decode(message.body)

    received: dict[bytes, list[int]] = defaultdict(list)
    all_received = asyncio.Event()
    group_id = f"faststream-{uuid.uuid4().hex[:8]}"
    # serializer=None: the decoder already built the typed event; no second validation layer.
    broker = KafkaBroker(kafka_bootstrap, serializer=None)

    @broker.subscriber(topic, group_id=group_id, auto_offset_reset="earliest", ack_policy=AckPolicy.ACK, decoder=decode)
    async def on_ticket_noted(event: TicketNoted, message: KafkaMessage) -> None:
        assert isinstance(event, TicketNoted)
        assert message.raw_message.key == event.ticket_id.encode()  # type: ignore[union-attr]
        received[event.ticket_id.encode()].append(event.sequence)
        if sum(map(len, received.values())) == len(events):
            all_received.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(all_received.wait(), timeout=60)

    assert {key: sequences for key, sequences in received.items()} == {
        ticket.encode(): list(range(8)) for ticket in tickets
    }
    partitions = [TopicPartition(topic, n) for n in range(3)]
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await probe.start()
    try:
        end_offsets = await probe.end_offsets(partitions)
    finally:
        await probe.stop()
    # AckPolicy.ACK commits after each handled message: the group's position is the end of each partition.
    committed = await committed_offsets(kafka_bootstrap, group_id, partitions)
    assert committed == [end_offsets[partition] for partition in partitions]


async def test_consumer_group_resumes_after_committed_offset(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    await produce_idempotently(kafka_bootstrap, topic, [TicketNoted("T-1", n, "x") for n in range(10)])
    group_id = f"resume-{uuid.uuid4().hex[:8]}"

    def new_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = new_consumer()
    await first.start()
    try:
        seen = [await first.getone() for _ in range(4)]
        await first.commit()  # commits the position after the 4th record
    finally:
        await first.stop()
    assert [record.offset for record in seen] == [0, 1, 2, 3]

    second = new_consumer()
    await second.start()
    try:
        resumed = await asyncio.wait_for(second.getone(), timeout=30)
    finally:
        await second.stop()
    assert resumed.offset == 4
    assert msgspec.json.decode(resumed.value or b"", type=TicketNoted).sequence == 4


async def wait_for_assignment(consumer: AIOKafkaConsumer, expected_count: int, timeout_s: float = 45) -> None:
    # Partitions are (re)assigned inside the consumer's fetch loop, so keep polling while waiting.
    async def settle() -> None:
        while len(consumer.assignment()) != expected_count:
            await consumer.getmany(timeout_ms=200)

    await asyncio.wait_for(settle(), timeout=timeout_s)


async def test_rebalance_splits_partitions_and_gives_them_back_when_a_member_leaves(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=4)
    group_id = f"rebalance-{uuid.uuid4().hex[:8]}"

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            heartbeat_interval_ms=500,  # members learn of a rebalance within half a second
            session_timeout_ms=10_000,
        )

    first, second = member(), member()
    await first.start()
    try:
        await wait_for_assignment(first, 4)
        await second.start()
        try:
            await asyncio.gather(wait_for_assignment(first, 2), wait_for_assignment(second, 2))
            assert first.assignment().isdisjoint(second.assignment())
            assert first.assignment() | second.assignment() == {TopicPartition(topic, n) for n in range(4)}
        finally:
            await second.stop()  # leaves the group explicitly
        await wait_for_assignment(first, 4)
    finally:
        await first.stop()


async def test_broker_does_not_create_topics_on_first_use(kafka_bootstrap: str) -> None:
    # Topics are code (`make topics`); a misspelt topic name must fail instead of silently appearing.
    missing = f"never-created-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(missing, b"lost")
    finally:
        await producer.stop()
    lister = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await lister.start()
    try:
        assert missing not in await lister.topics()
    finally:
        await lister.stop()
