"""The relay against the real broker: each stored event published once (as `read_committed` consumers
see it), in per-stream order, on Kafka's default partition for its key, with its headers; a batch a
failed relay left open is never seen; relays sharing a name hand over without duplicates.
The relay as a real process killed with SIGKILL: tests/sla/test_firings_published_once.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import msgspec
import pytest
from support.eventstore import read_all_settled, some_events
from support.infra import KafkaTopicFactory
from support.records import FakeRecord
from support.relay import duplicates, out_of_order, read_published, relay_from_now

from ticketflow.contracts.codec import EventCodec
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent, envelope_decoder
from ticketflow.contracts.events import EVENT_TYPES
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.ticket_events import TicketClosed, TicketReopened
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetter
from ticketflow.messaging.partitioning import partition_of
from ticketflow.messaging.relay import MAX_RECORD_BYTES, Relay

pytestmark = [pytest.mark.pg, pytest.mark.kafka]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def relay_to(store: EventStore, bootstrap: str, topic: str, **options: Any) -> Relay:
    return await relay_from_now(store, bootstrap, {TICKET_EVENTS: topic}, **options)


async def test_each_event_is_published_once_in_stream_order_with_its_headers(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    relay = await relay_to(store, kafka_bootstrap, topic)
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
    assert await relay.drain() == 12

    records = await read_published(kafka_bootstrap, topic, 12)
    assert len(records) == 12 and duplicates(records) == [] and out_of_order(records) == []
    for r in records:
        assert r.key == str(r.envelope.event.ticket_id).encode()  # type: ignore[union-attr]
        assert r.headers["event-id"] == str(r.envelope.event_id).encode()
        assert r.headers["event-type"] == b"TicketClosed"
        assert ("traceparent" in r.headers) == (r.envelope.event.reason == "traced")  # type: ignore[union-attr]
        if "traceparent" in r.headers:
            assert r.headers["traceparent"] == TRACEPARENT.encode()


class CrashBeforeCommit(Exception):
    pass


class CrashingRelay(Relay):
    """Dies after the broker acknowledged a batch's records, before its transaction commits."""

    async def _commit(self, producer: Any, prepared: Any) -> None:
        await asyncio.gather(*prepared.sent)
        raise CrashBeforeCommit


