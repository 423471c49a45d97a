"""A relay of a test's own; reading what it published, and checking it: each event once, each stream in
version order."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer

from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder
from ticketflow.eventstore import EventStore
from ticketflow.messaging.relay import Relay


class _StreamAndVersion(msgspec.Struct):
    stream_id: str
    stream_version: int


_stream_and_version = msgspec.json.Decoder(_StreamAndVersion)  # any schema: only these two fields


@dataclass(frozen=True)
class Published:
    partition: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]

    @property
    def envelope(self) -> EventEnvelope:
        return envelope_decoder.decode(self.value)


async def read_published(
    bootstrap: str, topic: str, count: int, *, timeout_s: float = 60, settle_s: float = 1.0, committed: bool = True
) -> list[Published]:
    """The records of `topic` from its start, as a consumer of the project sees them (`read_committed`,
    as every `ticketflow.messaging` pattern reads; `committed=False`: aborted transactions too). Reads
    until `count` records arrived (at most `timeout_s`), then `settle_s` longer, so that records beyond
    `count` (duplicates) are read as well."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"read-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    seen: list[Published] = []
    loop = asyncio.get_running_loop()
    deadline, settled_at = loop.time() + timeout_s, None
    try:
        while loop.time() < (settled_at or deadline):
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                seen += [Published(tp.partition, r.key or b"", r.value or b"", dict(r.headers)) for r in records]
            if settled_at is None and len(seen) >= count:
                settled_at = loop.time() + settle_s
    finally:
        await consumer.stop()
    return seen


def duplicates(records: Sequence[Published]) -> list[uuid.UUID]:
    """Event ids published more than once."""
    counts: dict[uuid.UUID, int] = defaultdict(int)
    for r in records:
        counts[uuid.UUID(r.headers["event-id"].decode())] += 1
    return [event_id for event_id, n in counts.items() if n > 1]


def out_of_order(records: Sequence[Published]) -> list[str]:
    """Streams whose events did not arrive as versions n, n+1, n+2... on one partition under one key
    (what per-ticket order promises a consumer); empty when every stream is in order."""
    versions: dict[str, list[int]] = defaultdict(list)
    places: dict[str, set[tuple[int, bytes]]] = defaultdict(set)
    for r in records:
        envelope = _stream_and_version.decode(r.value)
        versions[envelope.stream_id].append(envelope.stream_version)
        places[envelope.stream_id].add((r.partition, r.key))
    wrong = []
    for stream, seen in versions.items():
        if seen != list(range(seen[0], seen[0] + len(seen))) or len(places[stream]) != 1:
            wrong.append(f"{stream}: versions {seen[:10]}... on {sorted(places[stream])[:3]}")
    return wrong


async def relay_from_now(store: EventStore, bootstrap: str, topic_names: Mapping[str, str], **options: Any) -> Relay:
    """A relay of its own (a unique name: its own lock, transactional id and checkpoint) publishing
    what `store` stores from now on to `topic_names` (logical -> the test's topics). A test module
    shares one database: without the start, a new relay would publish earlier tests' events too."""
    name = options.pop("name", None) or f"test-relay-{uuid.uuid4().hex[:8]}"
    return Relay(store, bootstrap, name=name, topic_names=topic_names, start=await store.head(), **options)
