"""Bulk appends for batch consumers: many streams in ONE statement inside the caller's transaction.

`EventStore.append_many` serves every caller: it runs in a savepoint, returns each event's position and,
after a conflict, explains it (a repeated append that already committed is a no-op). A batch consumer
that records a thousand messages per transaction needs none of that per call, and pays for it in
round trips and per-event result rows. `append_bulk` writes the same rows (the same optimistic-concurrency
check, the same log-order transaction id) with:

- one round trip and one result row, no savepoint;
- stream-level values (stream id, expected version) sent once per stream, and
  each distinct metadata object encoded once;
- conflicts raised, not explained: a stream whose expected version is not stored, or a
  (stream, version) already taken, raises `ConcurrencyError` (`actual` = -1 in the second case: the
  aborted transaction cannot be asked for the head); an event id already stored raises
  asyncpg's `UniqueViolationError` (the same append committed earlier, or a caller bug). Either way the
  caller's transaction is aborted and the caller reruns its whole batch after reloading what it decided
  from (intake's `IntakeStore.record` does);
- a value PostgreSQL cannot store (a NUL character in an event, its metadata or a stream id) raises
  `UnstorableEvent` naming the stream and event, before anything is sent: a retry cannot help, so the
  caller drops that event's cause and records the rest (intake dead-letters the message).

It must run inside a transaction the caller opened (`conn.transaction()`): the caller's own rows commit
with the events, or nothing does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from ticketflow.contracts.codec import EventCodec
from ticketflow.contracts.envelope import EventMetadata
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.text import has_escaped_nul
from ticketflow.eventstore.errors import UNSTORABLE_CHARACTER_ERRORS, ConcurrencyError, UnstorableEvent
from ticketflow.eventstore.sql import LOG_ORDER_TRANSACTION_ID
from ticketflow.eventstore.store import AppendRequest, nul_in, unstorable

# The batch travels as three JSON documents and two small arrays, built by msgspec in one C call each
# (per-event Python work and asyncpg's per-element array encoding were most of a batch's client-side
# cost; PostgreSQL, on its own processes, does the unpacking):
# - $1 streams: [[stream_id, expected_version], ...];
# - $2/$3 event kinds: type names and schema versions, each (type, version) once per batch;
# - $4 metadata: the batch's distinct metadata objects (parsed once, referenced by index);
# - $5 events: [[stream_ref, stream_version, event_id, kind_ref, data, metadata_ref, occurred_us], ...]
#   with 1-based refs; `data` is the event object itself; times are epoch microseconds.
# The head check is an index probe per stream (LATERAL + LIMIT, as in the store's APPEND), which also
# gives the head's transaction id for the log order (`sql.LOG_ORDER_TRANSACTION_ID`); positions are
# assigned in input order, so a stream's versions keep their order in the global log.
BULK_APPEND = f"""
WITH heads AS (
    SELECT s.n, s.v->>0 AS stream_id, head.transaction_id AS head_transaction_id,
           ((s.v->>1)::int = 0 OR head.transaction_id IS NOT NULL) AS ok
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS s(v, n)
    LEFT JOIN LATERAL (
        SELECT e.transaction_id FROM events e
        WHERE e.stream_id = s.v->>0 AND e.stream_version = (s.v->>1)::int LIMIT 1
    ) head ON true
), appended AS (
    INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, data,
                        metadata, occurred_at)
    SELECT {LOG_ORDER_TRANSACTION_ID.format(head="h.head_transaction_id")}, h.stream_id, (i.v->>1)::int,
           (i.v->>2)::uuid, ($2::text[])[(i.v->>3)::int], ($3::int2[])[(i.v->>3)::int], i.v->4,
           $4::jsonb->((i.v->>5)::int - 1), timestamptz 'epoch' + (i.v->>6)::int8 * interval '1 microsecond'
    FROM jsonb_array_elements($5::jsonb) WITH ORDINALITY AS i(v, ord)
    JOIN heads h ON h.n = (i.v->>0)::int AND h.ok
    ORDER BY i.ord
    RETURNING 1
)
SELECT (SELECT count(*) FROM appended) AS appended,
       (SELECT array_agg(stream_id ORDER BY n) FROM heads WHERE NOT ok) AS stale
