"""Event store benchmark: durable append throughput and latency, against the physical ceiling.

Scenarios, all with synchronous_commit on (checked and printed), in a fresh database:
  single      one event per transaction, one appender (fsync-bound)
  concurrent  one event per transaction, many appenders to different streams (PostgreSQL's own group commit)
  batched     append_many: many streams in one transaction (what a consumer does with a Kafka batch)
  group       GroupCommitter: many concurrent appenders sharing transactions
  copy        asyncpg copy_records_to_table of the same rows into a table shaped like `events`: the ceiling
Usage: python tests/load/eventstore/bench_eventstore.py [--events 60000] [--appenders 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncpg
from group_commit import GroupCommitter
from hdrh.histogram import HdrHistogram
from tabulate import tabulate

from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.ticket_events import CustomerMessageAdded
from ticketflow.eventstore import AppendRequest, EventStore, migrate
from ticketflow.eventstore.connection import dsn_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.infra
from support.infra import drop_database, dsn_with_database

TARGET_EVENTS_PER_S = 30_000
TARGET_P99_MS = 20.0


def event(ticket: uuid.UUID, n: int) -> NewEvent:
    body = CustomerMessageAdded(
        ticket, f"msg-{n}", "Портал не открывается после обновления, помогите", datetime.now(UTC)
    )
    return NewEvent(new_event_id(), body, datetime.now(UTC), EventMetadata(correlation_id=ticket))


class Result:
    def __init__(self, name: str, events: int, seconds: float, latency: HdrHistogram | None, note: str) -> None:
        self.name, self.events, self.seconds, self.latency, self.note = name, events, seconds, latency, note

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def p(self, q: float) -> str:
        return f"{self.latency.get_value_at_percentile(q) / 1000:.2f}" if self.latency else "-"


async def timed(latency: HdrHistogram, call: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter_ns()
    await call()
    latency.record_value(max(1, (time.perf_counter_ns() - start) // 1000))  # microseconds


def histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


async def single(store: EventStore, total: int) -> Result:
    n = min(total, 3_000)  # fsync-bound: a few thousand are plenty to measure
    latency, start = histogram(), time.perf_counter()
    for i in range(n):
        t = uuid.uuid4()
        await timed(latency, partial(store.append, ticket_stream(t), 0, [event(t, i)]))
    return Result("single: 1 event/tx, 1 appender", n, time.perf_counter() - start, latency, "")


async def concurrent(store: EventStore, total: int, appenders: int) -> Result:
    latency, per = histogram(), total // appenders

    async def appender(a: int) -> None:
        for i in range(per):
            t = uuid.uuid4()
            await timed(latency, partial(store.append, ticket_stream(t), 0, [event(t, i)]))

    start = time.perf_counter()
    await asyncio.gather(*(appender(a) for a in range(appenders)))
    return Result(
        f"concurrent: 1 event/tx, {appenders} appenders",
        per * appenders,
        time.perf_counter() - start,
        latency,
        f"pool {store.pool.get_max_size()}",
    )


async def batched(store: EventStore, total: int, batch: int, appenders: int = 1) -> Result:
    """append_many of `batch` streams per transaction; `appenders` batches in flight at once (a consumer
    with several partitions' batches in flight), so one batch's encoding overlaps another's commit."""
    latency, per = histogram(), total // (batch * appenders)

    async def appender(a: int) -> None:
        for b in range(per):
            tickets = [uuid.uuid4() for _ in range(batch)]
            requests = [AppendRequest(ticket_stream(t), 0, [event(t, b)]) for t in tickets]
            await timed(latency, partial(store.append_many, requests))

    start = time.perf_counter()
    await asyncio.gather(*(appender(a) for a in range(appenders)))
    return Result(
        f"batched: {batch} streams/tx, {appenders} appender(s)",
        per * batch * appenders,
        time.perf_counter() - start,
        latency,
        "latency is per batch",
    )


async def group(store: EventStore, total: int, appenders: int) -> Result:
    committer = GroupCommitter(store, workers=4, max_events=500)
    latency, per = histogram(), total // appenders

    async def appender(a: int) -> None:
        for i in range(per):
            t = uuid.uuid4()
            await timed(latency, partial(committer.append, ticket_stream(t), 0, [event(t, i)]))

    start = time.perf_counter()
    await asyncio.gather(*(appender(a) for a in range(appenders)))
    elapsed = time.perf_counter() - start
    await committer.close()
    return Result(
        f"group commit: {appenders} appenders", per * appenders, elapsed, latency, "latency per caller, 1 event each"
    )


async def copy_ceiling(store: EventStore, total: int, batch: int) -> Result:
    await store.pool.execute("DROP TABLE IF EXISTS bench_copy")
    await store.pool.execute(
        "CREATE TABLE bench_copy (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)"
    )
    columns = [
        "stream_id",
        "stream_version",
        "event_id",
        "event_type",
        "schema_version",
        "data",
        "metadata",
        "occurred_at",
    ]
    latency, start = histogram(), time.perf_counter()
    for b in range(total // batch):
        rows = []
        for _ in range(batch):
            t = uuid.uuid4()
            e = event(t, b)
            rows.append(
                (
                    ticket_stream(t),
                    1,
                    e.event_id,
                    "CustomerMessageAdded",
                    1,
                    store.codec.encode(e.event).decode(),
                    f'{{"correlation_id":"{t}"}}',
                    e.occurred_at,
                )
            )

        async def copy(rows: Sequence[tuple[object, ...]] = rows) -> None:
            async with store.pool.acquire() as conn:
                await conn.copy_records_to_table("bench_copy", records=rows, columns=columns)

        await timed(latency, copy)
    return Result(
        f"ceiling: copy_records_to_table, {batch} rows/tx",
        (total // batch) * batch,
        time.perf_counter() - start,
        latency,
        "no outbox, no checks",
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--appenders", type=int, default=64)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    dsn = dsn_from_env()
    name = f"tf_bench_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(dsn)
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        bench_dsn = dsn_with_database(dsn, name)
        conn = await asyncpg.connect(bench_dsn)
        await migrate.apply_all(conn)
        settings = {k: await conn.fetchval(f"SHOW {k}") for k in ("synchronous_commit", "fsync", "commit_delay")}
        await conn.close()
        pool = await asyncpg.create_pool(bench_dsn, min_size=16, max_size=16)
        assert pool is not None
        store = EventStore(pool)
        results = [
            await single(store, args.events),
            await concurrent(store, args.events, args.appenders),
            await batched(store, args.events, args.batch),
            await batched(store, args.events, args.batch, appenders=2),
            await batched(store, args.events, args.batch // 2, appenders=4),
            await group(store, args.events, args.appenders * 4),
            await copy_ceiling(store, args.events, args.batch),
        ]
        await pool.close()
    finally:
        await drop_database(server, name)
        await server.close()
    ceiling = results[-1].rate
    print(
        f"\nevent store append benchmark: {args.events} events per scenario, PostgreSQL {settings}, "
        f"{os.cpu_count()} cores"
    )
    print(
        tabulate(
            [
                [r.name, r.events, f"{r.rate:,.0f}", f"{r.rate / ceiling:.2f}", r.p(50), r.p(99), r.note]
                for r in results
            ],
            headers=["scenario", "events", "events/s", "x ceiling", "p50 ms", "p99 ms", "note"],
        )
    )
    best = max(results[:-1], key=lambda r: r.rate)
    ok = best.rate >= TARGET_EVENTS_PER_S and float(best.p(99)) < TARGET_P99_MS
    print(
        f"\ntarget >= {TARGET_EVENTS_PER_S:,} events/s durable with p99 < {TARGET_P99_MS} ms: "
        f"{'MET' if ok else 'NOT MET'} by '{best.name}' ({best.rate:,.0f}/s, p99 {best.p(99)} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
