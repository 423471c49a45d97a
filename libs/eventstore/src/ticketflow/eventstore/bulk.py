"""Bulk appends for batch consumers: many streams in ONE statement inside the caller's transaction.

`EventStore.append_many` serves every caller: it runs in a savepoint, returns each event's position and,
after a conflict, explains it (a repeated append that already committed is a no-op). A batch consumer
that records a thousand messages per transaction needs none of that per call, and pays for it in
round trips and per-event result rows. `append_bulk` writes the same rows (events and their outbox rows,
the same optimistic-concurrency check) with:

- one round trip and one result row, no savepoint;
- stream-level values (stream id, expected version, outbox topic and key) sent once per stream, and
  each distinct metadata object encoded once;
- conflicts raised, not explained: a stream whose expected version is not stored, or a
  (stream, version) already taken, raises `ConcurrencyError` (`actual` = -1 in the second case: the
  aborted transaction cannot be asked for the head); an event id already stored raises
  asyncpg's `UniqueViolationError` (the same append committed earlier, or a caller bug). Either way the
  caller's transaction is aborted and the caller reruns its whole batch after reloading what it decided
  from (intake's `IntakeStore.record` does).

It must run inside a transaction the caller opened (`conn.transaction()`): the caller's own rows commit
with the events, or nothing does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from ticketflow.contracts.codec import EventCodec
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.topics import key_for_stream, topic_for_stream
from ticketflow.eventstore.errors import ConcurrencyError
from ticketflow.eventstore.store import AppendRequest

# Streams once ($1-$4); event kinds (type, schema version) and distinct metadata once ($5-$7); events
# referencing their stream, kind and metadata by 1-based index ($8-$14). Cheap columns on purpose: a
# kind or a metadata object repeats across a batch, so each event sends a small integer for it (and
# PostgreSQL parses each metadata object once); times travel as epoch microseconds (int8), because
# asyncpg's timestamptz encoding costs four times an int8's. The head check is an index probe per
# stream (LATERAL + LIMIT, as in the store's APPEND); positions are assigned in input order, so a
# stream's versions keep their order in the global log.
BULK_APPEND = """
WITH heads AS (
    SELECT s.n, s.stream_id, s.topic, s.key, (s.expected = 0 OR head.found IS NOT NULL) AS ok
    FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[]) WITH ORDINALITY AS s(stream_id, expected, topic, key, n)
    LEFT JOIN LATERAL (
        SELECT true AS found FROM events e
        WHERE e.stream_id = s.stream_id AND e.stream_version = s.expected LIMIT 1
    ) head ON true
), metadata AS (
    SELECT array_agg(m::jsonb ORDER BY n) AS objects FROM unnest($7::text[]) WITH ORDINALITY AS t(m, n)
), appended AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata,
                        occurred_at)
    SELECT h.stream_id, i.stream_version, i.event_id, ($5::text[])[i.kind], ($6::int2[])[i.kind], i.data::jsonb,
           (SELECT objects FROM metadata)[i.meta], timestamptz 'epoch' + i.occurred_us * interval '1 microsecond'
    FROM unnest($8::int[], $9::int[], $10::uuid[], $11::int[], $12::text[], $13::int[], $14::int8[])
         WITH ORDINALITY AS i(stream, stream_version, event_id, kind, data, meta, occurred_us, ord)
    JOIN heads h ON h.n = i.stream AND h.ok
    ORDER BY i.ord
    RETURNING position, stream_id
), queued AS (
    INSERT INTO outbox (position, topic, key)
    SELECT a.position, h.topic, h.key FROM appended a JOIN heads h USING (stream_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM queued) AS appended,
       (SELECT array_agg(stream_id ORDER BY n) FROM heads WHERE NOT ok) AS stale
"""

_metadata_encoder = msgspec.json.Encoder()


class BulkAppender:
    """Encodes `AppendRequest`s column-wise and appends them with `BULK_APPEND` on the caller's connection."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._kinds: dict[type, tuple[str, int]] = {}  # event class -> (type name, schema version)

    def encode(self, requests: Sequence[AppendRequest]) -> list[list[Any]]:
        streams: tuple[list[Any], ...] = ([], [], [], [])
        events: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        stream_ids, expected_versions, topics, keys = streams
        refs, versions, ids, kind_refs, datas, metadata_refs, times = events
        encode, kinds = self.codec.encode, self._kinds
        batch_kinds: dict[tuple[str, int], int] = {}  # (type name, schema version) -> 1-based index
        metadata_by_id: dict[int, int] = {}  # id(metadata) -> 1-based index (the objects stay alive)
        metadata_refs_by_text: dict[str, int] = {}  # equal metadata under different objects, sent once
        seen: set[str] = set()
        for n, r in enumerate(requests, start=1):
            if r.stream_id in seen:
                raise ValueError("append_bulk takes each stream at most once")
            seen.add(r.stream_id)
            stream_ids.append(r.stream_id)
            expected_versions.append(r.expected_version)
            topics.append(topic_for_stream(r.stream_id))
            keys.append(key_for_stream(r.stream_id))
            version = r.expected_version
            for new in r.events:
                kind = kinds.get(type(new.event))
                if kind is None:
                    name = event_type_name(new.event)
                    kind = kinds[type(new.event)] = (name, self.codec.current_version(name))
                kind_ref = batch_kinds.get(kind)
                if kind_ref is None:
                    kind_ref = batch_kinds[kind] = len(batch_kinds) + 1
                metadata_ref = metadata_by_id.get(id(new.metadata))
                if metadata_ref is None:
                    text = _metadata_encoder.encode(new.metadata).decode()
                    metadata_ref = metadata_refs_by_text.setdefault(text, len(metadata_refs_by_text) + 1)
                    metadata_by_id[id(new.metadata)] = metadata_ref
                version += 1
                refs.append(n)
                versions.append(version)
                ids.append(new.event_id)
                kind_refs.append(kind_ref)
                datas.append(encode(new.event).decode())
                metadata_refs.append(metadata_ref)
                times.append(round(new.occurred_at.timestamp() * 1_000_000))
        kind_types = [name for name, _ in batch_kinds]
        kind_schemas = [schema for _, schema in batch_kinds]
        return [*streams, kind_types, kind_schemas, list(metadata_refs_by_text), *events]

    async def append(self, conn: Any, requests: Sequence[AppendRequest]) -> int:
        """Append every request's events (and outbox rows) in the caller's open transaction; returns the
        number of events written. Raises `ConcurrencyError` for the first stale stream (see the module)."""
        if not requests:
            return 0
        args = self.encode(requests)
        try:
            row = await conn.fetchrow(BULK_APPEND, *args)
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
