"""Consuming `ticket.events`: partition ownership, batches into the engine, checkpoints.

An aiokafka consumer rather than a FastStream subscriber, because the SLA service must act on
partition assignment (restore the partition's state and seek to its checkpoint before the first
record) and revocation (checkpoint, then drop its timers), and take records in batches of thousands
for throughput. Kafka's committed offsets are written after each checkpoint for lag monitoring
only: the checkpoint table is where a new owner starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from ticketflow.sla import checkpoint
from ticketflow.sla.engine import SlaEngine
from ticketflow.sla.partition import Batch

log = logging.getLogger(__name__)


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: SlaConsumer) -> None:
        self.owner = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.acquire([tp.partition for tp in assigned])


class SlaConsumer:
    def __init__(
        self,
        engine: SlaEngine,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str,
        *,
        group_id: str = "sla",
        checkpoint_every_s: float = 5.0,
        max_records: int = 500,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.checkpoint_every_s = checkpoint_every_s
        self.max_records = max_records
        self.consumer_options = consumer_options or {}
        self.consumer: AIOKafkaConsumer | None = None
        self.checkpoints = 0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=f"ticketflow-{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **self.consumer_options,
        )
        consumer.subscribe([self.topic], listener=_Ownership(self))
        await consumer.start()
        timers = asyncio.create_task(self.engine.loop.run())
        last_checkpoint = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=self.max_records)
                if batches:  # one decision pass and one pipelined commit for the whole poll
                    polled = [
                        Batch(tp.partition, [r.offset for r in rs], [r.key for r in rs], [r.value for r in rs])
                        for tp, rs in batches.items()
                    ]
                    await self.engine.handle_many(polled)
                await self._go_live_when_caught_up(consumer)
                if time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                    await self.checkpoint_all()
                    last_checkpoint = time.monotonic()
        finally:
            self.engine.loop.stop()
            await asyncio.gather(timers, return_exceptions=True)
            try:
                await self.engine.drain()
                await self.checkpoint_all()
            finally:
                for number in list(self.engine.partitions):
                    self.engine.revoke(number)
                await self.engine.close()
                await consumer.stop()

    async def acquire(self, partitions: list[int]) -> None:
        consumer = self.consumer
        assert consumer is not None
        tps = [TopicPartition(self.topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps) if tps else {}
        beginnings = await consumer.beginning_offsets(tps) if tps else {}
        for tp in tps:
            saved = await checkpoint.load(self.pool, self.topic, tp.partition)
            if saved is None:
                saved = checkpoint.Checkpoint(beginnings[tp], {}, "")
            offset = max(saved.next_offset, beginnings[tp])  # records older than retention are gone either way
            consumer.seek(tp, offset)
            await self.engine.assign(tp.partition, offset, saved.tickets, ends[tp], saved.configuration)

    async def release(self, partitions: list[int]) -> None:
        for number in partitions:
            await self.checkpoint(number)
            async with self.engine.lock:
                self.engine.revoke(number)

    async def _go_live_when_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        if all(part.live for part in self.engine.partitions.values()):
            return
        for part in list(self.engine.partitions.values()):
            if not part.live:
                position = await consumer.position(TopicPartition(self.topic, part.number))
                if position >= part.catch_up_to:
                    async with self.engine.lock:
                        part.next_offset = max(part.next_offset, position)
                        await self.engine.go_live(part)

    async def checkpoint(self, number: int) -> None:
        """Take the partition's changes under the lock (a consistent cut: states and offset decided
        up to now), then wait, without the lock, until the store has every event queued before the
        cut, and only then write them: a checkpoint never runs ahead of the store, and consuming and
        firing go on meanwhile."""
        async with self.engine.lock:
            taken = self.engine.snapshot_of(number)
            barrier = self.engine.queue.barrier()
        if taken is None:
            return
        next_offset, changed, removed, configuration = taken
        try:
            await self.engine.queue.wait(barrier)
            await checkpoint.save(self.pool, self.topic, number, next_offset, changed, removed, configuration)
        except BaseException:
            self.engine.unsnapshot(number, changed, removed)
            raise
        self.checkpoints += 1
        if self.consumer is not None:
            tp = TopicPartition(self.topic, number)
            try:
                await self.consumer.commit({tp: next_offset})
            except Exception as error:  # lag monitoring only; the checkpoint table is the truth
                log.info("offset commit for partition %d skipped: %r", number, error)

    async def checkpoint_all(self) -> None:
        for number in list(self.engine.partitions):
            await self.checkpoint(number)


def describe(consumer: SlaConsumer) -> dict[str, Any]:
    engine = consumer.engine
    return {
        "partitions": sorted(engine.partitions),
        "live": sorted(n for n, p in engine.partitions.items() if p.live),
        "timers": engine.timers(),
        "events": engine.stats.events,
        "fired": engine.stats.fired,
        "queued_events": engine.queue.pending(),  # decided, not yet in the store
        "flushes": engine.queue.flushes,
        "dead_letters": engine.stats.dead_letters,
        "checkpoints": consumer.checkpoints,
    }
