"""Producing many records: one producer batch per (topic, partition), sent when full and at the end.

`AIOKafkaProducer.send` per record spends most of its time in aiokafka's own bookkeeping (a future
and a pure-Python murmur2 per record); `create_batch`/`send_batch` skip both. Records keep their
order within a partition: batches of one partition are sent in the order they were filled. Records the
broker acknowledged are counted in `ticketflow_records_produced_total`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from ticketflow.messaging.metrics import RECORDS_PRODUCED


class PartitionBatches:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self._added: dict[str, int] = {}  # records per topic since the last send_all

    async def add(
        self, topic: str, partition: int, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        """Add a record to its partition's batch; a full batch is sent first (raises ValueError for a
        record larger than an empty batch)."""
        self._added[topic] = self._added.get(topic, 0) + 1
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full: send it
            self._sent.append(await self.producer.send_batch(batch, topic, partition=partition))
            batch = self._open[(topic, partition)] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value)} bytes is larger than a producer batch")

    async def send_all(self) -> None:
        """Send what is left and wait until the broker acknowledged every record added."""
        for (topic, partition), batch in self._open.items():
            self._sent.append(await self.producer.send_batch(batch, topic, partition=partition))
        self._open.clear()
        sent, self._sent = self._sent, []
        added, self._added = self._added, {}
        await asyncio.gather(*sent)
        for topic, count in added.items():
            RECORDS_PRODUCED.labels(topic).inc(count)
