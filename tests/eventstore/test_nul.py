"""A NUL character (U+0000) that still reaches the event store, against the real PostgreSQL (whose
`jsonb` refuses it): the append raises `UnstorableEvent` naming the stream and event, writes nothing,
and never wedges the caller's transaction, so a batch writer can record the rest without it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.ticket_events import TicketClosed
from ticketflow.eventstore import AppendRequest, EventStore, UnstorableEvent
from ticketflow.eventstore.bulk import BulkAppender

pytestmark = pytest.mark.pg
NUL = "\x00"


def closing(reason: str, metadata: EventMetadata | None = None) -> tuple[str, NewEvent]:
    ticket = uuid.uuid4()
    event = NewEvent(new_event_id(), TicketClosed(ticket, reason=reason, actor="test"), datetime.now(UTC))
    if metadata is not None:
        event = NewEvent(event.event_id, event.event, event.occurred_at, metadata)
    return ticket_stream(ticket), event


async def stored(pool: asyncpg.Pool, *streams: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = ANY($1::text[])", list(streams)))


async def test_append_many_names_the_event_with_a_nul_and_leaves_the_callers_transaction_usable(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    (good, ok), (bad, with_nul) = closing("fine"), closing(f"broken{NUL}reason")
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(UnstorableEvent) as refused:
            await store.append_many([AppendRequest(good, 0, [ok]), AppendRequest(bad, 0, [with_nul])], conn=conn)
        await store.append(good, 0, [ok], conn=conn)  # the savepoint rolled back; the transaction goes on
    message = str(refused.value)
    assert bad in message and "TicketClosed" in message and str(with_nul.event_id) in message
    assert "NUL" in message and "data" in message
    assert await stored(pool, good) == 1 and await stored(pool, bad) == 0


async def test_bulk_append_refuses_before_sending_and_the_rest_of_the_batch_commits(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    bulk = BulkAppender(store.codec)
    (s1, e1), (s2, e2), (s3, e3) = closing("one"), closing(f"two{NUL}"), closing("three")
    batch = [AppendRequest(s1, 0, [e1]), AppendRequest(s2, 0, [e2]), AppendRequest(s3, 0, [e3])]
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(UnstorableEvent, match=f"{s2}: TicketClosed {e2.event_id} has a NUL character"):
            await bulk.append(conn, batch)
        # Nothing was sent: the same transaction is not aborted, and the batch without that event commits.
        assert await bulk.append(conn, [batch[0], batch[2]]) == 2
    assert await stored(pool, s1, s3) == 2 and await stored(pool, s2) == 0


async def test_bulk_append_names_a_nul_in_metadata_or_a_stream_id(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    stream, event = closing("fine", EventMetadata(traceparent=f"00-{NUL}"))
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(UnstorableEvent, match="in its metadata"):
            await bulk.append(conn, [AppendRequest(stream, 0, [event])])
        with pytest.raises(UnstorableEvent, match="stream id"):
            await bulk.append(conn, [AppendRequest(f"ticket-{NUL}", 0, [closing("x")[1]])])
    assert await stored(pool, stream) == 0


async def test_the_text_backslash_u0000_is_not_a_nul_and_is_stored(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    stream, event = closing("a literal \\u0000 and \\\\u0000 in text")
    async with pool.acquire() as conn, conn.transaction():
        assert await bulk.append(conn, [AppendRequest(stream, 0, [event])]) == 1
    [read] = await store.read_stream(stream)
    assert read.event == event.event
