"""Tickets: a ticket's stream and timeline from the event store, replays, the commands people send on
`ticket.commands`, agents' roster events, and the automatic merges still in force."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from ticketflow.cli.context import CliError, Context
from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import agent_stream
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.eventstore import EventStore, new_event
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.replay import replay_streams, ticket_streams

SUMMARY_FIELDS = 3  # fields of an event shown on its timeline line


async def _pool(ctx: Context) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(ctx.pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    return pool


async def ticket_events(ctx: Context, ticket_id: uuid.UUID) -> list[EventEnvelope]:
    """Every stored event of the ticket (lifecycle, SLA, notifications), in the order they were stored."""
    pool = await _pool(ctx)
    try:
        store = EventStore(pool)
        events = [e for stream in ticket_streams(ticket_id) for e in await store.read_stream(stream)]
    finally:
        await pool.close()
    if not events:
        raise CliError(f"no events for ticket {ticket_id}: unknown ticket (or another database)")
    return sorted(events, key=lambda e: (e.position or 0, e.occurred_at))


async def show_stream(ctx: Context, ticket_id: uuid.UUID) -> None:
    events = await ticket_events(ctx, ticket_id)
    if ctx.json:
        ctx.emit(events)
        return
    for envelope in events:
        ctx.console.print(msgspec.json.encode(envelope).decode(), markup=False)


def summary(envelope: EventEnvelope) -> str:
    fields = {
        k: v for k, v in msgspec.structs.asdict(envelope.event).items() if k != "ticket_id" and v not in ((), None, "")
    }
    shown = [f"{k}={_short(v)}" for k, v in list(fields.items())[:SUMMARY_FIELDS]]
    return " ".join(shown)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def show_timeline(ctx: Context, ticket_id: uuid.UUID) -> None:
    events = await ticket_events(ctx, ticket_id)
    rows = [(f"{e.occurred_at:%Y-%m-%d %H:%M:%S}", e.stream_id.split("-", 1)[0], f"{e.stream_version}",
             type(e.event).__name__, summary(e)) for e in events]  # fmt: skip
    data = [{"at": e.occurred_at, "stream": e.stream_id, "version": e.stream_version, "type": type(e.event).__name__,
             "event": e.event} for e in events]  # fmt: skip
    ctx.table(f"ticket {ticket_id}", ("at", "stream", "v", "event", "what"), rows, data)


async def replay(ctx: Context, streams: list[str]) -> int:
    pool = await _pool(ctx)
    producer = make_producer(ctx.bootstrap, ctx.security, client_id="ticketflow-cli-replay")
    try:
        await producer.start()
        published = await replay_streams(EventStore(pool), producer, streams)
    finally:
        await producer.stop()
        await pool.close()
    ctx.emit(
        {"streams": streams, "published": published},
        f"replay {', '.join(streams)}: {published} event(s) published again",
    )
    return published


async def send_command(ctx: Context, command: c.TicketCommand, actor: str, topic: str = TICKET_COMMANDS) -> uuid.UUID:
    envelope = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), actor, command)
    producer = make_producer(ctx.bootstrap, ctx.security)
    try:
        await producer.start()
        await producer.send_and_wait(topic, msgspec.json.encode(envelope), key=str(command.ticket_id).encode())
    finally:
        await producer.stop()
    ctx.emit({"command_id": envelope.command_id, "type": type(command).__name__, "ticket_id": command.ticket_id},
             f"sent {type(command).__name__} {envelope.command_id} for ticket {command.ticket_id}")  # fmt: skip
    return envelope.command_id


async def agent_event(ctx: Context, event: AgentEvent) -> None:
    """Append a roster event to the agent's stream (routing rebuilds its roster from these)."""
    pool = await _pool(ctx)
    try:
        store = EventStore(pool)
        stream = agent_stream(event.agent_id)
        version = len(await store.read_stream(stream))
        await store.append(stream, version, [new_event(event, datetime.now(UTC))])
    finally:
        await pool.close()
    ctx.emit({"stream": stream, "event": event}, f"{type(event).__name__} appended to {stream}")


# Automatic merges (DuplicateSuspected) not undone since, with both tickets' requesters (from their
# TicketOpened: platform, tenant, user). Earlier code merged across requesters of a public bot (issue 14).
MERGES_SQL = """
SELECT substr(m.stream_id, 8)::uuid AS ticket_id, (m.data->>'duplicate_of')::uuid AS into_ticket_id,
       m.occurred_at, (m.data->>'similarity')::float8 AS similarity,
       concat_ws(':', a.data->'chat'->>'platform', a.data->'chat'->>'tenant_id', a.data->'requester'->>'user_id')
           AS requester,
       concat_ws(':', b.data->'chat'->>'platform', b.data->'chat'->>'tenant_id', b.data->'requester'->>'user_id')
           AS into_requester
FROM events m
JOIN events a ON a.stream_id = m.stream_id AND a.stream_version = 1
LEFT JOIN events b ON b.stream_id = 'ticket-' || (m.data->>'duplicate_of') AND b.stream_version = 1
WHERE m.event_type = 'DuplicateSuspected'
  AND NOT EXISTS (SELECT 1 FROM events u WHERE u.stream_id = m.stream_id AND u.event_type = 'MergeUndone'
                  AND u.stream_version > m.stream_version)
ORDER BY m.occurred_at DESC
"""


async def automatic_merges(pg_dsn: str, *, cross_requester: bool) -> list[dict[str, Any]]:
    """Automatic merges still in force; `cross_requester`: only those into another requester's ticket."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = [dict(r) for r in await conn.fetch(MERGES_SQL)]
    finally:
        await conn.close()
    return [r for r in rows if not cross_requester or r["requester"] != r["into_requester"]]


async def show_merges(ctx: Context, *, cross_requester: bool) -> None:
    rows = await automatic_merges(ctx.pg_dsn, cross_requester=cross_requester)
    table = [(r["ticket_id"], r["into_ticket_id"], f"{r['occurred_at']:%Y-%m-%d %H:%M}", f"{r['similarity']:.2f}",
              f"{r['requester']} -> {r['into_requester']}") for r in rows]  # fmt: skip
    kind = "cross-requester automatic merges" if cross_requester else "automatic merges"
    ctx.table(f"{len(rows)} {kind} in force (undo one: ticketflow undo-merge <ticket> <reason> --actor <you>)",
              ("ticket", "merged into", "at", "similarity", "requesters"), table, rows)  # fmt: skip
