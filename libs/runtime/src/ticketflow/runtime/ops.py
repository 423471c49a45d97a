"""`ticketflow` — the SRE command line: dead letters, replays and manual commands, all through Kafka
topics and the event store (nothing reaches into a service's process).

  ticketflow dlq show chat.inbound [--limit 20]     read dead letters with their causes
  ticketflow dlq redrive chat.inbound [--limit N]   re-publish them to the topic they came from
  ticketflow replay ticket-<uuid>                   publish a stream's stored events again
  ticketflow assign <ticket uuid> <agent> [--actor sre]     (also: unassign, priority, move)
  ticketflow reply <ticket uuid> <agent> <text> [--actor]   agents' commands, applied by intake:
  ticketflow start <ticket> <agent> | wait <ticket> <reason> | resolve <ticket> <resolution>
  ticketflow close <ticket> <reason> | reopen <ticket> <reason>     (each with --actor)
  ticketflow undo-merge <ticket> <reason> | link-known-problem <ticket> <problem ticket>
  ticketflow merges [--cross-requester]             automatic merges, e.g. into another requester's ticket
  ticketflow agent join <agent> <queue> [--skills a,b] [--languages ru,en] [--capacity 5]
  ticketflow agent status <agent> online|away|offline
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ids import agent_stream
from ticketflow.contracts.roster_events import AgentEvent, AgentJoinedQueue, AgentStatusChanged
from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.contracts.values import PRIORITIES
from ticketflow.eventstore import EventStore, new_event
from ticketflow.messaging.dead_letters import DeadLetter, dead_letter_topic
from ticketflow.messaging.event_records import republish
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.topics import TOPICS_BY_NAME
from ticketflow.runtime.settings import ServiceSettings, load_settings


class CliSettings(ServiceSettings):
    """The command line reads the broker and the database from the same variables as the services."""

    service = "ticketflow"


REDRIVE_GROUP = "ticketflow-ops-redrive"
# Agents' lifecycle commands (intake applies them): subcommand -> its positional arguments after the ticket.
AGENT_SUBCOMMANDS = {
    "start": ("agent",),
    "reply": ("agent", "text"),
    "wait": ("reason",),
    "resolve": ("resolution",),
    "close": ("reason",),
    "reopen": ("reason",),
    "undo-merge": ("reason",),
    "link-known-problem": ("problem_ticket_id",),
}


async def _dead_letters(
    bootstrap: str, topic: str, limit: int, group: str | None
) -> tuple[AIOKafkaConsumer, list[ConsumerRecord[bytes, bytes]]]:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(topic),
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    batch = await consumer.getmany(timeout_ms=2000, max_records=limit)
    for partition_records in batch.values():
        records.extend(partition_records)
    return consumer, records[:limit]


def _known_dead_letter_topic(topic: str) -> str | None:
    if dead_letter_topic(topic) in TOPICS_BY_NAME:
        return None
    known = sorted(t.removesuffix(".dlq") for t in TOPICS_BY_NAME if t.endswith(".dlq"))
    return f"{topic} has no dead-letter topic; topics with one: {', '.join(known)}"


async def dlq_show(bootstrap: str, topic: str, limit: int) -> int:
    consumer, records = await _dead_letters(bootstrap, topic, limit, None)
    await consumer.stop()
    for r in records:
        letter = DeadLetter.of(r)
        where = f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"
        print(f"offset {r.offset} key={r.key!r} from {where}: {letter.reason}: {letter.detail}")
        context = " ".join(f"{k}={v}" for k, v in letter.context.items())
        print(f"    consumer={letter.consumer} {context} value={r.value[:200]!r}")
    print(f"{len(records)} dead letter(s) shown from {dead_letter_topic(topic)}")
    return 0


async def dlq_redrive(bootstrap: str, topic: str, limit: int, group: str = REDRIVE_GROUP) -> int:
    """Re-publish dead letters to their original topic, then commit the redrive group's offset, so a
    record is redriven once (a crash in between redrives it again: consumers are idempotent)."""
    consumer, records = await _dead_letters(bootstrap, topic, limit, group)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for r in records:
            letter = DeadLetter.of(r)
            await producer.send_and_wait(topic, r.value, key=r.key, headers=list(letter.redrive_headers()))
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        if offsets:
            await consumer.commit(offsets)
    finally:
        await producer.stop()
        await consumer.stop()
    print(f"redrove {len(records)} record(s) from {dead_letter_topic(topic)} to {topic}")
    return 0


async def replay(pg_dsn: str, bootstrap: str, stream_id: str, topic_names: dict[str, str] | None = None) -> int:
    """Publish a stream's stored events again, as the relay published them, in order; consumers dedupe."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        published = await republish(EventStore(pool), producer, stream_id, topic_names)
    finally:
        await producer.stop()
        await pool.close()
    print(f"replay {stream_id}: {published} event(s) published again")
    return 0


async def send_command(bootstrap: str, command: c.TicketCommand, actor: str) -> int:
    envelope = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), actor, command)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            TICKET_COMMANDS, msgspec.json.encode(envelope), key=str(command.ticket_id).encode()
        )
    finally:
        await producer.stop()
    print(f"sent {type(command).__name__} {envelope.command_id} for ticket {command.ticket_id}")
    return 0


