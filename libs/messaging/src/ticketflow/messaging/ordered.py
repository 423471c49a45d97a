"""Consumption pattern (b): an ordered pipeline. Used by intake (`chat.inbound`) and routing (ticket and
agent events): batches overlap, offsets are committed strictly in order after the store.

The subscriber hands each fetched batch to `OrderedPipeline.handle`, which calls `begin(records)` at once
(synchronously, in fetch order: the service decides what it can right away) and returns as soon as the
batch is admitted (at most `depth` batches in flight), so the next batch is fetched and decoded while
earlier ones are still being stored. `begin` returns an awaitable that completes when the batch's effects
are durable (stored, or dead-lettered).

- **Offsets.** A batch commits its offsets (last + 1 per partition) only after its effects are durable
  and the batch before it has committed: the committed offset never passes a record whose effect is not
  stored, whatever finishes first.
- **Failure** (a store outage, a dead-letter publish failing, a bug): the batch and every later one are
  not committed. Once every batch in flight has settled, each partition is sought back to its earliest
  uncommitted offset, `on_rewind` lets the service forget what it held for batches in flight, and
  nothing is admitted for `retry_after_s`. A batch fetched before the seek is recognised by the
  consumer's position (not beyond its first offset) and dropped: it comes again from the seek.
  Redelivered records already stored are no-ops (the services' idempotency).
- **Stop**: `drain` refuses new batches and waits for those in flight (their offsets are committed).
- **Telemetry**: a batch is counted and timed from admission to commit (`metrics`); when a record of it
  is sampled the batch gets one span (`tracing.BatchTrace`), current while `begin` runs, so the store's
  work shows in the trace; each record's events carry the record's own `traceparent` (the service reads
  it with `tracing.header`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import context as otel_context

from ticketflow.messaging import metrics
from ticketflow.messaging.outages import Waiting
from ticketflow.messaging.records import Record
from ticketflow.messaging.subscriptions import batch_subscriber, records_of
from ticketflow.messaging.tracing import BatchTrace

log = logging.getLogger(__name__)
Begin = Callable[[Sequence[Record]], Awaitable[None]]


class Consumer(Protocol):
    """What the pipeline needs of an `AIOKafkaConsumer`."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    async def position(self, partition: TopicPartition) -> int: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass
class _Batch:
    first: dict[TopicPartition, int]  # where to seek back to if this batch is not committed
    offsets: dict[TopicPartition, int]  # what to commit: last offset + 1 per partition
    previous: asyncio.Future[None] | None
    trace: BatchTrace
    admitted: float  # perf_counter
    committed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class NotCommitted(Exception):
    """A batch that did not run, or did not commit, because one before it failed."""


