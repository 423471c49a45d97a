"""`append_bulk` (ticketflow.eventstore.bulk) against the real PostgreSQL server: the same rows as
`append_many` (events in the log's order), the same concurrency check, conflicts raised inside the caller's
transaction, which then commits nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from support.eventstore import some_events

from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.ticket_events import TicketOpened
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.eventstore import AppendRequest, ConcurrencyError, EventStore
from ticketflow.eventstore.bulk import BulkAppender

pytestmark = pytest.mark.pg


def new_stream() -> tuple[uuid.UUID, str]:
    ticket = uuid.uuid4()
    return ticket, ticket_stream(ticket)


async def log_order_of(pool: asyncpg.Pool, stream: str) -> list[int]:
    """The stream's versions in the global log's order, (transaction id, position)."""
    rows = await pool.fetch(
        "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY transaction_id, position", stream
    )
    return [r["stream_version"] for r in rows]


async def test_bulk_append_writes_what_append_many_writes(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    (t1, s1), (t2, s2) = new_stream(), new_stream()
    await store.append(s2, 0, some_events(t2, 2, "old"))  # an existing stream at version 2
    shared = EventMetadata(correlation_id=t1)
    first = [NewEvent(e.event_id, e.event, e.occurred_at, shared) for e in some_events(t1, 3, "new")]
    async with pool.acquire() as conn, conn.transaction():
        written = await bulk.append(conn, [AppendRequest(s1, 0, first), AppendRequest(s2, 2, some_events(t2, 1))])
    assert written == 4
    one, two = await store.read_stream(s1), await store.read_stream(s2)
    assert [e.stream_version for e in one] == [1, 2, 3]
    assert [e.event_id for e in one] == [e.event_id for e in first]
    assert [e.event.reason for e in one] == ["new0", "new1", "new2"]  # type: ignore[union-attr]
    assert all(e.metadata.correlation_id == t1 for e in one)  # one metadata object, encoded once, on every row
    assert [e.stream_version for e in two] == [1, 2, 3]
    positions = [e.position or 0 for e in one]
    assert positions == sorted(positions)  # versions keep their order in the global log
    # s2 has rows from append_many (versions 1-2) and from the bulk append (3): the log has them in order.
    assert await log_order_of(pool, s1) == [1, 2, 3]
    assert await log_order_of(pool, s2) == [1, 2, 3]


async def test_a_stale_stream_raises_and_the_callers_transaction_commits_nothing(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    bulk = BulkAppender(store.codec)
    (t1, s1), (t2, s2) = new_stream(), new_stream()
    await store.append(s2, 0, some_events(t2, 2))
    fresh = some_events(t1, 1)
    with pytest.raises(ConcurrencyError) as stale:
        async with pool.acquire() as conn, conn.transaction():
            await bulk.append(conn, [AppendRequest(s1, 0, fresh), AppendRequest(s2, 1, some_events(t2, 1))])
    # (stream, version 2) is taken: the unique constraint refuses it; the aborted transaction cannot ask
    # for the actual head, so it is reported as -1.
    assert (stale.value.stream_id, stale.value.expected, stale.value.actual) == (s2, 1, -1)
    assert await store.read_stream(s1) == []  # the fresh stream's events were rolled back with the rest
    assert len(await store.read_stream(s2)) == 2
    # Ahead of the head (a gap) is refused by the head check, which knows the actual version.
    with pytest.raises(ConcurrencyError) as ahead:
        async with pool.acquire() as conn, conn.transaction():
            await bulk.append(conn, [AppendRequest(s1, 0, fresh), AppendRequest(s2, 5, some_events(t2, 1))])
    assert (ahead.value.stream_id, ahead.value.expected, ahead.value.actual) == (s2, 5, 2)
    assert await store.read_stream(s1) == []
    assert len(await store.read_stream(s2)) == 2


async def test_a_version_taken_concurrently_raises_concurrency_error(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    ticket, stream = new_stream()

    async def attempt(label: str) -> int:
        async with pool.acquire() as conn, conn.transaction():
            return await bulk.append(conn, [AppendRequest(stream, 0, some_events(ticket, 2, label))])

    outcomes = await asyncio.gather(*(attempt(f"w{i}") for i in range(6)), return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert winners == [2]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, ConcurrencyError) and o.stream_id == stream for o in losers), losers
    assert len(await store.read_stream(stream)) == 2


async def test_an_event_id_already_stored_is_a_unique_violation(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    (t1, s1), (_, s2) = new_stream(), new_stream()
    events = some_events(t1, 1)
    await store.append(s1, 0, events)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with pool.acquire() as conn, conn.transaction():
            await bulk.append(conn, [AppendRequest(s2, 0, events)])
    assert await store.read_stream(s2) == []


async def test_each_stream_at_most_once_and_nothing_to_do(store: EventStore, pool: asyncpg.Pool) -> None:
    bulk = BulkAppender(store.codec)
    ticket, stream = new_stream()
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="at most once"):
            await bulk.append(
                conn,
                [AppendRequest(stream, 0, some_events(ticket, 1)), AppendRequest(stream, 1, some_events(ticket, 1))],
            )
        assert await bulk.append(conn, []) == 0
    assert await store.read_stream(stream) == []


async def test_kinds_metadata_and_times_sent_once_per_batch_come_back_per_row(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Kinds and metadata travel deduplicated (index columns), times as epoch microseconds: each row
    must still get its own type, schema version, metadata and the exact instant, as append_many stores."""
    bulk = BulkAppender(store.codec)
    (t1, s1), (t2, s2) = new_stream(), new_stream()
    when = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=ZoneInfo("Europe/Moscow"))  # microseconds kept
    equal_a, equal_b = EventMetadata(correlation_id=t1), EventMetadata(correlation_id=t1)  # equal, two objects
    other = EventMetadata(correlation_id=t2)
    chat = ChatRef("bitrix24", "c", "u")
    opened = NewEvent(uuid.uuid4(), TicketOpened(t1, "d", "k", chat, Requester("u"), "s", "b", when), when, equal_a)
    later = when + timedelta(days=400, microseconds=1)
    mixed = [opened, *(NewEvent(e.event_id, e.event, later, equal_b) for e in some_events(t1, 2, "x"))]
    async with pool.acquire() as conn, conn.transaction():
        await bulk.append(conn, [AppendRequest(s1, 0, mixed), AppendRequest(s2, 0, [
            NewEvent(e.event_id, e.event, e.occurred_at, other) for e in some_events(t2, 1)])])  # fmt: skip
    one, two = await store.read_stream(s1), await store.read_stream(s2)
    assert [type(e.event) for e in one] == [TicketOpened, *(type(e.event) for e in mixed[1:])]
    assert [e.occurred_at for e in one] == [when, later, later]
    assert [e.metadata for e in one] == [equal_a, equal_b, equal_b]
    assert two[0].metadata == other
    rows = await pool.fetch(
        "SELECT event_type, schema_version FROM events WHERE stream_id = $1 ORDER BY stream_version", s1
    )
    names = [event_type_name(e.event) for e in mixed]
    assert [(r["event_type"], r["schema_version"]) for r in rows] == [
        (name, store.codec.current_version(name)) for name in names
    ]
    assert names[0] != names[1]  # two kinds in one batch
