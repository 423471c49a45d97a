"""The agent-command handler on the real PostgreSQL (fake records), and once through the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.kafka import dead_letters
from support.tickets import open_ticket, run
from test_agent_commands import FakeRecord, RecordedDeadLetters

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import EventStore
from ticketflow.intake.adapters.agent_commands import AgentCommandHandler, subscribe
from ticketflow.runtime.kafka import DeadLetters


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(pg_database)
    yield pool
    await pool.close()


async def assigned_ticket(store: EventStore, agent: str = "ann") -> uuid.UUID:
    ticket = uuid.uuid4()
    for command in (
        open_ticket(ticket, 1),
        c.RecordPreflightPassed(ticket, "how_to"),
        c.RouteTicket(ticket, "box-l1", "l1", "normal", "rule-1"),
        c.AssignTicket(ticket, agent),
    ):
        await run(store, command)
    return ticket


def record(command: c.TicketCommand, actor: str = "ann", command_id: uuid.UUID | None = None) -> FakeRecord:
    envelope = CommandEnvelope(command_id or uuid.uuid4(), datetime.now(UTC), actor, command)
    return FakeRecord(msgspec.json.encode(envelope), key=str(command.ticket_id).encode())


async def events(store: EventStore, ticket: uuid.UUID) -> list[object]:
    return [envelope.event for envelope in await store.read_stream(ticket_stream(ticket))]


@pytest.mark.pg
async def test_a_reply_is_recorded_once_however_often_it_is_delivered(pool: asyncpg.Pool) -> None:
    store, dead = EventStore(pool), RecordedDeadLetters()
    handler = AgentCommandHandler(store, dead)
    ticket = await assigned_ticket(store)
    reply = record(c.ReplyAsAgent(ticket, "ann", "", "please restart the portal"))
    first = await handler.handle([reply])
    assert (first.applied, first.dead_lettered) == (1, 0)
    stored = await store.read_stream(ticket_stream(ticket))
    command_id = str(msgspec.json.decode(reply.value or b"", type=CommandEnvelope).command_id)
    assert stored[-1].event == e.AgentReplied(ticket, "ann", command_id, "please restart the portal")
    assert stored[-1].metadata.causation_id == uuid.UUID(command_id)

    again = await handler.handle([reply])  # redelivered
    assert (again.applied, again.dead_lettered) == (0, 0)
    assert len(await store.read_stream(ticket_stream(ticket))) == len(stored)
    assert dead.sent == []


@pytest.mark.pg
async def test_the_whole_agent_workflow_with_the_envelope_actor_and_redelivered_state_changes(
    pool: asyncpg.Pool,
) -> None:
    store, dead = EventStore(pool), RecordedDeadLetters()
    handler = AgentCommandHandler(store, dead)
    ticket = await assigned_ticket(store)
    script = [
        record(c.StartWork(ticket, "ann")),
        record(c.WaitForCustomer(ticket, "logs please", "someone"), actor="ann"),
        record(c.ResolveTicket(ticket, "fixed", "someone"), actor="ann"),
        record(c.ReopenTicket(ticket, "not fixed", "someone"), actor="lead-kim"),
        record(c.ResolveTicket(ticket, "fixed now", "someone"), actor="ann"),
        record(c.CloseTicket(ticket, "confirmed", "someone"), actor="lead-kim"),
    ]
    assert (await handler.handle(script)).applied == 6
    # Redelivering all of it (the state has moved on, e.g. StartWork is no longer legal) adds nothing.
    again = await handler.handle(script)
    assert (again.applied, again.unchanged, again.dead_lettered) == (0, 6, 0)
    assert (await events(store, ticket))[-6:] == [
        e.WorkStarted(ticket, "ann"),
        e.WaitingOnCustomer(ticket, "logs please", "ann"),
        e.TicketResolved(ticket, "fixed", "ann"),
        e.TicketReopened(ticket, "not fixed", "lead-kim"),
        e.TicketResolved(ticket, "fixed now", "ann"),
        e.TicketClosed(ticket, "confirmed", "lead-kim"),
    ]
    assert dead.sent == []

    resolve_closed = record(c.ResolveTicket(ticket, "once more", "ann"))
    outcome = await handler.handle([resolve_closed])
    assert outcome.dead_lettered == 1
    [(value, reason, context)] = dead.sent
    assert value == resolve_closed.value and reason == "ResolveTicket is not allowed in state closed"
    assert context == {"command_id": str(msgspec.json.decode(value, type=CommandEnvelope).command_id)}


@pytest.mark.pg
async def test_a_command_for_an_unknown_ticket_is_dead_lettered(pool: asyncpg.Pool) -> None:
    store, dead = EventStore(pool), RecordedDeadLetters()
    ticket = uuid.uuid4()
    outcome = await AgentCommandHandler(store, dead).handle([record(c.ReplyAsAgent(ticket, "ann", "m", "hi"))])
    assert outcome.dead_lettered == 1 and dead.sent[0][1].startswith(f"unknown ticket {ticket}")
    assert await events(store, ticket) == []


@pytest.mark.pg
@pytest.mark.kafka
async def test_through_the_broker_a_bad_record_is_dead_lettered_and_the_next_command_applied(
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    kafka_topic_factory: KafkaTopicFactory,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    store = EventStore(pool)
    ticket = await assigned_ticket(store)
    topic = await kafka_topic_factory(partitions=1)
    await kafka_admin.create_topics([NewTopic(f"{topic}.dlq", 1, 1)])
    broker = KafkaBroker(kafka_bootstrap)
    subscribe(broker, AgentCommandHandler(store, DeadLetters(broker, "intake-commands")), topic=topic, group_id=topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await broker.start()
    try:
        key = str(ticket).encode()
        await producer.send_and_wait(topic, b"not a command", key=key)
        await producer.send_and_wait(topic, record(c.ReplyAsAgent(ticket, "ann", "r-1", "done?")).value, key=key)
        async with asyncio.timeout(30):
            while not isinstance((await events(store, ticket))[-1], e.AgentReplied):  # noqa: ASYNC110 - polls PG
                await asyncio.sleep(0.1)
        assert (await events(store, ticket))[-1] == e.AgentReplied(ticket, "ann", "r-1", "done?")
        [(value, headers)] = await dead_letters(kafka_bootstrap, f"{topic}.dlq")
        assert value == b"not a command" and headers["x-dead-letter-reason"].startswith("undecodable")
        assert headers["x-consumer"] == "intake-commands" and headers["x-original-topic"] == topic
    finally:
        await broker.stop()
        await producer.stop()
        await kafka_admin.delete_topics([f"{topic}.dlq"])


@pytest.mark.pg
async def test_nul_in_an_agents_text_becomes_fffd_and_in_an_id_is_dead_lettered(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cannot store U+0000: free text keeps everything else (docs/intake.md "NUL characters")."""
    store, dead = EventStore(pool), RecordedDeadLetters()
    handler = AgentCommandHandler(store, dead)
    ticket = await assigned_ticket(store)
    script = [
        record(c.ReplyAsAgent(ticket, "ann", "", "restart\x00it")),
        record(c.StartWork(ticket, "a\x00nn")),
        record(c.ResolveTicket(ticket, "done\x00", "someone"), actor="ann"),
    ]
    outcome = await handler.handle(script)
    assert (outcome.applied, outcome.dead_lettered) == (2, 1)
    replied, resolved = (await events(store, ticket))[-2:]
    assert isinstance(replied, e.AgentReplied) and replied.text == "restart\ufffdit"
    assert isinstance(resolved, e.TicketResolved) and resolved.resolution == "done\ufffd"
    [(value, reason, _)] = dead.sent
    assert value == script[1].value and reason.startswith("invalid:") and "agent_id" in reason and "NUL" in reason

    # The safety net: should a NUL reach the store anyway, the record is dead-lettered naming it, not retried.
    monkeypatch.setattr("ticketflow.intake.adapters.agent_commands.prepare", lambda envelope: envelope.command)
    reopen = record(c.ReopenTicket(ticket, "not\x00fixed", "ann"))
    assert (await handler.handle([reopen])).dead_lettered == 1
    reason = dead.sent[-1][1]
    assert reason.startswith("unstorable:") and "TicketReopened" in reason and "NUL" in reason
