"""The query benchmark's dataset: N tickets' realistic histories (tests/support/ticket_histories.py) in the
event store, and every read model filled as the projector would have filled it, all with bulk COPY.

The read-model rows come from the projector's own pure functions (`ticketflow.projector.domain`) applied to
each ticket's events in log order, so no projection has to replay ~10 M events first; the smoke test
(test_bench_queries_smoke.py) checks that a small dataset built here equals a rebuild by the projector.
A child process generates the chunks while this one copies the previous chunk into PostgreSQL.

The database is kept between runs and reused while its marker says it was built by this generator version for
this many tickets (`ensure_dataset`). A migration added since is applied to it, as to a deployed database (an
index, a new table); one changed since it was applied rebuilds it. A change to what the generator writes
(a read-model column, say) bumps GENERATOR_VERSION."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from support.infra import dsn_with_database
from support.ticket_histories import Step, histories, roster

from ticketflow.contracts.codec import default_codec
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.ids import new_event_id
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import migrate
from ticketflow.projector.adapters.read_models import NAMES
from ticketflow.projector.domain import agents, backlog, backlog_history, metrics, register, sla_board, tickets
from ticketflow.projector.domain.desk_time import RegistryDeskTime

GENERATOR_VERSION = "2"  # 2: backlog_history filled too
CHUNK = 2000  # tickets per chunk: their events are interleaved in time order, as in a live log
SPACING_S = 30.0  # one ticket every 30 s: a million tickets over ~347 days
_encode = msgspec.json.Encoder().encode
_METADATA = _encode(EventMetadata()).decode()


@dataclass
class Chunk:
    """One chunk's rows, column for column as COPY takes them."""

    events: list[tuple[Any, ...]]
    tables: dict[str, list[tuple[Any, ...]]]
    registers: dict[tuple[str, str], list[int]]
    hours: dict[tuple[str, str, datetime], list[int]]  # backlog_hours: (desk, queue, hour) -> [entered, exited]
    last_position: int


def _rows(rows: list[msgspec.Struct]) -> list[tuple[Any, ...]]:
    """Struct rows as COPY tuples (lists and dicts as JSON text for the jsonb columns)."""
    out = []
    for row in rows:
        out.append(
            tuple(_encode(v).decode() if isinstance(v, list | dict) else v for v in msgspec.structs.astuple(row))
        )
    return out


def chunks(tickets_count: int, seed: int, now: datetime) -> Iterator[Chunk]:
    """The dataset chunk by chunk, positions counted from 1 in the order the events will be copied."""
    desks = load_desks()
    desk_time = RegistryDeskTime(desks)
    codec = default_codec()
    rng = random.Random(seed)
    start = now - timedelta(seconds=tickets_count * SPACING_S)
    position = 0
    agent_rows: dict[str, agents.AgentRow | None] = {}
    for first in range(1, tickets_count + 1, CHUNK):
        steps: list[Step] = roster(start) if first == 1 else []
        made = list(histories(first, min(CHUNK, tickets_count - first + 1), rng, start, SPACING_S, now))
        for _, history in made:
            steps += history
        steps.sort(key=lambda step: step.at)
        versions: dict[str, int] = defaultdict(int)
        by_ticket: dict[Any, list[EventEnvelope]] = defaultdict(list)
        events = []
        for step in steps:
            position += 1
            versions[step.stream] += 1
            event_id = new_event_id()
            envelope = EventEnvelope(event_id, step.stream, versions[step.stream], step.at, 1, step.event,
                                     position=position)  # fmt: skip
            name = event_type_name(step.event)
            events.append((step.stream, versions[step.stream], event_id, name, codec.current_version(name),
                           codec.encode(step.event).decode(), _METADATA, step.at))  # fmt: skip
            ticket = getattr(step.event, "ticket_id", None)
            if ticket is None:
                agent = step.event.agent_id
                agent_rows[agent] = agents.apply_agent(agent_rows.get(agent), envelope)
            else:
                by_ticket[ticket].append(envelope)
        tables, registers, hours = fold(by_ticket, desk_time, agent_rows if first == 1 else {})
        yield Chunk(events, tables, registers, hours, position)


