"""Contract tests of the event store: the first five run against the real PostgreSQL store and the
in-memory one (`any_store`), which must keep the same promises; the rest are PostgreSQL's own
(triggers, the caller's transaction, a connection lost mid-append)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from support.eventstore import some_events

from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import (
    Checkpoint,
    ConcurrencyError,
    EventIdReused,
    EventStore,
    InMemoryEventStore,
    RetryableStoreError,
    Store,
)

pytestmark = pytest.mark.pg


@pytest.fixture(params=["postgres", "memory"])
def any_store(request: pytest.FixtureRequest, store: EventStore) -> Store:
    return store if request.param == "postgres" else InMemoryEventStore()


def new_stream() -> tuple[uuid.UUID, str]:
    ticket = uuid.uuid4()
    return ticket, ticket_stream(ticket)


async def test_append_then_read_stream_in_version_order(any_store: Store) -> None:
    ticket, stream = new_stream()
    first = await any_store.append(stream, 0, some_events(ticket, 2, "a"))
    second = await any_store.append(stream, 2, some_events(ticket, 1, "b"))
    assert (first.stream_version, second.stream_version) == (2, 3)
    read = await any_store.read_stream(stream)
    assert [e.stream_version for e in read] == [1, 2, 3]
    assert [e.event.reason for e in read] == ["a0", "a1", "b0"]  # type: ignore[union-attr]
    assert read[0].position is not None and read[0].position < read[2].position  # type: ignore[operator]
    assert [e.stream_version for e in await any_store.read_stream(stream, from_version=3)] == [3]


async def test_stale_expected_version_raises_concurrency_error_with_both_versions(any_store: Store) -> None:
    ticket, stream = new_stream()
    await any_store.append(stream, 0, some_events(ticket, 1))
    with pytest.raises(ConcurrencyError) as stale:
        await any_store.append(stream, 0, some_events(ticket, 1))
    assert (stale.value.expected, stale.value.actual) == (0, 1)
    with pytest.raises(ConcurrencyError) as ahead:
        await any_store.append(stream, 5, some_events(ticket, 1))
    assert (ahead.value.expected, ahead.value.actual) == (5, 1)
    assert len(await any_store.read_stream(stream)) == 1


async def test_concurrent_appenders_at_the_same_version_exactly_one_wins(any_store: Store) -> None:
    ticket, stream = new_stream()
    outcomes = await asyncio.gather(
        *(any_store.append(stream, 0, some_events(ticket, 2, f"w{i}")) for i in range(8)), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if isinstance(o, BaseException))
    assert len(await any_store.read_stream(stream)) == 2


async def test_appending_the_same_event_ids_twice_is_a_no_op(any_store: Store) -> None:
    ticket, stream = new_stream()
    events = some_events(ticket, 3)
    first = await any_store.append(stream, 0, events)
    again = await any_store.append(stream, 0, events)  # e.g. a retry after a lost commit acknowledgement
    assert again.already_stored and again.positions == first.positions and again.stream_version == 3
    assert len(await any_store.read_stream(stream)) == 3
    _, other_stream = new_stream()
    with pytest.raises(EventIdReused):
        await any_store.append(other_stream, 0, events)


async def test_append_many_is_all_or_nothing(any_store: Store) -> None:
    from ticketflow.eventstore import AppendRequest

    (t1, s1), (t2, s2) = new_stream(), new_stream()
    await any_store.append(s2, 0, some_events(t2, 1))
    with pytest.raises(ConcurrencyError):
        await any_store.append_many(
            [AppendRequest(s1, 0, some_events(t1, 1)), AppendRequest(s2, 0, some_events(t2, 1))]
        )
    assert await any_store.read_stream(s1) == []


async def test_the_global_log_is_in_append_order_with_growing_checkpoints(any_store: Store) -> None:
    before = await any_store.head()
    (t1, s1), (t2, s2) = new_stream(), new_stream()
    await any_store.append(s1, 0, some_events(t1, 2))
    await any_store.append(s2, 0, some_events(t2, 1))
    read = [e for e in await any_store.read_all(before, 100) if e.envelope.stream_id in (s1, s2)]
    assert [(e.envelope.stream_id, e.envelope.stream_version) for e in read] == [(s1, 1), (s1, 2), (s2, 1)]
    assert [e.checkpoint for e in read] == sorted(e.checkpoint for e in read) and read[0].checkpoint > before
    assert await any_store.head() == read[-1].checkpoint and await any_store.count() >= 3
    assert len(await any_store.read_all(before, 2)) == 2 and await any_store.read_all(read[-1].checkpoint) == []
    assert await InMemoryEventStore().head() == Checkpoint()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET event_type = 'x'", "DELETE FROM events", "TRUNCATE events CASCADE"],
)
async def test_events_table_refuses_update_delete_truncate(store: EventStore, statement: str) -> None:
    ticket, stream = new_stream()
    await store.append(stream, 0, some_events(ticket, 1))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await store.pool.execute(statement)
    assert len(await store.read_stream(stream)) == 1


async def test_append_within_callers_transaction_commits_or_rolls_back_with_it(store: EventStore) -> None:
    ticket, stream = new_stream()
    async with store.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.append(stream, 0, some_events(ticket, 1), conn=conn)
                raise RuntimeError("the caller's own work failed")
    assert await store.read_stream(stream) == []


async def test_connection_lost_mid_append_is_retryable_and_leaves_no_partial_stream(
    store: EventStore,
) -> None:
    """The server ends the appending backend mid-statement, as a restart or failover would."""
    ticket, stream = new_stream()
    events = some_events(ticket, 3)
    async with store.pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # the append will wait here
        append = asyncio.create_task(store.append(stream, 0, events))
        pid = None
        for _ in range(100):
            pid = await store.pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid, "the append never reached the database"
        await store.pool.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(RetryableStoreError):
            await append
    assert await store.read_stream(stream) == []
    retried = await store.append(stream, 0, events)
    assert retried.stream_version == 3 and not retried.already_stored
