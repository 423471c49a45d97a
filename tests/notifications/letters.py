"""Dead letters as the notifications tests read them back, through `DeadLetter.of` (never a header
name): what a `RecordingProducer` was given, or the first records of a `<topic>.dlq` on the broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from support.records import FakeRecord, RecordingProducer

from ticketflow.messaging.dead_letters import DeadLetter


def dead_letters_sent(producer: RecordingProducer) -> list[DeadLetter]:
    return [
        DeadLetter.of(FakeRecord(sent["topic"], 0, offset, sent["key"], sent["value"], 0, sent["headers"]))
        for offset, sent in enumerate(producer.sent)
    ]


async def dead_letters_on(bootstrap: str, topic: str, count: int = 1, timeout_s: float = 30) -> list[DeadLetter]:
    """The first `count` records of `topic`, waiting up to `timeout_s` for each."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return [DeadLetter.of(await asyncio.wait_for(consumer.getone(), timeout_s)) for _ in range(count)]
    finally:
        await consumer.stop()
