"""Dead letters read back (newest first) and redriven (all, or filtered by reason or age) on the real
broker; an empty or missing dead-letter topic says so."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from support.infra import KafkaTopicFactory
from support.records import FakeRecord

from ticketflow.messaging import redrive as r
from ticketflow.messaging import topics
from ticketflow.messaging.dead_letters import AT, DeadLetter, DeadLetterWriter


async def read_topic(bootstrap: str, topic: str, seconds: float = 2.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got += [rec.value or b"" for rec in records]
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def declared(kafka_topic_factory: KafkaTopicFactory, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A topic and its .dlq, declared as the project's topics are (so the redrive knows it has one)."""
    topic = await kafka_topic_factory(suffix="orders")
    await kafka_topic_factory(name=f"{topic}.dlq")
    monkeypatch.setitem(topics.TOPICS_BY_NAME, f"{topic}.dlq", topics.TOPICS_BY_NAME["ticket.events.dlq"])
    yield topic


async def dead_letters_aged(bootstrap: str, topic: str, letters: list[tuple[bytes, str, int]]) -> None:
    """Dead letters as the writer makes them, but dead-lettered `age_s` seconds ago."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n, (value, reason, age_s) in enumerate(letters):
            writer = DeadLetterWriter(AgedProducer(producer, int((time.time() - age_s) * 1000)), "test")  # type: ignore[arg-type]
            await writer.send(FakeRecord(topic, 0, n, b"k", value, headers=(("traceparent", b"tp"),)), reason, "why")
    finally:
        await producer.stop()


class AgedProducer:
    """Passes a dead letter on with its dead-lettered-at header set back in time."""

    def __init__(self, producer: AIOKafkaProducer, at_ms: int) -> None:
        self.producer, self.at_ms = producer, at_ms

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        aged = [(n, str(self.at_ms).encode() if n == AT else v) for n, v in headers]
        await self.producer.send_and_wait(topic, value, key=key, headers=aged)


@pytest.mark.kafka
async def test_a_filtered_redrive_takes_what_matches_and_leaves_the_rest_for_a_later_one(
    kafka_bootstrap: str, declared: str
) -> None:
    topic, group = declared, f"redrive-{uuid.uuid4().hex[:6]}"
    letters = [(b"old undecodable", "undecodable", 7200), (b"new rejected", "rejected", 10)]
    await dead_letters_aged(kafka_bootstrap, topic, [*letters, (b"new undecodable", "undecodable", 5)])
    newest = await r.read_dead_letters(kafka_bootstrap, topic, limit=10)
    assert [d.value for d in newest] == [b"new undecodable", b"new rejected", b"old undecodable"]

    only_old = await r.redrive(kafka_bootstrap, topic, which=r.DeadLetterFilter(min_age_s=3600), group=group)
    assert (only_old.read, only_old.redriven, only_old.left) == (3, 1, 2)
    assert await read_topic(kafka_bootstrap, topic) == [b"old undecodable"]

    undecodable = await r.redrive(kafka_bootstrap, topic, which=r.DeadLetterFilter(reason="undecodable"), group=group)
    assert (undecodable.read, undecodable.redriven) == (2, 1)  # the old one was committed past; "rejected" stays
    everything = await r.redrive(kafka_bootstrap, topic, group=group)
    assert everything.redriven == 2  # "rejected", and the undecodable after it (consumers are idempotent)
    assert sorted(await read_topic(kafka_bootstrap, topic)) == sorted(
        [b"old undecodable", b"new undecodable", b"new rejected", b"new undecodable"]
    )
    nothing = await r.redrive(kafka_bootstrap, topic, group=group)
    assert nothing.read == 0 and "has no dead letter to redrive" in nothing.describe()


@pytest.mark.kafka
async def test_redriven_records_carry_their_original_headers_marked(kafka_bootstrap: str, declared: str) -> None:
    await dead_letters_aged(kafka_bootstrap, declared, [(b"one", "undecodable", 0)])
    await r.redrive(kafka_bootstrap, declared, group=f"redrive-{uuid.uuid4().hex[:6]}")
    consumer = AIOKafkaConsumer(declared, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert dict(record.headers) == {"traceparent": b"tp", "x-redriven-from": b"dlq"}
    assert DeadLetter.of(record).reason == "?"  # no dead-letter header travels back


@pytest.mark.kafka
async def test_an_empty_or_missing_dead_letter_topic_says_so(
    kafka_bootstrap: str, declared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await r.redrive(kafka_bootstrap, declared, group=f"redrive-{uuid.uuid4().hex[:6]}")
    assert (empty.read, empty.redriven) == (0, 0)
    assert empty.describe() == f"{declared}.dlq has no dead letter to redrive (empty, or every one redriven already)"
    assert await r.read_dead_letters(kafka_bootstrap, declared) == []
    with pytest.raises(r.NoDeadLetterTopic, match=r"has no dead-letter topic; topics with one: agent\.events"):
        await r.redrive(kafka_bootstrap, "no.such.topic")
    monkeypatch.setitem(topics.TOPICS_BY_NAME, "never.created.dlq", topics.TOPICS_BY_NAME["ticket.events.dlq"])
    with pytest.raises(r.NoDeadLetterTopic, match=r"never\.created\.dlq does not exist on the broker"):
        await r.redrive(kafka_bootstrap, "never.created")
