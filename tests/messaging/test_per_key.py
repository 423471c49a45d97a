"""Pattern (a), per-key batches: in memory for the rules, then on the real broker for the commits.

- each key's records in order, keys concurrently; bad records (undecodable, refused, a bug) dead-lettered
  with their cause, the good ones around them handled;
- an outage is retried in place, then the batch is given back: never a dead letter for a valid record;
  on the broker, nothing is committed past it and every record is handled once the outage ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from support.polling import eventually
from support.records import FakeRecord, RecordingProducer

from ticketflow.eventstore.errors import RetryableStoreError
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.outages import Backoff
from ticketflow.messaging.per_key import BatchNotProcessed, PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record


class Item(msgspec.Struct, frozen=True):
    n: int
    kind: str = "ok"


class Refused(Exception):
    pass


class Handler:
    """Handles items in the order given; `outage_left` outages first (per item n), `slow` items wait."""

    def __init__(self) -> None:
        self.handled: list[tuple[bytes | None, int]] = []
        self.outage_left: dict[int, int] = {}
        self.slow: dict[int, asyncio.Event] = {}

    async def __call__(self, item: Item, record: Record) -> None:
        if item.kind == "refused":
            raise Refused(f"item {item.n} is not for us")
        if item.kind == "bug":
            raise ZeroDivisionError("a bug")
        if self.outage_left.get(item.n, 0) > 0:
            self.outage_left[item.n] -= 1
            raise RetryableStoreError("database away")
        if item.n in self.slow:
            await self.slow[item.n].wait()
        if (record.key, item.n) not in self.handled:  # idempotent, as every consumer here is
            self.handled.append((record.key, item.n))


def worker(handler: Handler, producer: Any, **options: Any) -> PerKeyBatches[Item]:
    return PerKeyBatches(
        "test", msgspec.json.Decoder(Item).decode, handler, DeadLetterWriter(producer, "test"),
        bad_input=(Refused,), backoff=Backoff(first_s=0.001, cap_s=0.01), **options,
    )  # fmt: skip


def records(*items: tuple[bytes, bytes]) -> list[FakeRecord]:
    return [FakeRecord("t", 0, offset, key, value) for offset, (key, value) in enumerate(items)]


def enc(n: int, kind: str = "ok") -> bytes:
    return msgspec.json.encode(Item(n, kind))


async def test_bad_records_are_dead_lettered_with_their_cause_and_the_rest_is_handled() -> None:
    handler, producer = Handler(), RecordingProducer()
    batch = records((b"a", enc(1)), (b"a", b"{not json"), (b"b", enc(2, "refused")), (b"b", enc(3, "bug")),
                    (b"c", enc(4)))  # fmt: skip
    await worker(handler, producer).process(batch)
    assert sorted(handler.handled) == [(b"a", 1), (b"c", 4)]
    causes = [DeadLetter.of(FakeRecord("t.dlq", 0, 0, s["key"], s["value"], 0, s["headers"])) for s in producer.sent]
    assert [(c.reason, c.original_offset) for c in causes] == [
        ("undecodable", 1), ("rejected", 2), ("unexpected error", 3),
    ]  # fmt: skip
    assert "not for us" in causes[1].detail and "ZeroDivisionError" in causes[2].detail


async def test_one_keys_records_run_in_order_while_another_key_goes_on() -> None:
    handler = Handler()
    handler.slow[1] = asyncio.Event()
    task = asyncio.create_task(worker(handler, RecordingProducer()).process(
        records((b"a", enc(1)), (b"a", enc(2)), (b"b", enc(3)))
    ))  # fmt: skip
    await eventually(lambda: handler.handled == [(b"b", 3)], "b handled while a waits")
    handler.slow[1].set()
    await task
    assert handler.handled == [(b"b", 3), (b"a", 1), (b"a", 2)]


async def test_a_short_outage_is_retried_in_place_and_a_long_one_gives_the_batch_back() -> None:
    handler, producer = Handler(), RecordingProducer()
    handler.outage_left = {1: 2}
    await worker(handler, producer).process(records((b"a", enc(1))))
    assert handler.handled == [(b"a", 1)] and producer.sent == []

    handler.outage_left = {2: 100}
    patient = worker(handler, producer, attempts=3)
    with pytest.raises(BatchNotProcessed):
        await patient.process(records((b"a", enc(2)), (b"a", enc(5)), (b"b", enc(6))))
    assert (b"a", 5) not in handler.handled  # the key's later record waits behind the outage
    assert producer.sent == []  # valid records are never dead-lettered for an outage


@pytest.mark.parametrize(
    "cut",
    [
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.ConnectionDoesNotExistError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_what_a_real_database_stop_raises_is_waited_out_not_dead_lettered(cut: Exception) -> None:
    """What `pg_ctl stop -m fast` made asyncpg raise in tests/outage: each is an outage (issue 16; the
    first one dead-lettered a valid event before it was counted as one)."""

    async def cut_off(item: Item, record: Record) -> None:
        raise cut

    producer = RecordingProducer()
    consumer = PerKeyBatches("test", msgspec.json.Decoder(Item).decode, cut_off, DeadLetterWriter(producer, "test"),
                             attempts=2, backoff=Backoff(first_s=0.001, cap_s=0.01))  # fmt: skip
    with pytest.raises(BatchNotProcessed):
        await consumer.process(records((b"a", enc(1))))
    assert producer.sent == []


async def test_after_batch_runs_once_every_record_is_handled_and_its_outage_gives_the_batch_back() -> None:
    handler, calls = Handler(), []

    async def after() -> None:
        calls.append(len(handler.handled))
        if len(calls) == 1:
            raise RetryableStoreError("outcome events not written")

    flaky = worker(handler, RecordingProducer(), after_batch=after, attempts=1)
    with pytest.raises(BatchNotProcessed):
        await flaky.process(records((b"a", enc(1)), (b"b", enc(2))))
    await flaky.process(records((b"a", enc(1)), (b"b", enc(2))))  # redelivered: the handler is idempotent
    assert calls == [2, 2]


@pytest.mark.kafka
async def test_on_the_broker_nothing_is_committed_past_an_outage_and_everything_is_handled_after_it(
    kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=2)
    await kafka_topic_factory(partitions=1, name=f"{topic}.dlq")
    group = f"g-{uuid.uuid4()}"
    sender = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await sender.start()
    handler = Handler()
    handler.outage_left = {3: 3}  # outlasts one delivery (attempts=2): given back, then handled
    broker = KafkaBroker(kafka_bootstrap)
    dead_letters = DeadLetterWriter(sender, "test")
    keyed = PerKeyBatches("test", msgspec.json.Decoder(Item).decode, handler, dead_letters, attempts=2,
                          backoff=Backoff(first_s=0.01, cap_s=0.05))  # fmt: skip
    per_key_batches(broker, [topic], group, keyed, max_records=10)
    try:
        for n in range(1, 7):
            await sender.send_and_wait(topic, enc(n) if n != 5 else b"garbage", key=f"k{n % 3}".encode())
        await broker.start()
        await eventually(lambda: len(handler.handled) == 5, "every good record handled")
        assert sorted(n for _, n in handler.handled) == [1, 2, 3, 4, 6]
        # The last record is handled before its batch ends and the consumer is marked recovered.
        await eventually(lambda: keyed.waiting.failures == 0, "the consumer recovered")
        await eventually(lambda: _committed(kafka_bootstrap, topic, group, expected=6), "all 6 offsets committed")
        dead = await _read(kafka_bootstrap, f"{topic}.dlq", 1)
        # Only the garbage (once per delivery of its batch: a dead letter may repeat, never a valid record).
        assert {DeadLetter.of(r).reason for r in dead} == {"undecodable"}
    finally:
        await broker.stop()
        await sender.stop()


async def _committed(bootstrap: str, topic: str, group: str, *, expected: int) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        total = 0
        for partition in (0, 1):
            total += await consumer.committed(TopicPartition(topic, partition)) or 0
        return total == expected
    finally:
        await consumer.stop()


async def _read(bootstrap: str, topic: str, count: int) -> Sequence[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < count:
                for rs in (await consumer.getmany(timeout_ms=300)).values():
                    got += rs
    finally:
        await consumer.stop()
    return got