"""


class BulkAppender:
    """Encodes `AppendRequest`s column-wise and appends them with `BULK_APPEND` on the caller's connection."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._kinds: dict[type, tuple[str, int]] = {}  # event class -> (type name, schema version)

    def encode(self, requests: Sequence[AppendRequest]) -> list[Any]:
        """The statement's five parameters for these requests (see `BULK_APPEND`)."""
        streams: list[tuple[str, int]] = []
        events: list[tuple[int, int, uuid.UUID, int, Any, int, int]] = []
        kinds = self._kinds
        batch_kinds: dict[tuple[str, int], int] = {}  # (type name, schema version) -> 1-based ref
        metadata_refs: dict[int, int] = {}  # id(metadata) -> 1-based ref (the objects stay alive meanwhile)
        metadata_objects: list[EventMetadata] = []
        micros: dict[int, int] = {}  # id(datetime) -> epoch microseconds: callers reuse instants a lot
        seen: set[str] = set()
        for n, r in enumerate(requests, start=1):
            stream = r.stream_id
            if stream in seen:
                raise ValueError("append_bulk takes each stream at most once")
            seen.add(stream)
            streams.append((stream, r.expected_version))
            version = r.expected_version
            for new in r.events:
                event = new.event
                kind = kinds.get(type(event))
                if kind is None:
                    name = event_type_name(event)
                    kind = kinds[type(event)] = (name, self.codec.current_version(name))
                kind_ref = batch_kinds.get(kind)
                if kind_ref is None:
                    kind_ref = batch_kinds[kind] = len(batch_kinds) + 1
                metadata_ref = metadata_refs.get(id(new.metadata))
                if metadata_ref is None:
                    metadata_objects.append(new.metadata)
                    metadata_ref = metadata_refs[id(new.metadata)] = len(metadata_objects)
                at = new.occurred_at
                us = micros.get(id(at))
                if us is None:
                    us = micros[id(at)] = round(at.timestamp() * 1_000_000)
                version += 1
                events.append((n, version, new.event_id, kind_ref, event, metadata_ref, us))
        encode = self.codec.encode_document
        documents = encode(streams), encode(metadata_objects), encode(events)
        if any(has_escaped_nul(document) for document in documents):
            # A NUL would fail the whole statement (and the caller's transaction): name it before sending.
            where = nul_in(requests, self.codec)
            if where is not None:
                raise UnstorableEvent(f"{where}, which PostgreSQL jsonb cannot store")
        return [
            documents[0].decode(),
            [name for name, _ in batch_kinds],
            [schema for _, schema in batch_kinds],
            documents[1].decode(),
            documents[2].decode(),
        ]

    async def append(self, conn: Any, requests: Sequence[AppendRequest]) -> int:
        """Append every request's events in the caller's open transaction; returns the
        number of events written. Raises `ConcurrencyError` for the first stale stream (see the module)."""
        if not requests:
            return 0
        args = self.encode(requests)
        try:
            row = await conn.fetchrow(BULK_APPEND, *args)
        except UNSTORABLE_CHARACTER_ERRORS as exc:  # not found by `encode`'s check: PostgreSQL's words then
            raise unstorable(requests, self.codec, exc) from exc
        except asyncpg.UniqueViolationError as exc:
            if getattr(exc, "constraint_name", None) != "events_stream_version_key":
                raise
            stream = _stream_of(exc)  # the aborted transaction cannot be asked for the head: actual = -1
            expected = next((r.expected_version for r in requests if r.stream_id == stream), -1)
            raise ConcurrencyError(stream, expected, -1) from exc
        if row["stale"]:
            stream = row["stale"][0]
            expected = next(r.expected_version for r in requests if r.stream_id == stream)
            actual = await conn.fetchval(
                "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream
            )
            raise ConcurrencyError(stream, expected, actual)
        appended: int = row["appended"]
        return appended


def _stream_of(exc: asyncpg.UniqueViolationError) -> str:
    """The stream named in PostgreSQL's detail: 'Key (stream_id, stream_version)=(ticket-…, 3) already exists.'"""
    detail = getattr(exc, "detail", None) or ""
    start = detail.find(")=(")
    return detail[start + 3 : detail.rfind(", ")] if start >= 0 else "?"
