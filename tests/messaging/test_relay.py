"""Outbox relay to the real Kafka broker: per-ticket order, republish after a crash, consumer dedupe."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, ClassVar

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from support.eventstore import some_events

from ticketflow.contracts.codec import EventCodec
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent, envelope_decoder
from ticketflow.contracts.events import EVENT_TYPES
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.ticket_events import TicketClosed, TicketReopened
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.tracking import first_time
from ticketflow.messaging.partitioning import partition_of
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.relay import OutboxRelay

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class CrashAfterPublish(Exception):
    pass


class CrashingRelay(OutboxRelay):
    """Dies after the broker acknowledged a batch, before the outbox rows are marked sent."""

    async def mark_sent(self, conn: Any, positions: list[int]) -> None:
        raise CrashAfterPublish


async def consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, EventEnvelope, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4()}", auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list[tuple[bytes, EventEnvelope, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        assert r.key is not None and r.value is not None
                        got.append((r.key, envelope_decoder.decode(r.value), dict(r.headers)))
    finally:
        await consumer.stop()
    return got


async def test_relay_publishes_in_order_republishes_after_crash_and_consumers_dedupe(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: object
) -> None:
    topic = await kafka_topic_factory(partitions=3)  # type: ignore[operator]
    await store.pool.execute("DELETE FROM outbox")  # this module's database: start from an empty outbox
    tickets = [uuid.uuid4() for _ in range(3)]
    for ticket in tickets:
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 2))
        traced = NewEvent(
            new_event_id(),
            TicketClosed(ticket, "traced", "test"),
            datetime.now(UTC),
            EventMetadata(traceparent=TRACEPARENT),
        )
        await store.append(ticket_stream(ticket), 2, [traced, *some_events(ticket, 1, "tail")])

    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        crashing = CrashingRelay(store, producer, topic_names={TICKET_EVENTS: topic})
        with pytest.raises(CrashAfterPublish):
            await crashing.relay_once()
        assert await store.pool.fetchval("SELECT count(*) FROM outbox") == 12  # published, not marked
        relay = OutboxRelay(store, producer, topic_names={TICKET_EVENTS: topic})
        assert await relay.relay_once() == 12
        assert await relay.relay_once() == 0
    finally:
        await producer.stop()

    records = await consume(kafka_bootstrap, topic, 24)
    assert len(records) == 24  # at-least-once: the crashed batch went out twice
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for key, envelope, headers in records:
        assert key == str(envelope.event.ticket_id).encode()  # type: ignore[union-attr]
        assert headers["event-id"] == str(envelope.event_id).encode()
        if envelope.event.reason == "traced":  # type: ignore[union-attr]
            assert headers["traceparent"] == TRACEPARENT.encode()
        by_key[key].append(envelope.stream_version)
    for versions in by_key.values():
        assert versions == [1, 2, 3, 4, 1, 2, 3, 4]  # per-ticket order within each publication

    await store.pool.execute("CREATE TABLE IF NOT EXISTS effects (event_id uuid PRIMARY KEY)")
    for _, envelope, _ in records:
        async with first_time(store.pool, "test-consumer", envelope.event_id) as conn:
            if conn is not None:
                await conn.execute("INSERT INTO effects VALUES ($1)", envelope.event_id)
    assert await store.pool.fetchval("SELECT count(*) FROM effects") == 12  # one effect per event


def test_envelope_round_trips_through_json() -> None:
    ticket = uuid.uuid4()
    envelope = EventEnvelope(
        new_event_id(),
        ticket_stream(ticket),
        1,
        datetime.now(UTC),
        1,
        TicketClosed(ticket, "r", "a"),
        position=5,
    )
    assert envelope_decoder.decode(msgspec.json.encode(envelope)) == envelope


async def test_published_records_are_the_stored_envelopes_on_kafkas_default_partitions(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: object
) -> None:
    """The relay passes the stored JSON through (no decode and re-encode for a current schema) and
    sends per-partition batches: consumers must still read exactly `EventStore.envelope` of each row,
    on the partition Kafka's default partitioner gives the key, in stream order."""
    topic = await kafka_topic_factory(partitions=6)  # type: ignore[operator]
    await store.pool.execute("DELETE FROM outbox")
    tickets = [uuid.uuid4() for _ in range(40)]
    for ticket in tickets:
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
    rows = {
        row["event_id"]: store.envelope(row)
        for row in await store.pool.fetch(
            "SELECT o.position, e.* , e.data::text AS data, e.metadata::text AS metadata "
            "FROM outbox o JOIN events e USING (position)"
        )
    }
    records = await relay_once_and_read(store, kafka_bootstrap, topic, 120)
    seen = [(partition, key, envelope_decoder.decode(value)) for partition, key, value in records]
    assert sorted(e.event_id for _, _, e in seen) == sorted(rows)
    for partition, key, envelope in seen:
        assert envelope == rows[envelope.event_id]  # field for field, the event and its metadata included
        assert partition == partition_of(key, 6)
    order: dict[bytes, list[int]] = defaultdict(list)
    for _, key, envelope in seen:
        order[key].append(envelope.stream_version)
    assert all(versions == [1, 2, 3] for versions in order.values())


