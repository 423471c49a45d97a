"""Reading what a consumer dead-lettered, through the messaging library's own reader (no test spells a
dead-letter header name)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from ticketflow.messaging.dead_letters import DeadLetter


async def read_dead_letters(bootstrap: str, topic: str, count: int = 1, timeout_s: float = 30) -> list[DeadLetter]:
    """The first `count` dead letters of `topic` (a `.dlq`), waiting up to `timeout_s` for each."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = [await asyncio.wait_for(consumer.getone(), timeout_s) for _ in range(count)]
    finally:
        await consumer.stop()
    return [DeadLetter.of(r) for r in records]
