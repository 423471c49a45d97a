"""The query benchmark at toy size: its bulk-built read models are what the projector builds from the same
events (so the benchmark measures the real read models), and the benchmark runs end to end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from support.eventstore import migrated_pool
from support.infra import drop_database, unique_name

from ticketflow.deskconfig import load_desks
from ticketflow.projector.app import rebuild

HERE = Path(__file__).resolve().parent
TABLES = {
    "ticket_list": "ticket_id",
    "ticket_details": "ticket_id",
    "queue_backlog": "ticket_id",
    "sla_board_tickets": "ticket_id",
    "sla_board_clocks": "ticket_id, target",
    "agent_load": "agent_id",
    "agent_load_tickets": "ticket_id",
    "desk_metric_tickets": "ticket_id",
    "register_entries": "ticket_id",
    "register_organisations": "desk_id, organisation_id",
    "backlog_history_tickets": "ticket_id",
    "backlog_hours": "desk_id, queue_id, hour",
    "projection_checkpoints": "projection",
}


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[dict[str, object]]]:
    found = {table: [dict(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
             for table, key in TABLES.items()}  # fmt: skip
    for row in found["projection_checkpoints"]:
        del row["updated_at"]  # when it was saved, not where
    return found


@pytest.mark.pg
async def test_the_bulk_built_read_models_equal_a_rebuild_by_the_projector(pg_database: str) -> None:
    sys.path.insert(0, str(HERE))
    import dataset  # tests/load/queries/dataset.py

    pool = await migrated_pool(pg_database)
    try:
        built = await dataset.build(pg_database, 5000, seed=3, progress=False)
        assert built["events"] > 50_000
        bulk = await snapshot(pool)
        assert len(bulk["ticket_list"]) == 5000 and bulk["sla_board_clocks"] and bulk["queue_backlog"]
        assert bulk["backlog_hours"]
        await rebuild(pool, load_desks())
        assert await snapshot(pool) == bulk
    finally:
        await pool.close()


@pytest.mark.pg
async def test_the_benchmark_runs_end_to_end_at_toy_size(pg_dsn: str) -> None:
    name = unique_name("tf_bench_queries_toy")
    toy = ["--tickets", "600", "--database", name, "--rate", "100", "--seconds", "2", "--warmup", "1",
           "--catchup-events", "2000"]  # fmt: skip
    try:
        run = await asyncio.to_thread(subprocess.run, [sys.executable, str(HERE / "bench_queries.py"), *toy],
                                      capture_output=True, text=True, timeout=280)  # fmt: skip
    finally:
        server = await asyncpg.connect(pg_dsn)
        try:
            await drop_database(server, name)
        finally:
            await server.close()
    assert run.returncode == 0, run.stderr[-3000:]
    for heading in (
        "## Queries",
        "list with filters: query API",
        "ticket detail: same SQL straight to PostgreSQL",
        "SLA board: query API",
        "## Catch-up from zero",
        "global log: rows only",
        "all six at once",
    ):
        assert heading in run.stdout, run.stdout  # fmt: skip
