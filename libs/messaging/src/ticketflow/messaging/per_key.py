"""Consumption pattern (a): per-key batches. Used by preflight, notifications and intake's agent commands.

A fetched batch is grouped by record key (a ticket, a conversation): one key's records run in order,
keys run concurrently (at most `parallel` at once), so one slow ticket holds only itself. For each
record: decode (msgspec), then handle.
- A record that does not decode, or that the handler refuses as bad in itself (`bad_input`), goes to
  `<topic>.dlq` with the cause; so does a bug (any other exception): it must not stop the partition.
- An outage (`OUTAGES`: the database or the broker away) is retried in place `attempts` times; if it
  lasts, the batch is given back uncommitted (seek back) and comes again after a pause that grows with
  each failure, until the outage ends. Valid records are never dead-lettered for it. Handlers are
  idempotent (event-id claims, delivery keys), so records handled before the outage are no-ops then.
- `after_batch` (optional) runs once every record is handled: work the batch shares (notifications
  records its outcome events); an outage there gives the batch back too.
The offsets are committed only after all of this (`AckPolicy.MANUAL`, `msg.ack()`).

Each record is handled in its own trace context (`tracing.consume`: a consumer span, child of the
record's `traceparent`, current while it is handled) and log context (`log_context`: its ticket and event
ids); the batch is counted and timed (`metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import context as otel_context
from opentelemetry import trace

from ticketflow.messaging import metrics, tracing
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.log_context import EVENT_ID, TICKET_ID, ids_of
from ticketflow.messaging.outages import OUTAGES, Backoff, Waiting
from ticketflow.messaging.records import Record
from ticketflow.messaging.subscriptions import batch_subscriber, records_of

T = TypeVar("T")
log = logging.getLogger(__name__)
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


class BatchNotProcessed(Exception):
    """An outage outlasted the in-place retries: the batch must come again (not committed)."""


@dataclass
class PerKeyBatches(Generic[T]):
    name: str
    decode: Callable[[bytes], T]
    handle: Callable[[T, Record], Awaitable[object]]
    dead_letters: DeadLetterWriter
    bad_input: tuple[type[BaseException], ...] = ()
    after_batch: Callable[[], Awaitable[None]] | None = None
    parallel: int = 64
    attempts: int = 4
    outages: tuple[type[BaseException], ...] = OUTAGES
    backoff: Backoff = field(default_factory=Backoff)
    waiting: Waiting = field(default_factory=Waiting)
    handled: int = 0

    async def process(self, records: Sequence[Record]) -> None:
        """Handle or dead-letter every record of the batch; raises `BatchNotProcessed` on a lasting outage."""
        started = time.perf_counter()
        by_key: dict[bytes | None, list[Record]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        gate = asyncio.Semaphore(self.parallel)

        async def in_order(group: list[Record]) -> None:
            async with gate:
                for record in group:
                    await self._one(record)

        outcomes = await asyncio.gather(*(in_order(g) for g in by_key.values()), return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is None and self.after_batch is not None:
            failure = await self._retrying(self.after_batch)
        if failure is not None:
            metrics.CONSUMER_WAITING.labels(self.name).set(1)
            raise BatchNotProcessed(repr(failure)) from failure
        if self.waiting.waiting:
            metrics.CONSUMER_WAITING.labels(self.name).set(0)
        self.waiting.recovered()
        metrics.count_by_topic(self.name, records)
        metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _one(self, record: Record) -> None:
        started = time.perf_counter()
        span, context = tracing.consume(record, self.name)
        token = otel_context.attach(context) if context is not None else None
        failure: BaseException | None = None
        try:
            failure = await self._decoded_and_handled(record)
        except BaseException as error:
            failure = error
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
            if span is not None:
                if failure is not None:
                    span.record_exception(failure)
                    span.set_status(trace.StatusCode.ERROR, repr(failure))
                span.end()
            metrics.HANDLER_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _decoded_and_handled(self, record: Record) -> BaseException | None:
        """Handled (None) or dead-lettered (the cause); an outage is raised: the batch comes again."""
        try:
            item = self.decode(record.value or b"")
        except DECODE_ERRORS as error:
            await self.dead_letters.send(record, "undecodable", str(error))
            return None
        ticket_id, event_id = ids_of(item)
        ticket, event = TICKET_ID.set(ticket_id), EVENT_ID.set(event_id)
        try:
            failure = await self._retrying(lambda: self.handle(item, record))
            if failure is None:
                self.handled += 1
            elif isinstance(failure, self.bad_input):
                await self.dead_letters.send(record, "rejected", str(failure), **_context(item))
            elif isinstance(failure, self.outages):
                raise failure
            else:  # a bug must not stop the partition: keep the record and the cause for a person
                log.error("%s: unexpected failure on %s@%d", self.name, record.topic, record.offset, exc_info=failure)
                await self.dead_letters.send(record, "unexpected error", repr(failure), **_context(item))
            return failure
        finally:
            EVENT_ID.reset(event)
            TICKET_ID.reset(ticket)

    async def _retrying(self, action: Callable[[], Awaitable[object]]) -> BaseException | None:
        """None when `action` succeeded; else the exception it ended with (outages retried first)."""
        for attempt in range(1, self.attempts + 1):
            try:
                await action()
                return None
            except self.outages as outage:
                if attempt == self.attempts:
                    return outage
                await asyncio.sleep(self.backoff.delay(attempt))
            except Exception as error:
                return error
        raise AssertionError("unreachable")


def _context(item: object) -> dict[str, str]:
    """What the dead letter names of the decoded record: its event or command id, when it has one."""
    context = {}
    for name in ("event_id", "command_id"):
        value = getattr(item, name, None)
        if value is not None:
            context[name] = str(value)
    return context


def per_key_batches(
    broker: KafkaBroker,
    topics: Sequence[str],
    group_id: str,
    worker: PerKeyBatches[Any],
    *,
    max_records: int = 500,
    batch_timeout_ms: int = 10,
    persistent: bool = True,
) -> Any:
    """Subscribe `worker` to `topics`; returns the subscriber."""
    subscriber = batch_subscriber(
        broker, topics, group_id=group_id, max_records=max_records, batch_timeout_ms=batch_timeout_ms,
        persistent=persistent,
    )  # fmt: skip

    async def on_batch(body: Any, msg: KafkaMessage) -> None:
        try:
            await worker.process(records_of(msg))
        except BatchNotProcessed as outage:
            pause = worker.backoff.delay(worker.waiting.failed(outage))
            log.warning("%s: batch not processed, again in %.1fs: %s", worker.name, pause, outage)
            await asyncio.sleep(pause)
            await msg.nack()  # seek back: the same records come again
            return
        await msg.ack()

    subscriber(on_batch)
    return subscriber