def fold(
    by_ticket: dict[Any, list[EventEnvelope]],
    desk_time: RegistryDeskTime,
    agent_rows: dict[str, agents.AgentRow | None],
) -> tuple[
    dict[str, list[tuple[Any, ...]]], dict[tuple[str, str], list[int]], dict[tuple[str, str, datetime], list[int]]
]:
    """Each ticket's events through each read model's pure function: the rows the projector would keep."""
    tables: dict[str, list[Any]] = defaultdict(list)
    registers: dict[tuple[str, str], list[int]] = {}
    hours: dict[tuple[str, str, datetime], list[int]] = {}
    for envelopes in by_ticket.values():
        view: Any = None
        queued: Any = None
        board: Any = None
        held: Any = None
        metric: Any = None
        entry: Any = None
        waiting: Any = None
        for e in envelopes:
            view = tickets.apply(view, e)
            queued = backlog.apply(queued, e)
            board = sla_board.apply(board, e, desk_time.queue_track)
            held = agents.apply_ticket(held, e)
            metric = metrics.apply(metric, e, desk_time)
            entry = register.apply(entry, e)
            waiting, moves = backlog_history.apply(waiting, e)
            for move in moves:
                hours.setdefault((move.desk_id, move.queue_id, move.hour), [0, 0])[0 if move.change > 0 else 1] += 1
        if view is None:
            continue
        tables["ticket_list"].append((*msgspec.structs.astuple(tickets.list_row(view)), tickets.search_text(view)))
        tables["ticket_details"].append((view.ticket_id, view.desk_id, _encode(view).decode()))
        for name, row in (("queue_backlog", queued), ("agent_load_tickets", held), ("desk_metric_tickets", metric),
                          ("register_entries", entry), ("sla_board_tickets", board),
                          ("backlog_history_tickets", waiting)):  # fmt: skip
            if row is not None:
                tables[name] += _rows([row])
        if board is not None:
            tables["sla_board_clocks"] += _rows(list(sla_board.board_rows(board)))
        if entry is not None:
            total = registers.setdefault((entry.desk_id, entry.organisation_id), [0] * len(register.COUNTED))
            total[:] = [a + b for a, b in zip(total, register.counts(entry), strict=True)]
    tables["agent_load"] = _rows([a for a in agent_rows.values() if a is not None])
    return dict(tables), registers, hours


async def copy_chunk(conn: asyncpg.Connection, chunk: Chunk) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table(
            "events", records=chunk.events,
            columns=["stream_id", "stream_version", "event_id", "event_type", "schema_version", "data", "metadata",
                     "occurred_at"],
        )  # fmt: skip
    listed = chunk.tables.pop("ticket_list", [])
    if listed:
        await conn.execute("TRUNCATE ticket_list_stage")
        await conn.copy_records_to_table("ticket_list_stage", records=listed)
        await conn.execute(
            f"INSERT INTO ticket_list ({LIST_COLUMNS}, search) "
            f"SELECT {LIST_COLUMNS}, to_tsvector('simple', left(search_text, 100000)) FROM ticket_list_stage"
        )
    for table, rows in chunk.tables.items():
        if rows:
            await conn.copy_records_to_table(table, records=rows)


LIST_COLUMNS = ", ".join(tickets.ListRow.__struct_fields__)


