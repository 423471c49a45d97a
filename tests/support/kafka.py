"""Reading what a consumer dead-lettered: the first records of a topic, from its start."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer


async def dead_letters(
    bootstrap: str, topic: str, count: int = 1, timeout_s: float = 30
) -> list[tuple[bytes, dict[str, str]]]:
    """The first `count` records of `topic` (value, headers decoded), waiting up to `timeout_s` for each."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = [await asyncio.wait_for(consumer.getone(), timeout_s) for _ in range(count)]
    finally:
        await consumer.stop()
    return [(r.value or b"", {k: v.decode() for k, v in r.headers}) for r in records]
