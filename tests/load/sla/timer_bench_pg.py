"""Baseline: durable timers as rows in PostgreSQL, claimed by a FOR UPDATE SKIP LOCKED poller.

Fails loudly when PostgreSQL is unreachable (TICKETFLOW_PG_DSN): this baseline is never skipped.
A separate table (sla_bench_timers) is created and dropped; nothing else in the database is touched.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg
import numpy as np
from timer_bench_burst import burst_deadlines, now_ms, summarise
from timer_bench_throughput import deadlines

DEFAULT_DSN = "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow"
TABLE = "sla_bench_timers"
Result = dict[str, Any]
COPY_CHUNK = 50_000
DELETE_CHUNK = 10_000
CLAIM = f"""
DELETE FROM {TABLE} WHERE id IN (
    SELECT id FROM {TABLE} WHERE due_ms <= $1 ORDER BY due_ms LIMIT $2 FOR UPDATE SKIP LOCKED
) RETURNING due_ms
"""


def dsn() -> str:
    return os.environ.get("TICKETFLOW_PG_DSN", DEFAULT_DSN)


async def connect() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn(), timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        raise RuntimeError(
            f"PostgreSQL is unreachable at {dsn()} ({error}); start it (make infra-up) and re-run"
        ) from error


async def recreate_table(conn: asyncpg.Connection) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, key bigint NOT NULL, due_ms bigint NOT NULL)")
    await conn.execute(f"CREATE INDEX ON {TABLE} (due_ms)")


async def copy_rows(conn: asyncpg.Connection, dues: list[int]) -> None:
    for begin in range(0, len(dues), COPY_CHUNK):
        chunk = [(key, due) for key, due in enumerate(dues[begin : begin + COPY_CHUNK], begin)]
        await conn.copy_records_to_table(TABLE, records=chunk, columns=["key", "due_ms"])


def pg_throughput(timers: int, singles: int) -> Result:
    async def run() -> Result:
        conn = await connect()
        try:
            await recreate_table(conn)
            dues = deadlines(timers, now_ms()).tolist()
            began = time.perf_counter()
            await copy_rows(conn, dues)
            schedule_s = time.perf_counter() - began
            await conn.execute(f"VACUUM ANALYZE {TABLE}")
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", TABLE)
            ids = np.array([row[0] for row in await conn.fetch(f"SELECT id FROM {TABLE}")], np.int64)
            shuffled = ids[np.random.default_rng(3).permutation(len(ids))].tolist()
            began = time.perf_counter()
            for begin in range(0, len(shuffled), DELETE_CHUNK):
                chunk = shuffled[begin : begin + DELETE_CHUNK]
                await conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY($1::bigint[])", chunk)
            cancel_s = time.perf_counter() - began

            insert_one = f"INSERT INTO {TABLE} (key, due_ms) VALUES ($1, $2) RETURNING id"
            began = time.perf_counter()
            single_ids = [await conn.fetchval(insert_one, key, due) for key, due in enumerate(dues[:singles])]
            single_schedule_s = time.perf_counter() - began
            began = time.perf_counter()
            for row_id in single_ids:
                await conn.execute(f"DELETE FROM {TABLE} WHERE id = $1", row_id)
            single_cancel_s = time.perf_counter() - began
            await conn.execute(f"DROP TABLE {TABLE}")
        finally:
            await conn.close()
        return {
            "n": timers,
            "schedule_per_s": timers / schedule_s,
            "cancel_per_s": timers / cancel_s,
            "single_n": singles,
            "single_schedule_per_s": singles / single_schedule_s,
            "single_cancel_per_s": singles / single_cancel_s,
            "disk_per_timer": size / timers,
        }

    return asyncio.run(run())


def pg_burst(count: int, spread_ms: int, lead_ms: int, claim_batch: int, poll_ms: int) -> Result:
    """One poller: claim due rows in batches (autocommit), sleep ``poll_ms`` when nothing is due."""

    async def run() -> Result:
        conn = await connect()
        try:
            await recreate_table(conn)
            dues = burst_deadlines(count, spread_ms, lead_ms)
            await copy_rows(conn, dues.tolist())
            await conn.execute(f"ANALYZE {TABLE}")
            ready = now_ms()
            handoff_ns: list[int] = []
            fired_due: list[list[int]] = []
            fired = 0
            give_up = int(dues.max()) + 60_000
            while fired < count and now_ms() < give_up:
                rows = await conn.fetch(CLAIM, now_ms(), claim_batch)
                if not rows:
                    await asyncio.sleep(poll_ms / 1000)
                    continue
                handoff_ns.append(time.time_ns())
                fired_due.append([row[0] for row in rows])
                fired += len(rows)
            await conn.execute(f"DROP TABLE {TABLE}")
        finally:
            await conn.close()
        times = np.repeat(np.array(handoff_ns, np.int64), [len(d) for d in fired_due])
        due = np.array([d for batch in fired_due for d in batch], np.int64)
        result: Result = summarise(times, due, count, len(fired_due), ready)
        return result | {"claim_batch": claim_batch}

    return asyncio.run(run())
