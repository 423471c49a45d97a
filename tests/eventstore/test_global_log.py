"""The global-position trap: positions are assigned at insert, not at commit.

First a deterministic interleaving shows that a naive `position > checkpoint` reader really skips an
event, and that the store's reader does not; then many concurrent writers with random commit delays
are read live, and every event must be read exactly once. And the log's order is each stream's
version order even when a later version is written by a transaction with an older id (the relay
publishes in the log's order, so per-ticket order rests on this)."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from support.eventstore import read_all_settled, some_events

from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import AppendRequest, Checkpoint, EventStore
from ticketflow.eventstore.bulk import BulkAppender

pytestmark = pytest.mark.pg

NAIVE_READ = "SELECT position, event_id FROM events WHERE position > $1 ORDER BY position"


async def test_a_late_commit_with_a_lower_position_is_not_skipped(store: EventStore) -> None:
    head = await read_all_settled(store)
    checkpoint = head[-1].checkpoint if head else Checkpoint()
    naive_checkpoint = await store.pool.fetchval("SELECT coalesce(max(position), 0) FROM events")
    early, late = uuid.uuid4(), uuid.uuid4()
    early_events, late_events = some_events(early, 1), some_events(late, 1)

    async with store.pool.acquire() as slow, slow.transaction():
        slow_append = await store.append(ticket_stream(early), 0, early_events, conn=slow)  # lower position
        fast_append = await store.append(ticket_stream(late), 0, late_events)  # higher position, commits first
        assert slow_append.positions[0] < fast_append.positions[0]

        naive = await store.pool.fetch(NAIVE_READ, naive_checkpoint)
        assert [r["event_id"] for r in naive] == [late_events[0].event_id]
        naive_checkpoint = naive[-1]["position"]  # a naive reader moves past the uncommitted event...
        assert await store.read_all(checkpoint) == []  # ...the store's reader waits for it

    naive_after_commit = await store.pool.fetch(NAIVE_READ, naive_checkpoint)
    assert naive_after_commit == []  # the trap is real: the naive reader never sees the early event
    read = await read_all_settled(store, checkpoint)  # other open transactions may delay it, never hide it
    assert [s.envelope.event_id for s in read] == [early_events[0].event_id, late_events[0].event_id]


@pytest.mark.parametrize("append", ["append_many", "bulk"])
async def test_a_later_version_from_a_transaction_with_an_older_id_comes_later_in_the_log(
    store: EventStore, append: str
) -> None:
    """`older` takes its transaction id first (a consumer's claim, an idempotency key: any write), then
    `younger` appends version 1 and commits, then `older` appends version 2 on top of it. By transaction
    id alone version 2 would come first; the store writes it under version 1's id instead."""
    ticket = uuid.uuid4()
    stream = ticket_stream(ticket)
    [first], [second] = some_events(ticket, 1, "first"), some_events(ticket, 1, "second")
    before = await read_all_settled(store)
    async with store.pool.acquire() as older, older.transaction():
        older_id = int(await older.fetchval("SELECT pg_current_xact_id()::text"))
        await store.append(stream, 0, [first])  # another transaction: a younger id
        if append == "bulk":
            await BulkAppender(store.codec).append(older, [AppendRequest(stream, 1, [second])])
        else:
            await store.append(stream, 1, [second], conn=older)
    read = await read_all_settled(store, before[-1].checkpoint if before else None)
    ours = [s for s in read if s.envelope.stream_id == stream]
    assert [s.envelope.stream_version for s in ours] == [1, 2]
    assert ours[1].checkpoint.transaction_id > older_id  # version 2 took version 1's (younger) id
    assert ours[0].checkpoint < ours[1].checkpoint


async def test_live_reader_sees_every_event_exactly_once_under_interleaved_commits(store: EventStore) -> None:
    rng = random.Random(7)
    start = await read_all_settled(store)  # everything earlier tests wrote, so the live read starts clean
    checkpoint = start[-1].checkpoint if start else Checkpoint()
    written: list[uuid.UUID] = []
    seen: list[uuid.UUID] = []
    writers_done = asyncio.Event()

    async def writer(n: int) -> None:
        for i in range(25):
            ticket = uuid.uuid4()
            events = some_events(ticket, rng.randint(1, 3), f"{n}-{i}-")
            async with store.pool.acquire() as conn, conn.transaction():
                await store.append(ticket_stream(ticket), 0, events, conn=conn)
                await asyncio.sleep(rng.random() * 0.01)  # hold the transaction open a random while
            written.extend(e.event_id for e in events)

    async def reader() -> None:
        # Reads until it has caught up after the writers finished. An empty batch alone is no proof
        # of that: any transaction still open on the server (another database's too) holds back
        # the visibility horizon for a while, so the reader waits for it, within a deadline.
        nonlocal checkpoint
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            batch = await store.read_all(checkpoint, limit=50)
            seen.extend(s.envelope.event_id for s in batch)
            if batch:
                checkpoint = batch[-1].checkpoint
            elif writers_done.is_set() and len(seen) >= len(written):
                return
            await asyncio.sleep(0 if batch else 0.01)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(6)))
    writers_done.set()
    await reading
    assert len(seen) == len(set(seen)), "an event was read twice"
    assert set(seen) == set(written), f"missed {len(set(written) - set(seen))} events"


async def test_the_log_is_ordered_by_transaction_id_as_a_number_not_as_text(store: EventStore) -> None:
    """Transaction ids cross digit boundaries (999999 -> 1000000) in a cluster's life; as text they
    would sort "10" before "9". Rows with explicit ids 9 and 10 (older than any cluster's horizon)
    must come back 9 first, and head() must be the numerically newest transaction."""
    nine, ten = uuid.uuid4(), uuid.uuid4()
    insert = """INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version,
                                    data, metadata, occurred_at)
                VALUES ($1::text::xid8, $2, 1, $3, 'TicketClosed', 1, $4::jsonb, '{}', now())"""
    for txid, ticket in (("10", ten), ("9", nine)):  # id 10 gets the lower position
        [event] = some_events(ticket, 1)
        await store.pool.execute(
            insert, txid, ticket_stream(ticket), event.event_id, store.codec.encode(event.event).decode()
        )
    read = await store.read_all(Checkpoint(), limit=1_000_000)
    ours = [s for s in read if s.envelope.stream_id in (ticket_stream(nine), ticket_stream(ten))]
    assert [s.envelope.stream_id for s in ours] == [ticket_stream(nine), ticket_stream(ten)]
    assert [s.checkpoint.transaction_id for s in ours] == [9, 10]
    newest = await store.pool.fetchval("SELECT max(transaction_id)::text FROM events")
    assert (await store.head()).transaction_id == int(newest)