async def agent_event(pg_dsn: str, event: AgentEvent) -> int:
    """Append a roster event to the agent's stream (routing rebuilds its roster from these)."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        store = EventStore(pool)
        stream = agent_stream(event.agent_id)
        version = len(await store.read_stream(stream))
        await store.append(stream, version, [new_event(event, datetime.now(UTC))])
    finally:
        await pool.close()
    print(f"{type(event).__name__} appended to {stream}")
    return 0


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


async def automatic_merges(pg_dsn: str, *, cross_requester: bool) -> list[dict[str, object]]:
    """Automatic merges still in force; `cross_requester`: only those into another requester's ticket."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = [dict(r) for r in await conn.fetch(MERGES_SQL)]
    finally:
        await conn.close()
    return [r for r in rows if not cross_requester or r["requester"] != r["into_requester"]]


async def show_merges(pg_dsn: str, *, cross_requester: bool) -> int:
    rows = await automatic_merges(pg_dsn, cross_requester=cross_requester)
    for r in rows:
        print(
            f"{r['ticket_id']} merged into {r['into_ticket_id']} at {r['occurred_at']:%Y-%m-%d %H:%M} "
            f"(similarity {r['similarity']:.2f}): {r['requester']} -> {r['into_requester']}"
        )
    kind = "cross-requester automatic merge(s)" if cross_requester else "automatic merge(s)"
    print(f"{len(rows)} {kind} in force; undo one with: ticketflow undo-merge <ticket> <reason> --actor <you>")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ticketflow", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="action", required=True)
    for action in ("show", "redrive"):
        a = dlq.add_parser(action)
        a.add_argument("topic")
        a.add_argument("--limit", type=int, default=20 if action == "show" else 1000)
    sub.add_parser("replay", help="republish a stream's events").add_argument("stream_id")
    merges = sub.add_parser("merges", help="automatic merges (DuplicateSuspected) not undone")
    merges.add_argument("--cross-requester", action="store_true", help="only into another requester's ticket")
    for name, extra in (("assign", "agent"), ("unassign", "reason"), ("priority", "priority"), ("move", "queue")):
        a = sub.add_parser(name, help=f"send a {name} command on {TICKET_COMMANDS}")
        a.add_argument("ticket_id", type=uuid.UUID)
        a.add_argument(extra)
        a.add_argument("--actor", default="sre")
        if name == "move":
            a.add_argument("--tier", default="l1")
            a.add_argument("--priority", default="normal", choices=PRIORITIES)
    for name, extras in AGENT_SUBCOMMANDS.items():
        a = sub.add_parser(name, help=f"send a {name} command on {TICKET_COMMANDS} (applied by intake)")
        a.add_argument("ticket_id", type=uuid.UUID)
        for extra in extras:
            a.add_argument(extra, type=uuid.UUID if extra.endswith("ticket_id") else str)
        a.add_argument("--actor", default="sre")
    agent = sub.add_parser("agent", help="agent roster").add_subparsers(dest="action", required=True)
    join = agent.add_parser("join")
    join.add_argument("agent_id")
    join.add_argument("queue_id")
    join.add_argument("--skills", default="")
    join.add_argument("--languages", default="ru")
    join.add_argument("--capacity", type=int, default=5)
    status = agent.add_parser("status")
    status.add_argument("agent_id")
    status.add_argument("status", choices=["online", "away", "offline"])
    return p


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def agent_command(args: argparse.Namespace) -> c.TicketCommand:
    ticket, actor = args.ticket_id, args.actor
    match args.what:
        case "start":
            return c.StartWork(ticket, args.agent)
        case "reply":
            return c.ReplyAsAgent(ticket, args.agent, "", args.text)  # intake uses the command id as message id
        case "wait":
            return c.WaitForCustomer(ticket, args.reason, actor)
        case "resolve":
            return c.ResolveTicket(ticket, args.resolution, actor)
        case "close":
            return c.CloseTicket(ticket, args.reason, actor)
        case "undo-merge":
            return c.UndoMerge(ticket, args.reason, actor)
        case "link-known-problem":
            return c.LinkKnownProblem(ticket, args.problem_ticket_id, actor)
        case _:
            return c.ReopenTicket(ticket, args.reason, actor)


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    s = load_settings(CliSettings)
    if args.what == "dlq":
        problem = _known_dead_letter_topic(args.topic)
        if problem:
            print(problem)
            return 2
        action = dlq_show if args.action == "show" else dlq_redrive
        return asyncio.run(action(s.kafka_bootstrap, args.topic, args.limit))
    if args.what == "replay":
        return asyncio.run(replay(s.pg_dsn, s.kafka_bootstrap, args.stream_id))
    if args.what == "merges":
        return asyncio.run(show_merges(s.pg_dsn, cross_requester=args.cross_requester))
    if args.what == "agent":
        event: AgentEvent = (
            AgentJoinedQueue(args.agent_id, args.queue_id, _csv(args.skills), _csv(args.languages), args.capacity)
            if args.action == "join"
            else AgentStatusChanged(args.agent_id, args.status)
        )
        return asyncio.run(agent_event(s.pg_dsn, event))
    ticket, actor = args.ticket_id, args.actor
    command: c.TicketCommand
    if args.what == "assign":
        command = c.AssignTicket(ticket, args.agent, "manual", actor)
    elif args.what == "unassign":
        command = c.UnassignTicket(ticket, args.reason, actor)
    elif args.what in AGENT_SUBCOMMANDS:
        command = agent_command(args)
    elif args.what == "priority":
        if args.priority not in PRIORITIES:
            print(f"priority must be one of {', '.join(PRIORITIES)} (got {args.priority!r})")
            return 2
        command = c.ChangePriority(ticket, args.priority, actor)
    else:
        command = c.RouteTicket(ticket, args.queue, args.tier, args.priority, "manual", f"moved by {actor}", actor)
    return asyncio.run(send_command(s.kafka_bootstrap, command, actor))


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