class OrderedPipeline:
    def __init__(
        self,
        name: str,
        begin: Begin,
        *,
        depth: int = 2,
        retry_after_s: float = 1.0,
        on_rewind: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.begin = begin
        self.depth = max(1, depth)
        self.retry_after_s = retry_after_s
        self.on_rewind = on_rewind
        self.waiting = Waiting()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: list[_Batch] = []  # in flight, in fetch order
        self._last_committed: asyncio.Future[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._stopping = False
        self._epoch = 0  # bumped by every seek back

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def handle(self, records: Sequence[Record], consumer: Consumer) -> None:
        """Admit one fetched batch (waits while `depth` batches are in flight or a recovery runs)."""
        while True:
            if self._stopping:
                return  # neither begun nor committed: delivered again to whoever consumes next
            if self._recovery is not None:
                await asyncio.wait([self._recovery])  # never raises; the recovery logs its own failure
                continue
            if len(self._tasks) >= self.depth:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                continue
            epoch = self._epoch
            records = await self._not_sought_past(records, consumer)
            if epoch == self._epoch and self._recovery is None and not self._stopping:
                break
        if records:
            self._admit(records, consumer)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Stop admitting; wait (bounded) for the batches in flight to be stored and committed."""
        self._stopping = True
        pending: set[asyncio.Future[Any]] = set(self._tasks)
        if self._recovery is not None:
            pending.add(self._recovery)
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _not_sought_past(self, records: Sequence[Record], consumer: Consumer) -> Sequence[Record]:
        """Drop the records of a partition the consumer was sought back on (or lost) after they were
        fetched: its position is then at or before them, and they will be fetched again."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
        stale: set[TopicPartition] = set()
        for tp, offset in first.items():
            try:
                if await consumer.position(tp) <= offset:
                    stale.add(tp)
            except IllegalStateError:  # no longer assigned to this consumer
                stale.add(tp)
        if not stale:
            return records
        return [r for r in records if TopicPartition(r.topic, r.partition) not in stale]

    def _admit(self, records: Sequence[Record], consumer: Consumer) -> None:
        first: dict[TopicPartition, int] = {}
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first.setdefault(tp, record.offset)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        trace = BatchTrace.start(records, self.name)
        batch = _Batch(first, offsets, self._last_committed, trace, time.perf_counter())
        self._last_committed = batch.committed
        self._batches.append(batch)
        token = otel_context.attach(trace.context) if trace.context is not None else None
        try:  # tasks `begin` creates, and the settling task, inherit the batch's trace context
            try:
                stored = self.begin(records)
            except Exception as error:  # nothing was decided for it: fail it like a failed store
                stored = _failed(error)
            task = asyncio.create_task(self._settle(batch, stored, consumer))
        finally:
            if token is not None:
                otel_context.detach(token)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        metrics.count_by_topic(self.name, records)

    async def _settle(self, batch: _Batch, stored: Awaitable[None], consumer: Consumer) -> None:
        try:
            await stored
            if batch.previous is not None:
                await batch.previous  # raises if an earlier batch was not committed
            await self._commit(consumer, batch.offsets)
            batch.committed.set_result(None)
            self._batches.remove(batch)
            if not self._batches and self.waiting.waiting:
                self.waiting.recovered()
                metrics.CONSUMER_WAITING.labels(self.name).set(0)
            batch.trace.end()
            metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - batch.admitted)
        except BaseException as exc:
            batch.trace.end(exc)
            if not batch.committed.done():
                batch.committed.set_exception(NotCommitted(repr(exc)))
                batch.committed.exception()  # retrieved: a later batch may never await it
            if isinstance(exc, NotCommitted):
                return  # an earlier batch failed: its recovery covers this one
            self.waiting.failed(exc)
            metrics.CONSUMER_WAITING.labels(self.name).set(1)
            log.warning("%s: batch not stored, will be redelivered: %r", self.name, exc)
            if self._recovery is None and not self._stopping:
                self._recovery = asyncio.create_task(self._recover(consumer))
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _commit(self, consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (KafkaError, IllegalStateError) as exc:
            # Stored but not committed (a rebalance, the coordinator away): delivered again later, a
            # no-op then. A later commit covers these offsets too.
            log.warning("%s: offsets not committed (the records are stored): %r", self.name, exc)

    async def _recover(self, consumer: Consumer) -> None:
        try:
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            earliest: dict[TopicPartition, int] = {}
            for batch in self._batches:
                for tp, offset in batch.first.items():
                    earliest[tp] = min(offset, earliest.get(tp, offset))
            self._batches.clear()
            self._last_committed = None
            if self.on_rewind is not None:
                self.on_rewind()
            for tp, offset in earliest.items():
                with contextlib.suppress(IllegalStateError):  # no longer ours: the next owner starts at the commit
                    consumer.seek(tp, offset)
            self._epoch += 1
            await asyncio.sleep(self.retry_after_s)
        finally:
            self._recovery = None


async def _failed(error: Exception) -> None:
    raise error


def ordered_pipeline(
    broker: KafkaBroker,
    topics: Sequence[str],
    group_id: str,
    pipeline: OrderedPipeline,
    *,
    max_records: int,
    batch_timeout_ms: int = 10,
    persistent: bool = True,
) -> Any:
    """Subscribe `pipeline` to `topics` (one subscriber: their records are admitted in one order)."""
    subscriber = batch_subscriber(
        broker, topics, group_id=group_id, max_records=max_records, batch_timeout_ms=batch_timeout_ms,
        persistent=persistent,
    )  # fmt: skip

    async def on_batch(body: Any, msg: KafkaMessage) -> None:
        try:
            # Returns once the batch is admitted; it is stored, and its offsets committed in order, by
            # the pipeline while the next batch is fetched. Never msg.ack(): that would commit the
            # consumer's position, past batches still in flight.
            await pipeline.handle(records_of(msg), msg.consumer)  # type: ignore[arg-type]
        except Exception as exc:  # not admitted: the batch must come again, never be skipped
            log.warning("%s: batch not admitted, will be redelivered: %r", pipeline.name, exc)
            await asyncio.sleep(pipeline.retry_after_s)
            await msg.nack()

    subscriber(on_batch)
    return subscriber
