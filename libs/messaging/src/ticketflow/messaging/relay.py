"""The relay: publishes the event store's global log to Kafka, each event once, in per-ticket order.

It follows the log as projections do (`(transaction_id, position)` after a checkpoint, only rows
older than every running transaction, so none is skipped), and the store writes that order to agree
with each stream's version order. Each batch goes out in one Kafka transaction that also commits the
relay's checkpoint (its consumer group's offset, see `CheckpointInKafka`): the records and the
checkpoint become visible together or not at all. A relay killed mid-batch leaves an open transaction
that its successor aborts (same transactional id), and the successor starts from the last committed
checkpoint, so consumers reading `read_committed` (every pattern in `messaging.subscriptions` does)
see each event once. This is how Kafka Connect's exactly-once source connectors keep their offsets.

Leadership: one relay per name publishes at a time (an advisory lock); a former leader that lost
the lock without noticing is fenced by Kafka (its transactional id is the new leader's), so two
relays never interleave a ticket's events.

A record larger than the broker takes (`max_record_bytes`, below Kafka's default `message.max.bytes`)
would fail every transaction it is in and stop the relay for everyone. It goes instead, in the same
transaction and without its value, to `<topic>.dlq` with the reason "too large for Kafka", counted in
`ticketflow_dead_letters_total`: the event stays in the store, consumers reload the ticket's stream on
the gap (routing) or miss that one event, and an SRE raises the topic's limit and replays the ticket
(docs/operations.md). Measured in `make bench-sla-burst`, `make bench-intake`,
`make bench-routing` (docs/benchmarks.md, "The relay")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.eventstore.store import Checkpoint, EventStore
from ticketflow.messaging.dead_letters import dead_letter_headers, dead_letter_topic
from ticketflow.messaging.event_records import RECORD_COLUMNS, EventRecord, event_records
from ticketflow.messaging.metrics import DEAD_LETTERS, RECORDS_PRODUCED
from ticketflow.messaging.partitioning import partitions_of
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
RELAY_LOCK_CLASS = 7_242_002  # advisory lock (class, hashtext(name)): one leader per relay name
# A batch's transaction lasts well under a second. One left open by a relay that died holds back every
# read_committed consumer of its partitions until the next relay starts or the broker aborts it after
# this long (aiokafka's default is 60 s).
TRANSACTION_TIMEOUT_MS = 15_000
# Kafka's default `message.max.bytes` is 1,048,588 for a record batch; a record this size leaves room for
# the batch's own overhead. Raise it only with the topics' limit.
MAX_RECORD_BYTES = 1_000_000
TOO_LARGE = "too large for Kafka"

# The log after a checkpoint, as `EventStore.read_all` reads it, as records (`event_records`).
_LOG_AFTER = f"""
SELECT {RECORD_COLUMNS}
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2::bigint)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.transaction_id, events.position
LIMIT $3
"""
_ORIGIN = "SELECT transaction_id::text, position FROM relay_origin LIMIT 1"
_LOCK = "SELECT pg_try_advisory_lock($1, hashtext($2))"


class CheckpointInKafka:
    """The relay's checkpoint, kept where its records are: the committed offset of consumer group `name`
    on partition 0 of `topic` (offset = position, metadata = transaction id), written by
    `send_offsets_to_transaction` in each batch's transaction. No consumer uses that group."""

    def __init__(self, bootstrap: str, name: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.name, self.security = bootstrap, name, security
        self.partition = TopicPartition(topic, 0)

    def offsets(self, checkpoint: Checkpoint) -> dict[TopicPartition, OffsetAndMetadata]:
        return {self.partition: OffsetAndMetadata(checkpoint.position, str(checkpoint.transaction_id))}

    async def load(self) -> Checkpoint | None:
        """The last committed checkpoint; None when this relay never committed one."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security.client_options())
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(self.name, partitions=[self.partition])
        finally:
            await admin.close()
        found = committed.get(self.partition)
        if found is None or found.offset < 0 or not found.metadata:
            return None
        return Checkpoint(int(found.metadata), found.offset)


@dataclass
class _Prepared:
    """A batch of the log turned into per-partition producer batches, before its transaction."""

    batches: list[tuple[str, int, Any]]
    count: int
    checkpoint: Checkpoint
    per_topic: dict[str, int]  # records, for `ticketflow_records_produced`
    too_large: list[str] = field(default_factory=list)  # the topics of records sent to their dead letters
    sent: list[asyncio.Future[Any]] = field(default_factory=list)


class Relay:
    def __init__(
        self,
        store: EventStore,
        bootstrap: str,
        security: KafkaSecurity = PLAINTEXT,
        *,
        name: str = "",
        batch_size: int = 5000,  # a burst drains in large batches (docs/benchmarks.md, SLA service, session 3)
        idle_sleep: float = 0.02,
        retry_after_s: float = 1.0,
        topic_names: Mapping[str, str] | None = None,
        start: Checkpoint | None = None,
        producer_options: Mapping[str, Any] | None = None,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        """`name`: the leader lock's, the transactional id's and the checkpoint group's, one per event
        store (default `ticketflow-relay.<database name>`). `topic_names`: logical -> physical topic
        (tests, environments). `start`: where a relay with no checkpoint yet begins (default: the
        store's `relay_origin`, else the beginning of the log). `max_record_bytes`: a record over it goes
        to its topic's dead letters (the module's doc)."""
        self.store, self.bootstrap, self.security, self.name = store, bootstrap, security, name
        self.batch_size, self.idle_sleep, self.retry_after_s = batch_size, idle_sleep, retry_after_s
        self._topic_names = dict(topic_names or {})
        self._start = start
        self._producer_options = dict(producer_options or {})
        self.max_record_bytes = max_record_bytes
        self.published = 0  # events in committed transactions, this process
        self.published_to = Checkpoint()  # where the last committed transaction (or the term's start) left off
        self.leading = False
        self._partitions: dict[str, list[int]] = {}

    def _topic(self, logical: str) -> str:
        return self._topic_names.get(logical, logical)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set: lead when the lock is free, publish, and after any failure (the
        database or the broker away, fenced by a newer leader) start a new term from the checkpoint."""
        while not stop.is_set():
            try:
                async with self.store.pool.acquire() as conn:
                    await self._name_from(conn)
                    if await conn.fetchval(_LOCK, RELAY_LOCK_CLASS, self.name):
                        # The lock ends with the term: the pool resets a released connection
                        # (pg_advisory_unlock_all), and a lost connection takes it along.
                        await self._term(conn, stop)
                        continue
            except (KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                    *retryable_errors()) as exc:  # fmt: skip
                log.warning("relay %s: %r; starting again from its checkpoint", self.name, exc)
            await _sleep_or_stop(stop, self.retry_after_s)

    async def checkpoint(self) -> Checkpoint:
        """Where the next term starts: the committed checkpoint, else `start`, else the store's origin.
        Everything in the log after it is not published yet (`relay_metrics` measures that)."""
        async with self.store.pool.acquire() as conn:
            await self._name_from(conn)
            return await self._checkpoints().load() or self._start or await self._origin(conn)

    async def _name_from(self, conn: Any) -> None:
        self.name = self.name or f"ticketflow-relay.{await conn.fetchval('SELECT current_database()')}"

    def _checkpoints(self) -> CheckpointInKafka:
        return CheckpointInKafka(self.bootstrap, self.name, self._topic(TICKET_EVENTS), self.security)

    async def drain(self, max_wait_s: float = 60.0) -> int:
        """Publish everything committed before this call, then return how many events were published
        (tests and tools; a service runs `run`). Raises TimeoutError if that takes over `max_wait_s`."""
        target, before = await self.store.head(), self.published
        stop = asyncio.Event()
        running = asyncio.create_task(self.run(stop))
        try:
            async with asyncio.timeout(max_wait_s):
                while self.published_to < target:
                    if running.done():
                        running.result()
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await running
        return self.published - before

    async def _term(self, conn: Any, stop: asyncio.Event) -> None:
        """One term as the leader: a fresh transactional producer (which fences any former leader and
        aborts its open transaction), the committed checkpoint, then batches until stopped or failed.
        The next batch is read and encoded while the previous transaction commits."""
        options = {"transaction_timeout_ms": TRANSACTION_TIMEOUT_MS, **self._producer_options}
        producer = make_producer(self.bootstrap, self.security, transactional_id=self.name, client_id=self.name,
                                 **options)  # fmt: skip
        await producer.start()
        self.leading = True
        committing: asyncio.Task[None] | None = None
        try:
            # Beginning waits for the producer id: a former leader with this transactional id is fenced
            # and its open transaction aborted before the checkpoint is read.
            await producer.begin_transaction()
            in_transaction = True
            checkpoints = self._checkpoints()
            checkpoint = await checkpoints.load() or self._start or await self._origin(conn)
            self.published_to = checkpoint
            log.info("relay %s leads from %s", self.name, checkpoint)
            while not stop.is_set():
                rows = await conn.fetch(
                    _LOG_AFTER, str(checkpoint.transaction_id), checkpoint.position, self.batch_size
                )
                prepared = await self._prepare(conn, producer, rows) if rows else None
                if committing is not None:
                    await committing  # raises if the previous transaction failed: the term ends
                    committing = None
                if prepared is None:
                    await _sleep_or_stop(stop, self.idle_sleep)
                    continue
                if not in_transaction:
                    await producer.begin_transaction()
                await self._send(producer, prepared, checkpoints)
                checkpoint, in_transaction = prepared.checkpoint, False
                committing = asyncio.create_task(self._commit(producer, prepared))
                if prepared.count < self.batch_size:
                    await _sleep_or_stop(stop, self.idle_sleep)
            if committing is not None:
                await committing
        finally:
            self.leading = False
            if committing is not None and not committing.done():
                committing.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)  # an open transaction: the next leader aborts it

    async def _origin(self, conn: Any) -> Checkpoint:
        row = await conn.fetchrow(_ORIGIN)
        return Checkpoint(int(row[0]), row[1]) if row is not None else Checkpoint()

    async def _prepare(self, conn: Any, producer: AIOKafkaProducer, rows: Sequence[Any]) -> _Prepared:
        """The rows' records in per-partition producer batches, in log order, each on Kafka's default
        partition for its key."""
        records = await event_records(conn, self.store, rows)
        topics = [self._topic(record.topic) for record in records]
        too_large: list[str] = []
        for index, (record, row) in enumerate(zip(records, rows, strict=True)):
            if _size(record) > self.max_record_bytes:
                records[index] = self._dead_letter(record, topics[index], row)
                too_large.append(topics[index])
                topics[index] = dead_letter_topic(topics[index])
        partition_of: dict[str, list[int]] = {}
        for topic in set(topics):
            partitions = self._partitions.get(topic)
            if partitions is None:
                partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
            keys = [record.key for record, its in zip(records, topics, strict=True) if its == topic]
            partition_of[topic] = [partitions[index] for index in partitions_of(keys, len(partitions))]
        placed = {topic: iter(found) for topic, found in partition_of.items()}
        open_batches: dict[tuple[str, int], Any] = {}
        full: list[tuple[str, int, Any]] = []
        for record, topic in zip(records, topics, strict=True):
            partition = next(placed[topic])
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                full.append((topic, partition, batch))  # full: a new one for this partition
                batch = open_batches[(topic, partition)] = producer.create_batch()
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                    raise ValueError(f"a record of {len(record.value)} bytes is larger than a producer batch")
        full.extend((topic, partition, batch) for (topic, partition), batch in open_batches.items())
        last = rows[-1]
        per_topic = {topic: topics.count(topic) for topic in partition_of}
        checkpoint = Checkpoint(int(last["transaction_id"]), last["position"])
        return _Prepared(full, len(rows), checkpoint, per_topic, too_large)

    def _dead_letter(self, record: EventRecord, topic: str, row: Any) -> EventRecord:
        """The record that says, in `topic`'s dead letters, which stored event was too large to publish."""
        detail = (f"event {row['event_id']} ({row['event_type']}) of stream {row['stream_id']} at position "
                  f"{row['position']}: {_size(record)} bytes, over the relay's limit of {self.max_record_bytes}; "
                  "it stays in the event store: raise the topic's max.message.bytes and replay the ticket")  # fmt: skip
        context = {"event_id": str(row["event_id"]), "stream_id": row["stream_id"], "position": str(row["position"])}
        headers = dead_letter_headers(TOO_LARGE, detail, "relay", topic, record.headers, context)
        log.error("relay %s: %s", self.name, detail)
        return EventRecord(record.topic, record.key, b"", headers)

    async def _send(self, producer: AIOKafkaProducer, prepared: _Prepared, checkpoints: CheckpointInKafka) -> None:
        """Hand the open transaction the batch's records and its checkpoint."""
        # Batches of one partition go in the order they were filled: the log's order.
        for topic, partition, batch in prepared.batches:
            prepared.sent.append(await producer.send_batch(batch, topic, partition=partition))
        await producer.send_offsets_to_transaction(checkpoints.offsets(prepared.checkpoint), self.name)

    async def _commit(self, producer: AIOKafkaProducer, prepared: _Prepared) -> None:
        """Every record acknowledged, then the transaction (records and checkpoint) committed."""
        await asyncio.gather(*prepared.sent)
        await producer.commit_transaction()
        for topic, count in prepared.per_topic.items():
            RECORDS_PRODUCED.labels(topic).inc(count)
        for topic in prepared.too_large:
            DEAD_LETTERS.labels(topic, TOO_LARGE, "relay").inc()
        self.published += prepared.count
        self.published_to = prepared.checkpoint


def _size(record: EventRecord) -> int:
    return len(record.key) + len(record.value) + sum(len(name) + len(value) for name, value in record.headers)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
