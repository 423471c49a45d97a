"""Replay: a stream's stored events published again, as the relay publishes them (`event_records`: the
topic and key of the stream, the same value and headers), in version order. It runs beside the relay,
outside its transactions: consumers recognise the event ids they have processed and do nothing new; a
consumer that lost its state catches up. Used by the CLI (`ticketflow replay`) and the `ReplayTicket`
operator command."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaProducer

from ticketflow.contracts.ids import notification_stream, sla_stream, ticket_stream
from ticketflow.eventstore.store import EventStore
from ticketflow.messaging.event_records import RECORD_COLUMNS, event_records

_STREAM = f"SELECT {RECORD_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"


async def replay_streams(
    store: EventStore,
    producer: AIOKafkaProducer,
    streams: Sequence[str],
    topic_names: Mapping[str, str] | None = None,
) -> int:
    """Publish every event of `streams` again (`topic_names`: logical -> physical topic, as the relay's);
    returns how many were published, once every one is acknowledged."""
    published = 0
    async with store.pool.acquire() as conn:
        for stream in streams:
            for record in await event_records(conn, store, await conn.fetch(_STREAM, stream)):
                topic = (topic_names or {}).get(record.topic, record.topic)
                await producer.send(topic, record.value, key=record.key, headers=record.headers)
                published += 1
    await producer.flush()
    return published


def ticket_streams(ticket_id: uuid.UUID) -> list[str]:
    """Every stream of a ticket: its lifecycle, its SLA clocks, its notifications (all on ticket.events)."""
    return [ticket_stream(ticket_id), sla_stream(ticket_id), notification_stream(ticket_id)]
