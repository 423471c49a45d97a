"""Projections on the real PostgreSQL: runners of one projection take turns, and a rebuild fills copies of
the tables and swaps them in while writers append and live runners apply, never applying an event twice
and never showing a reader a model that disagrees with its checkpoint."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from support.eventstore import some_events

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.eventstore.rebuild import RebuildInProgress, RebuildProgress, rebuild_projection
from ticketflow.eventstore.tracking import load_checkpoint

pytestmark = pytest.mark.pg


class EventCounts:
    """Events per stream: a read model where applying an event twice shows as a wrong count."""

    tables: tuple[str, ...] = ("test_event_counts",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        counts: dict[str, int] = {}
        for envelope in events:
            counts[envelope.stream_id] = counts.get(envelope.stream_id, 0) + 1
        await conn.execute(
            """INSERT INTO test_event_counts AS t (stream_id, events)
               SELECT * FROM unnest($1::text[], $2::int[])
               ON CONFLICT (stream_id) DO UPDATE SET events = t.events + excluded.events""",
            list(counts),
            list(counts.values()),
        )


async def make_table(pool: asyncpg.Pool) -> None:
    await pool.execute("DROP TABLE IF EXISTS test_event_counts")
    await pool.execute(
        "CREATE TABLE test_event_counts (stream_id text CONSTRAINT test_counts_key PRIMARY KEY, events int NOT NULL)"
    )
    await pool.execute("CREATE INDEX test_counts_by_events ON test_event_counts (events DESC)")


# One statement, one snapshot: the model's total, its checkpoint, and how many events the log holds up to it.
AGREES = """
WITH cp AS (SELECT transaction_id, position FROM projection_checkpoints WHERE projection = $1)
SELECT (SELECT coalesce(sum(events), 0) FROM test_event_counts) AS applied,
       (SELECT count(*) FROM events e, cp WHERE (e.transaction_id, e.position) <= (cp.transaction_id, cp.position))
         AS logged
"""


async def append_randomly(store: EventStore, streams: list[str], rounds: int, rng: random.Random) -> int:
    written = 0
    for _ in range(rounds):
        stream = rng.choice(streams)
        version = await store.pool.fetchval(
            "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream
        )
        events = some_events(uuid.uuid4(), rng.randint(1, 3))
        try:
            await store.append(stream, version, events)
            written += len(events)
        except Exception:  # a concurrent writer won the race for this stream: skip this round
            pass
        await asyncio.sleep(0)
    return written


async def test_a_rebuild_while_writers_and_two_live_runners_run_never_double_counts(store: EventStore) -> None:
    await make_table(store.pool)
    name = f"counts_{uuid.uuid4().hex[:8]}"  # no checkpoint row yet: the old rebuild's lock locked nothing here
    projection = EventCounts(name)
    rng = random.Random(7)
    streams = [f"test-{uuid.uuid4()}" for _ in range(30)]
    await append_randomly(store, streams, 200, rng)
    stop = asyncio.Event()
    live = [ProjectionRunner(store, projection, batch_size=17) for _ in range(2)]  # two projector instances
    running = [asyncio.create_task(r.run(stop, idle_sleep=0.001)) for r in live]
    disagreements: list[tuple[int, int]] = []

    async def watch() -> None:
        while not stop.is_set():
            row = await store.pool.fetchrow(AGREES, name)
            if row is not None and row["applied"] != row["logged"]:
                disagreements.append((row["applied"], row["logged"]))
            await asyncio.sleep(0.002)

    watching = asyncio.create_task(watch())
    seen: list[RebuildProgress] = []
    writers = [append_randomly(store, streams, 150, random.Random(i)) for i in range(3)]
    writing = asyncio.gather(*writers)
    report = await rebuild_projection(store, projection, batch_size=23, progress=seen.append)
    await writing
    await ProjectionRunner(store, projection).catch_up()
    stop.set()
    await asyncio.gather(*running, watching)

    assert disagreements == []
    actual = {
        r["stream_id"]: r["c"]
        for r in await store.pool.fetch(
            "SELECT stream_id, count(*) AS c FROM events WHERE stream_id = ANY($1) GROUP BY stream_id", streams
        )
    }
    counted = {r["stream_id"]: r["events"] for r in await store.pool.fetch("SELECT * FROM test_event_counts")}
    assert {s: counted.get(s) for s in streams} == {s: actual.get(s) for s in streams}
    assert report.applied > 0 and seen and seen[-1].applied == report.applied
    assert all(p.total > 0 and p.rate > 0 and p.eta_s is not None for p in seen)
    assert await store.pool.fetchval("SELECT count(*) FROM projection_checkpoints WHERE projection = $1", name) == 1
    assert not await store.pool.fetchval(
        "SELECT count(*) FROM projection_checkpoints WHERE projection LIKE 'rebuild:%'"
    )


async def test_the_swapped_in_tables_keep_the_live_index_and_constraint_names(store: EventStore) -> None:
    await make_table(store.pool)
    projection = EventCounts(f"counts_{uuid.uuid4().hex[:8]}")
    await store.append(f"test-{uuid.uuid4()}", 0, some_events(uuid.uuid4(), 2))
    before = await index_names(store.pool)
    await rebuild_projection(store, projection)
    assert await index_names(store.pool) == before == ["test_counts_by_events", "test_counts_key"]
    constraints = await store.pool.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'test_event_counts'::regclass AND contype = 'p'"
    )
    assert [r["conname"] for r in constraints] == ["test_counts_key"]
    schemas = await store.pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")
    assert schemas == []
    checkpoint = await load_checkpoint(store.pool, projection.name)
    total = await store.pool.fetchval("SELECT sum(events) FROM test_event_counts")
    assert total == await store.count() and checkpoint.position > 0


async def index_names(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'test_event_counts' ORDER BY 1")
    return [r["indexname"] for r in rows]


async def test_one_rebuild_of_a_projection_at_a_time_and_a_crashed_ones_leftovers_are_cleared(
    store: EventStore,
) -> None:
    await make_table(store.pool)
    projection = EventCounts(f"counts_{uuid.uuid4().hex[:8]}")
    # A rebuild that crashed left its copies and its checkpoint behind.
    await store.pool.execute(f"CREATE SCHEMA rebuild_{projection.name}")
    await store.pool.execute(f"CREATE TABLE rebuild_{projection.name}.test_event_counts (junk int)")
    async with store.pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock(hashtext('ticketflow rebuild ' || $1))", projection.name)
        with pytest.raises(RebuildInProgress, match=projection.name):
            await rebuild_projection(store, projection)
        await holder.execute("SELECT pg_advisory_unlock(hashtext('ticketflow rebuild ' || $1))", projection.name)
    report = await rebuild_projection(store, projection)
    assert report.applied == await store.count()
    assert await store.pool.fetchval("SELECT sum(events) FROM test_event_counts") == report.applied