async def build(dsn: str, tickets_count: int, seed: int, progress: bool = True) -> dict[str, Any]:
    """Fill a migrated, empty database; returns what was built (counts, seconds)."""
    now = datetime.now(UTC).replace(microsecond=0)
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    registers: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(register.COUNTED))
    hours: dict[tuple[str, str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    try:
        await conn.execute(
            "CREATE UNLOGGED TABLE ticket_list_stage AS SELECT "
            + LIST_COLUMNS + ", ''::text AS search_text FROM ticket_list WITH NO DATA"
        )  # fmt: skip
        context = multiprocessing.get_context("spawn")
        queue: Any = context.Queue(maxsize=2)
        producer = context.Process(target=_produce, args=(queue, tickets_count, seed, now), daemon=True)
        producer.start()
        last = 0
        done = 0
        while (chunk := queue.get()) is not None:
            for key, counts in chunk.registers.items():
                registers[key][:] = [a + b for a, b in zip(registers[key], counts, strict=True)]
            for place, moved in chunk.hours.items():  # an hour's tickets may span chunks
                hours[place][:] = [a + b for a, b in zip(hours[place], moved, strict=True)]
            await copy_chunk(conn, chunk)
            last = chunk.last_position
            done = min(tickets_count, done + CHUNK)
            if progress and done % (CHUNK * 25) == 0:
                rate = done / (time.monotonic() - started)
                print(f"  dataset: {done:,}/{tickets_count:,} tickets, {last:,} events, {rate:,.0f} tickets/s",
                      flush=True)  # fmt: skip
        producer.join()
        await conn.execute("DROP TABLE ticket_list_stage")
        await conn.copy_records_to_table(
            "register_organisations", records=[(*key, *counts) for key, counts in registers.items()]
        )
        await conn.copy_records_to_table("backlog_hours", records=[(*key, *moved) for key, moved in hours.items()])
        head = await conn.fetchrow(
            "SELECT transaction_id::text AS x, position FROM events ORDER BY position DESC LIMIT 1"
        )
        for name in NAMES:  # every read model holds everything up to the last event
            await conn.execute(
                "INSERT INTO projection_checkpoints (projection, transaction_id, position)"
                " VALUES ($1, $2::text::xid8, $3)", name, head["x"], head["position"],
            )  # fmt: skip
        await conn.execute("VACUUM ANALYZE")
        events = int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()
    return {"tickets": tickets_count, "events": events, "seconds": round(time.monotonic() - started, 1), "now": now}


def _produce(queue: Any, tickets_count: int, seed: int, now: datetime) -> None:
    for chunk in chunks(tickets_count, seed, now):
        queue.put(chunk)
    queue.put(None)


def marker(tickets_count: int, seed: int) -> str:
    """What a dataset was built from: the generator version, the size and the seed."""
    return hashlib.sha256(f"{GENERATOR_VERSION}|{tickets_count}|{seed}".encode()).hexdigest()


async def _migrated(dsn: str) -> bool:
    """Apply the migrations added since the dataset was built; False when an applied one has changed."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate.apply_all(conn)
    except migrate.MigrationError as changed:
        print(f"  dataset: rebuilt, {changed}")
        return False
    finally:
        await conn.close()
    if applied:
        print(f"  dataset: reused, migrations applied now: {', '.join(m.name for m in applied)}")
    return True


async def ensure_dataset(server_dsn: str, name: str, tickets_count: int, seed: int = 19) -> tuple[str, bool]:
    """The DSN of database `name` holding the dataset, built unless an identical one is there already;
    returns (dsn, built now)."""
    wanted = marker(tickets_count, seed)
    dsn = dsn_with_database(server_dsn, name)
    server = await asyncpg.connect(server_dsn)
    try:
        exists = await server.fetchval("SELECT true FROM pg_database WHERE datname = $1", name)
        if exists:
            conn = await asyncpg.connect(dsn)
            try:
                found = await conn.fetchval(
                    "SELECT marker FROM bench_dataset WHERE marker = $1", wanted
                ) if await conn.fetchval("SELECT to_regclass('bench_dataset') IS NOT NULL") else None  # fmt: skip
            finally:
                await conn.close()
            if found and await _migrated(dsn):
                return dsn, False
            await server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply_all(conn)
    finally:
        await conn.close()
    built = await build(dsn, tickets_count, seed)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE bench_dataset (marker text, tickets int, events bigint, built_at timestamptz)")
        await conn.execute(
            "INSERT INTO bench_dataset VALUES ($1, $2, $3, now())", wanted, tickets_count, built["events"]
        )
    finally:
        await conn.close()
    print(f"  dataset: built {built['tickets']:,} tickets, {built['events']:,} events in {built['seconds']} s")
    return dsn, True
