"""Rebuild a projection while it runs: fill copies of its tables from the whole log, then swap them in
with the checkpoint in one transaction. The live tables are never emptied, and no event is applied twice.

1. One rebuild of a projection at a time (an advisory lock; `RebuildInProgress` otherwise).
2. Schema `rebuild_<name>` gets a copy of each table (`LIKE ... INCLUDING ALL`: columns, defaults,
   constraints, indexes), empty.
3. A runner on one connection whose search path puts that schema first (the projection's SQL names its
   tables unqualified) follows the log from the beginning under the checkpoint `rebuild:<name>`,
   reporting progress (events applied, the store's count when it started, rate, estimate).
4. The swap, one transaction: lock the live checkpoint (live runners wait on it), let the copy pass the
   live checkpoint (so the position a reader was told never goes back), move the live tables out and the
   copies in (their indexes and extended statistics renamed to the live names, which later migrations may
   use), set the live checkpoint to the copy's, drop the old tables. Live runners then continue after the
   copy's checkpoint. The copies are analysed before the swap: the planner never sees a table without
   statistics (an extended statistics object is what keeps some list filters off a full index walk).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ticketflow.eventstore.projections import Projection, ProjectionRunner
from ticketflow.eventstore.store import Checkpoint, EventStore
from ticketflow.eventstore.tracking import load_checkpoint, lock_checkpoint, save_checkpoint

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ ")
_INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) ORDER BY c.relname
"""
_STATISTICS = """
SELECT n.nspname AS schema, s.stxname AS name, pg_get_statisticsobjdef(s.oid) AS definition
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE s.stxrelid = to_regclass($1) ORDER BY s.stxname
"""
_STATISTICS_SHAPE = re.compile(r"^CREATE STATISTICS \S+ | FROM \S+$")


class RebuildInProgress(RuntimeError):
    """Another rebuild of this projection holds its lock: wait for it to finish, then rebuild again if needed."""


@dataclass(frozen=True)
class RebuildProgress:
    projection: str
    applied: int
    total: int  # events in the store when the rebuild started: the estimate's basis
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Events applied per second so far."""
        return self.applied / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds until the copy reaches the count it started with, at the rate so far (None: no rate yet)."""
        return max(0.0, (self.total - self.applied) / self.rate) if self.rate > 0 else None


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    applied: int
    seconds: float
    checkpoint: Checkpoint


async def rebuild_projection(
    store: EventStore,
    projection: Projection,
    *,
    batch_size: int = 1000,
    progress: Callable[[RebuildProgress], None] | None = None,
) -> RebuildReport:
    """Rebuild `projection` into copies of its tables and swap them in (the module docstring says how)."""
    name = projection.name
    if not _NAME.match(name) or not all(_NAME.match(t) for t in projection.tables):
        raise ValueError(f"{name}: projection and table names must be lower-case identifiers")
    copies, retired, checkpoint = f"rebuild_{name}", f"retired_{name}", f"rebuild:{name}"
    started = time.monotonic()
    async with store.pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext('ticketflow rebuild ' || $1))", name):
            raise RebuildInProgress(f"a rebuild of {name} is already running")
        try:
            await _prepare_copies(conn, projection, copies, checkpoint)
            total = await store.count()
            applied = 0

            def advanced(count: int) -> None:
                nonlocal applied
                applied += count
                if progress is not None:
                    progress(RebuildProgress(name, applied, total, time.monotonic() - started))

            await conn.execute(f"SET search_path = {copies}, public")
            try:
                runner = ProjectionRunner(store, projection, batch_size=batch_size, checkpoint=checkpoint, conn=conn)
                await runner.catch_up(advanced)
                for table in projection.tables:
                    await conn.execute(f"ANALYZE {copies}.{table}")
                final = await _swap(store, projection, runner, copies, retired, advanced)
            finally:
                await conn.execute("RESET search_path")
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('ticketflow rebuild ' || $1))", name)
    return RebuildReport(name, applied, time.monotonic() - started, final)


async def _prepare_copies(conn: Any, projection: Projection, copies: str, checkpoint: str) -> None:
    """Empty copies of the live tables (a crashed rebuild's leftovers are dropped first)."""
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {copies} CASCADE")
        await conn.execute(f"CREATE SCHEMA {copies}")
        for table in projection.tables:
            await conn.execute(f"CREATE TABLE {copies}.{table} (LIKE public.{table} INCLUDING ALL)")
        await conn.execute("DELETE FROM projection_checkpoints WHERE projection = $1", checkpoint)


async def _swap(
    store: EventStore,
    projection: Projection,
    runner: ProjectionRunner,
    copies: str,
    retired: str,
    advanced: Callable[[int], None],
) -> Checkpoint:
    async with store.pool.acquire() as conn, conn.transaction():
        live = await lock_checkpoint(conn, projection.name)  # live runners of this projection wait from here
        await runner.catch_up(advanced, until=live)  # on the runner's own connection, committed batch by batch
        final = await load_checkpoint(conn, runner.name)
        await conn.execute(f"CREATE SCHEMA {retired}")
        statistics = {table: await conn.fetch(_STATISTICS, f"public.{table}") for table in projection.tables}
        for table in projection.tables:
            await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {retired}")
            await conn.execute(f"ALTER TABLE {copies}.{table} SET SCHEMA public")
            await _rename_indexes_like(conn, f"{retired}.{table}", f"public.{table}")
        await save_checkpoint(conn, projection.name, final)
        await conn.execute("DELETE FROM projection_checkpoints WHERE projection = $1", runner.name)
        await conn.execute(f"DROP SCHEMA {retired} CASCADE")  # the old tables' statistics objects with them
        for table in projection.tables:
            await _move_statistics_like(conn, statistics[table], f"public.{table}")
        await conn.execute(f"DROP SCHEMA {copies}")
        return final


async def _move_statistics_like(conn: Any, old: list[Any], new_table: str) -> None:
    """Move the new table's extended statistics objects (made in the copies' schema by `LIKE`) into public,
    each under the name of the old table's object with the same definition."""

    def shape(definition: str) -> str:
        return _STATISTICS_SHAPE.sub("", definition)

    wanted_names = {shape(r["definition"]): r["name"] for r in old}
    for row in await conn.fetch(_STATISTICS, new_table):
        await conn.execute(f'ALTER STATISTICS "{row["schema"]}"."{row["name"]}" SET SCHEMA public')
        wanted = wanted_names.pop(shape(row["definition"]), row["name"])
        if wanted != row["name"]:
            await conn.execute(f'ALTER STATISTICS public."{row["name"]}" RENAME TO "{wanted}"')


async def _rename_indexes_like(conn: Any, old_table: str, new_table: str) -> None:
    """Give each index of the new table the name of the old table's index with the same definition."""

    def shape(definition: str) -> str:
        return _INDEX_HEAD.sub(lambda m: m.group(1) or "", definition)

    old = {shape(r["definition"]): r["name"] for r in await conn.fetch(_INDEXES, old_table)}
    for row in await conn.fetch(_INDEXES, new_table):
        wanted = old.pop(shape(row["definition"]), None)
        if wanted is not None and wanted != row["name"]:
            await conn.execute(f'ALTER INDEX public."{row["name"]}" RENAME TO "{wanted}"')
