"""How a stored event becomes a Kafka record: the topic and key of its stream (`contracts.topics`), its
`EventEnvelope` as JSON for the value, and its type, id and W3C trace context as headers.

PostgreSQL writes the envelope's JSON itself (`RECORD_COLUMNS`: the stored event and metadata JSON
passed through, the other fields around them), so the relay's Python only places each record: in the
relay's profile, decoding the columns and encoding the envelope in Python cost more than everything
else per event. A row stored under an older schema of its type is read again whole and upcast
(`EventStore.envelope`), as consumers of the current code expect it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ticketflow.contracts.envelope import envelope_encoder
from ticketflow.contracts.topics import key_for_stream, topic_for_stream
from ticketflow.eventstore.store import EventStore

# The same JSON as msgspec's encoding of the row's `EventEnvelope` (fields in its order; occurred_at in
# RFC 3339, UTC); the event and metadata are the stored jsonb as text.
_ENVELOPE_JSON = """convert_to(
    '{"event_id":"' || event_id::text || '","stream_id":' || to_json(stream_id)::text
    || ',"stream_version":' || stream_version
    || ',"occurred_at":"' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","schema_version":' || schema_version || ',"event":' || data::text || ',"metadata":' || metadata::text
    || ',"position":' || position || '}', 'UTF8')"""
RECORD_COLUMNS = f"""transaction_id::text AS transaction_id, position, stream_id, event_type, schema_version,
       event_id::text AS event_id, {_ENVELOPE_JSON} AS value,
       metadata->>'traceparent' AS traceparent, metadata->>'tracestate' AS tracestate"""
_WHOLE_ROWS = """
SELECT position, stream_id, stream_version, event_id, event_type, schema_version, data::text AS data,
       metadata::text AS metadata, occurred_at
FROM events WHERE position = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class EventRecord:
    topic: str  # logical: ticket.events or agent.events
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def record_headers(row: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The Kafka headers of one stored event: its type and id, and its W3C trace context if it has one."""
    headers = [("event-type", row["event_type"].encode()), ("event-id", str(row["event_id"]).encode())]
    if row["traceparent"]:
        headers.append(("traceparent", row["traceparent"].encode()))
    if row["tracestate"]:
        headers.append(("tracestate", row["tracestate"].encode()))
    return headers


async def event_records(conn: Any, store: EventStore, rows: Sequence[Mapping[str, Any]]) -> list[EventRecord]:
    """The records of rows read with `RECORD_COLUMNS`, in their order."""
    current_version = store.codec.current_version
    values: list[bytes] = [row["value"] for row in rows]
    older = [index for index, row in enumerate(rows) if row["schema_version"] != current_version(row["event_type"])]
    if older:
        whole = {r["position"]: r for r in await conn.fetch(_WHOLE_ROWS, [rows[i]["position"] for i in older])}
        for index in older:
            values[index] = envelope_encoder.encode(store.envelope(whole[rows[index]["position"]]))
    return [
        EventRecord(topic_for_stream(row["stream_id"]), key_for_stream(row["stream_id"]), value, record_headers(row))
        for row, value in zip(rows, values, strict=True)
    ]