class TicketClosedV2(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="TicketClosed"):
    """A later schema of TicketClosed: `actor` renamed `closed_by` (version 2, with an upcaster)."""

    schema_version: ClassVar[int] = 2
    ticket_id: uuid.UUID
    reason: str
    closed_by: str


def actor_renamed(raw: dict[str, Any]) -> dict[str, Any]:
    upgraded = dict(raw)
    upgraded["closed_by"] = upgraded.pop("actor")
    return upgraded


async def test_a_row_of_an_older_schema_is_published_upcast_and_current_rows_pass_through(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: object
) -> None:
    """Rows stored under TicketClosed v1, relayed by code whose TicketClosed is v2: the relay's fallback
    path decodes, upcasts and re-encodes them (schema_version 2, `closed_by`); a row whose schema is
    current on that code (TicketReopened v1) is still passed through as stored."""
    topic = await kafka_topic_factory(partitions=2)  # type: ignore[operator]
    await store.pool.execute("DELETE FROM outbox")
    ticket = uuid.uuid4()
    reopened = NewEvent(new_event_id(), TicketReopened(ticket, "customer wrote again", "anna"), datetime.now(UTC))
    await store.append(ticket_stream(ticket), 0, [*some_events(ticket, 2), reopened])
    upgraded = EventStore(
        store.pool, EventCodec({**EVENT_TYPES, "TicketClosed": TicketClosedV2}, {("TicketClosed", 1): actor_renamed})
    )
    values: list[dict[str, Any]] = [
        msgspec.json.decode(value) for _, _, value in await relay_once_and_read(upgraded, kafka_bootstrap, topic, 3)
    ]
    values.sort(key=lambda value: value["stream_version"])
    closed = [value for value in values if value["event"]["type"] == "TicketClosed"]
    assert [value["schema_version"] for value in closed] == [2, 2]
    assert [value["event"] for value in closed] == [
        {"type": "TicketClosed", "ticket_id": str(ticket), "reason": f"e{i}", "closed_by": "test"} for i in range(2)
    ]
    stored = await store.pool.fetchrow(
        "SELECT *, data::text AS data, metadata::text AS metadata FROM events WHERE event_id = $1", reopened.event_id
    )
    assert stored is not None
    assert values[2] == msgspec.json.decode(msgspec.json.encode(store.envelope(stored)))  # passed through
    assert [value["position"] for value in values] == sorted(value["position"] for value in values)


async def relay_once_and_read(
    store: EventStore, bootstrap: str, topic: str, count: int
) -> list[tuple[int, bytes, bytes]]:
    """One relay pass of the outbox onto `topic` (it must publish `count` records), then those records
    read back as (partition, key, value)."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        assert await OutboxRelay(store, producer, topic_names={TICKET_EVENTS: topic}).relay_once() == count
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4()}", auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[tuple[int, bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    seen += [(tp.partition, r.key or b"", r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return seen