async def test_a_batch_a_failed_relay_left_open_is_never_seen_and_its_successor_publishes_it_once(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    name = f"test-relay-{uuid.uuid4().hex[:8]}"
    crashing = await relay_to(store, kafka_bootstrap, topic, name=name)
    crashing.__class__ = CrashingRelay
    successor = await relay_to(store, kafka_bootstrap, topic, name=name)  # same name: fences, aborts, resumes
    tickets = [uuid.uuid4() for _ in range(4)]
    for ticket in tickets:
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
    await read_all_settled(store)  # readable now (other transactions on the server can hold the log back)
    with pytest.raises(CrashBeforeCommit):
        await crashing.drain()
    # The records reached the broker, in a transaction that never committed:
    assert len(await read_published(kafka_bootstrap, topic, 12, committed=False)) == 12
    assert await read_published(kafka_bootstrap, topic, 1, timeout_s=3) == []  # not for read_committed consumers

    assert await successor.drain() == 12
    records = await read_published(kafka_bootstrap, topic, 12)
    assert len(records) == 12 and duplicates(records) == [] and out_of_order(records) == []
    assert await successor.drain() == 0  # the checkpoint committed with the records: nothing again


async def test_relays_sharing_a_name_hand_over_without_duplicates_when_the_leader_loses_its_lock(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """Three relays, one name, while tickets are appended: the leader's database connection is cut twice
    (its lock goes with it); another takes over, fencing the former one in Kafka. Every event is
    published once, each stream in order."""
    topic = await kafka_topic_factory(partitions=4)
    name = f"test-relay-{uuid.uuid4().hex[:8]}"
    relays = [await relay_to(store, kafka_bootstrap, topic, name=name, retry_after_s=0.2, batch_size=50)
              for _ in range(3)]  # fmt: skip
    stop = asyncio.Event()
    running = [asyncio.create_task(relay.run(stop)) for relay in relays]
    written = 0

    async def append_some(rounds: int) -> None:
        nonlocal written
        for _ in range(rounds):
            for ticket in [uuid.uuid4() for _ in range(10)]:
                await store.append(ticket_stream(ticket), 0, some_events(ticket, 2))
                await store.append(ticket_stream(ticket), 2, some_events(ticket, 1, "more"))
                written += 3
            await asyncio.sleep(0.05)

    async def cut_the_leaders_connection() -> None:
        lock_holder = """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 7242002
                         AND objid = hashtext($1)::oid AND granted"""
        pid = await store.pool.fetchval(lock_holder, name)
        assert pid is not None, "no relay leads"
        await store.pool.execute("SELECT pg_terminate_backend($1)", pid)

    try:
        await append_some(5)
        await cut_the_leaders_connection()
        await append_some(5)
        await cut_the_leaders_connection()
        await append_some(5)
        records = await read_published(kafka_bootstrap, topic, written, settle_s=3)
    finally:
        stop.set()
        await asyncio.gather(*running)
    assert duplicates(records) == [] and out_of_order(records) == []
    assert len(records) == written == 450


async def test_published_records_are_the_stored_envelopes_on_kafkas_default_partitions(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """The relay passes the stored JSON through (no decode and re-encode for a current schema) and
    sends per-partition batches: consumers must still read exactly `EventStore.envelope` of each row,
    on the partition Kafka's default partitioner gives the key, in stream order."""
    topic = await kafka_topic_factory(partitions=6)
    relay = await relay_to(store, kafka_bootstrap, topic)
    tickets = [uuid.uuid4() for _ in range(40)]
    for ticket in tickets:
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
    streams = [ticket_stream(t) for t in tickets]
    rows = {
        row["event_id"]: store.envelope(row)
        for row in await store.pool.fetch(
            "SELECT *, data::text AS data, metadata::text AS metadata FROM events WHERE stream_id = ANY($1)", streams
        )
    }
    assert await relay.drain() == 120
    records = await read_published(kafka_bootstrap, topic, 120)
    assert sorted(r.envelope.event_id for r in records) == sorted(rows)
    for r in records:
        assert r.envelope == rows[r.envelope.event_id]  # field for field, the event and its metadata included
        assert r.partition == partition_of(r.key, 6)
    assert out_of_order(records) == []


def test_envelope_round_trips_through_json() -> None:
    ticket = uuid.uuid4()
    envelope = EventEnvelope(
        new_event_id(), ticket_stream(ticket), 1, datetime.now(UTC), 1, TicketClosed(ticket, "r", "a"), position=5
    )
    assert envelope_decoder.decode(msgspec.json.encode(envelope)) == envelope


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
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """Rows stored under TicketClosed v1, relayed by code whose TicketClosed is v2: the relay's fallback
    path decodes, upcasts and re-encodes them (schema_version 2, `closed_by`); a row whose schema is
    current on that code (TicketReopened v1) is still passed through as stored."""
    topic = await kafka_topic_factory(partitions=2)
    upgraded = EventStore(
        store.pool, EventCodec({**EVENT_TYPES, "TicketClosed": TicketClosedV2}, {("TicketClosed", 1): actor_renamed})
    )
    relay = await relay_to(upgraded, kafka_bootstrap, topic)
    ticket = uuid.uuid4()
    reopened = NewEvent(new_event_id(), TicketReopened(ticket, "customer wrote again", "anna"), datetime.now(UTC))
    await store.append(ticket_stream(ticket), 0, [*some_events(ticket, 2), reopened])
    assert await relay.drain() == 3
    values: list[dict[str, Any]] = [
        msgspec.json.decode(r.value) for r in await read_published(kafka_bootstrap, topic, 3)
    ]
    assert [value["stream_version"] for value in values] == [1, 2, 3]
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


async def test_an_event_too_large_for_kafka_goes_to_the_dead_letters_and_the_relay_goes_on(
    store: EventStore, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """The broker refuses a record over its `message.max.bytes` (1 MiB by default), and would refuse
    every transaction holding one: without the limit the relay publishes nothing at all, with it the
    events around the large one are published in order and the large one is named in `<topic>.dlq`."""
    topic = await kafka_topic_factory(partitions=2)
    await kafka_topic_factory(name=f"{topic}.dlq")
    ticket, other = uuid.uuid4(), uuid.uuid4()
    huge = NewEvent(new_event_id(), TicketClosed(ticket, "x" * 1_200_000, "test"), datetime.now(UTC), EventMetadata())
    start = await store.head()
    await store.append(ticket_stream(ticket), 0, some_events(ticket, 2))
    await store.append(ticket_stream(ticket), 2, [huge])
    await store.append(ticket_stream(other), 0, some_events(other, 2))
    await read_all_settled(store)

    unguarded = Relay(store, kafka_bootstrap, name=f"test-relay-{uuid.uuid4().hex[:8]}",
                      topic_names={TICKET_EVENTS: topic}, start=start, max_record_bytes=10**9)  # fmt: skip
    with pytest.raises(TimeoutError):
        await unguarded.drain(max_wait_s=8)  # every transaction with the record in it is refused
    assert await read_published(kafka_bootstrap, topic, 1, timeout_s=2) == []

    relay = Relay(store, kafka_bootstrap, name=f"test-relay-{uuid.uuid4().hex[:8]}",
                  topic_names={TICKET_EVENTS: topic}, start=start)  # fmt: skip
    assert await relay.drain() == 5
    records = await read_published(kafka_bootstrap, topic, 4)
    assert len(records) == 4 and duplicates(records) == []
    assert str(huge.event_id).encode() not in {r.headers["event-id"] for r in records}
    [dead] = await read_published(kafka_bootstrap, f"{topic}.dlq", 1)
    letter = DeadLetter.of(FakeRecord(f"{topic}.dlq", 0, 0, dead.key, dead.value, headers=list(dead.headers.items())))
    assert letter.reason == "too large for Kafka" and letter.consumer == "relay" and letter.value == b""
    assert letter.original_topic == topic and letter.context["event-id"] == str(huge.event_id)
    assert f"over the relay's limit of {MAX_RECORD_BYTES}" in letter.detail
    assert dict(letter.original_headers)["event-type"] == b"TicketClosed"
