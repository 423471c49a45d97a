"""Consumption pattern (c): partition-owning consumers. Used by the SLA service.

A partition's state (its tickets and timers) lives in the process that owns the partition. The owner is
told when partitions are assigned (restore their state from its checkpoint and seek there, before the
first record) and revoked (checkpoint, then drop them); it gets each poll's records grouped by
partition, and a `tick` after every batch and every `tick_every_s` when idle (go live, checkpoint).
Kafka's committed offsets are for lag monitoring only: the owner's checkpoints are where a new owner
starts, so this pattern never commits on its own.

`run_owned_partitions` runs rounds until stopped: each round makes a fresh owner, subscribes with a
rebalance listener, and consumes until the stop, until the owner fails (`failed` set, or `records`
raising), or until it asks for a fresh round (`renew` set: a configuration reload); then the subscriber
stops, the owner finishes (`stopped`: drain, final checkpoint, release), and the next round starts from
the checkpoints (after a pause when the round failed).

Each poll is counted and timed (`metrics`); when a record of it is sampled, the poll gets one span
(`tracing.BatchTrace`), current while the owner handles it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import context as otel_context

from ticketflow.messaging import metrics
from ticketflow.messaging.records import Record
from ticketflow.messaging.subscriptions import batch_subscriber, records_of, sleep_or_stop
from ticketflow.messaging.tracing import BatchTrace

log = logging.getLogger(__name__)


class PartitionControl:
    """The owner's handle on its consumer, in partition numbers of one topic."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self.topic = topic

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(self._tp(partition), offset)

    async def end_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        ends = await self._consumer.end_offsets([self._tp(p) for p in partitions]) if partitions else {}
        return {tp.partition: offset for tp, offset in ends.items()}

    async def beginning_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        starts = await self._consumer.beginning_offsets([self._tp(p) for p in partitions]) if partitions else {}
        return {tp.partition: offset for tp, offset in starts.items()}

    async def position(self, partition: int) -> int:
        return int(await self._consumer.position(self._tp(partition)))

    async def commit(self, partition: int, offset: int) -> None:
        """For lag monitoring: a failure (a rebalance under way) is logged, not raised."""
        try:
            await self._consumer.commit({self._tp(partition): offset})
        except Exception as error:
            log.info("offset commit for %s[%d] skipped: %r", self.topic, partition, error)


class PartitionOwner(Protocol):
    failed: BaseException | None  # set when the owner cannot go on: the round ends and starts afresh
    renew: bool  # set to end the round cleanly (checkpointed): the next owner starts at once

    async def assigned(self, partitions: Sequence[int], control: PartitionControl) -> None: ...
    async def revoked(self, partitions: Sequence[int]) -> None: ...
    async def records(self, batches: Mapping[int, Sequence[Record]], control: PartitionControl) -> None: ...
    async def tick(self, control: PartitionControl) -> None: ...
    async def stopped(self) -> None: ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PartitionOwner, control: Callable[[], PartitionControl]) -> None:
        self.owner = owner
        self.control = control

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.assigned([tp.partition for tp in assigned], self.control())


async def run_owned_partitions(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    make_owner: Callable[[], Awaitable[PartitionOwner]],
    stop: asyncio.Event,
    *,
    max_records: int = 500,
    tick_every_s: float = 1.0,
    restart_after_s: float = 1.0,
    **consumer_options: Any,
) -> None:
    while not stop.is_set():
        owner = await make_owner()
        await _round(broker, topic, group_id, owner, stop, max_records, tick_every_s, consumer_options)
        if owner.failed is not None and not stop.is_set():
            await sleep_or_stop(stop, restart_after_s)


async def _round(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    owner: PartitionOwner,
    stop: asyncio.Event,
    max_records: int,
    tick_every_s: float,
    consumer_options: dict[str, Any],
) -> None:
    """One owner's term: consume until the stop or its failure, then stop consuming and let it finish."""
    subscriber: Any = None

    def control() -> PartitionControl:
        return PartitionControl(subscriber.consumer, topic)

    async def on_batch(body: Any, msg: KafkaMessage) -> None:
        started, records = time.perf_counter(), records_of(msg)
        grouped: dict[int, list[Record]] = {}
        for record in records:
            grouped.setdefault(record.partition, []).append(record)
        trace = BatchTrace.start(records, group_id)
        token = otel_context.attach(trace.context) if trace.context is not None else None
        try:
            await owner.records(grouped, control())
            await owner.tick(control())
            trace.end()
        except Exception as error:
            trace.end(error)
            log.exception("%s: partition owner failed; restarting from its checkpoints", group_id)
            owner.failed = owner.failed or error
        finally:
            if token is not None:
                otel_context.detach(token)
        metrics.count_by_topic(group_id, records)
        metrics.BATCH_SECONDS.labels(group_id).observe(time.perf_counter() - started)

    subscriber = batch_subscriber(
        broker, [topic], group_id=group_id, max_records=max_records, batch_timeout_ms=100, persistent=False,
        listener=_Listener(owner, control), **consumer_options,
    )  # fmt: skip
    subscriber(on_batch)
    await subscriber.start()
    try:
        while not stop.is_set() and owner.failed is None and not owner.renew:
            await sleep_or_stop(stop, tick_every_s)
            if subscriber.consumer is not None and owner.failed is None:
                await owner.tick(control())
    finally:
        await subscriber.stop()
        await owner.stopped()
