"""Agents' commands on the real PostgreSQL (fake records through the service's worker), and once
through the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from intake_app import commands, dead_letters_sent, make_intake
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.records import FakeRecord, RecordingProducer
from support.tickets import open_ticket, run

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import EventStore
from ticketflow.intake.app import Intake
from ticketflow.intake.consumer import COMMANDS_CONSUMER, commands_worker
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.per_key import per_key_batches


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
    return FakeRecord("ticket.commands", 0, 0, str(command.ticket_id).encode(), msgspec.json.encode(envelope))


def id_of(record: FakeRecord) -> str:
    return str(msgspec.json.decode(record.value or b"", type=CommandEnvelope).command_id)


async def deliver(intake: Intake, producer: RecordingProducer, records: list[FakeRecord]) -> list[bool]:
    """The records through `ticket.commands`' worker, in order; what `apply_command` answered for each
    one it applied or ignored (True: it appended events). Refused ones are dead letters in `producer`."""
    answers: list[bool] = []
    apply = intake.apply_command

    async def answering(envelope: CommandEnvelope) -> bool:
        answers.append(await apply(envelope))
        return answers[-1]

    intake.apply_command = answering  # type: ignore[method-assign]
    try:
        await commands(intake, producer).process(records)
    finally:
        del intake.apply_command
    return answers


async def events(store: EventStore, ticket: uuid.UUID) -> list[object]:
    return [envelope.event for envelope in await store.read_stream(ticket_stream(ticket))]


@pytest.mark.pg
async def test_a_reply_is_recorded_once_however_often_it_is_delivered(pool: asyncpg.Pool) -> None:
    intake, dead = make_intake(events=EventStore(pool))
    store = EventStore(pool)
    ticket = await assigned_ticket(store)
    reply = record(c.ReplyAsAgent(ticket, "ann", "", "please restart the portal"))
    assert await deliver(intake, dead, [reply]) == [True]
    stored = await store.read_stream(ticket_stream(ticket))
    assert stored[-1].event == e.AgentReplied(ticket, "ann", id_of(reply), "please restart the portal")
    assert stored[-1].metadata.causation_id == uuid.UUID(id_of(reply))

    assert await deliver(intake, dead, [reply]) == [False]  # redelivered
    assert len(await store.read_stream(ticket_stream(ticket))) == len(stored)
    assert dead.sent == []


@pytest.mark.pg
async def test_the_whole_agent_workflow_with_the_envelope_actor_and_redelivered_state_changes(
    pool: asyncpg.Pool,
) -> None:
    intake, dead = make_intake(events=EventStore(pool))
    store = EventStore(pool)
    ticket = await assigned_ticket(store)
    script = [
        record(c.StartWork(ticket, "ann")),
        record(c.WaitForCustomer(ticket, "logs please", "someone"), actor="ann"),
        record(c.ResolveTicket(ticket, "fixed", "someone"), actor="ann"),
        record(c.ReopenTicket(ticket, "not fixed", "someone"), actor="lead-kim"),
        record(c.ResolveTicket(ticket, "fixed now", "someone"), actor="ann"),
        record(c.CloseTicket(ticket, "confirmed", "someone"), actor="lead-kim"),
    ]
    assert await deliver(intake, dead, script) == [True] * 6
    # Redelivering all of it (the state has moved on, e.g. StartWork is no longer legal) adds nothing,
    # and is no dead letter: each command's first event is in the stream already.
    assert await deliver(intake, dead, script) == [False] * 6
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
    assert await deliver(intake, dead, [resolve_closed]) == []
    [letter] = dead_letters_sent(dead)
    assert (letter.value, letter.reason) == (resolve_closed.value, "rejected")
    assert letter.detail == "ResolveTicket is not allowed in state closed"
    assert (letter.consumer, letter.context) == (COMMANDS_CONSUMER, {"command-id": id_of(resolve_closed)})


@pytest.mark.pg
async def test_an_agents_referral_unassigns_and_refers_once_however_often_it_is_delivered(pool: asyncpg.Pool) -> None:
    intake, dead = make_intake(events=EventStore(pool))
    store = EventStore(pool)
    ticket = await assigned_ticket(store)
    refer = record(c.ReferTicket(ticket, "custom_development", "a partner builds this"), actor="ann")
    assert await deliver(intake, dead, [refer, refer]) == [True, False]
    assert (await events(store, ticket))[-2:] == [
        e.TicketUnassigned(ticket, "ann", "referred to partners", "ann"),  # the envelope's actor
        e.TicketReferred(ticket, "custom_development", "a partner builds this"),
    ]
    assert dead.sent == []


@pytest.mark.pg
async def test_a_command_for_an_unknown_ticket_is_dead_lettered(pool: asyncpg.Pool) -> None:
    intake, dead = make_intake(events=EventStore(pool))
    ticket = uuid.uuid4()
    assert await deliver(intake, dead, [record(c.ReplyAsAgent(ticket, "ann", "m", "hi"))]) == []
    [letter] = dead_letters_sent(dead)
    assert letter.reason == "rejected" and letter.detail.startswith(f"unknown ticket {ticket}")
    assert await events(EventStore(pool), ticket) == []


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
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    intake, _ = make_intake(events=store)
    broker = KafkaBroker(kafka_bootstrap)
    worker = commands_worker(intake, DeadLetterWriter(producer, COMMANDS_CONSUMER))
    per_key_batches(broker, [topic], topic, worker)
    await broker.start()
    try:
        key = str(ticket).encode()
        await producer.send_and_wait(topic, b"not a command", key=key)
        await producer.send_and_wait(topic, record(c.ReplyAsAgent(ticket, "ann", "r-1", "done?")).value, key=key)
        async with asyncio.timeout(30):
            while not isinstance((await events(store, ticket))[-1], e.AgentReplied):  # noqa: ASYNC110 - polls PG
                await asyncio.sleep(0.1)
        assert (await events(store, ticket))[-1] == e.AgentReplied(ticket, "ann", "r-1", "done?")
        [letter] = await read_dead_letters(kafka_bootstrap, f"{topic}.dlq")
        assert (letter.value, letter.reason, letter.consumer) == (b"not a command", "undecodable", COMMANDS_CONSUMER)
        assert (letter.original_topic, letter.original_offset) == (topic, 0)
    finally:
        await broker.stop()
        await producer.stop()
        await kafka_admin.delete_topics([f"{topic}.dlq"])


async def read_dead_letters(bootstrap: str, topic: str, count: int = 1) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return [DeadLetter.of(await asyncio.wait_for(consumer.getone(), 30)) for _ in range(count)]
    finally:
        await consumer.stop()


@pytest.mark.pg
async def test_nul_in_an_agents_text_becomes_fffd_and_in_an_id_is_dead_lettered(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cannot store U+0000: free text keeps everything else (docs/intake.md "NUL characters")."""
    intake, dead = make_intake(events=EventStore(pool))
    store = EventStore(pool)
    ticket = await assigned_ticket(store)
    script = [
        record(c.ReplyAsAgent(ticket, "ann", "", "restart\x00it")),
        record(c.StartWork(ticket, "a\x00nn")),
        record(c.ResolveTicket(ticket, "done\x00", "someone"), actor="ann"),
    ]
    assert await deliver(intake, dead, script) == [True, True]
    replied, resolved = (await events(store, ticket))[-2:]
    assert isinstance(replied, e.AgentReplied) and replied.text == "restart\ufffdit"
    assert isinstance(resolved, e.TicketResolved) and resolved.resolution == "done\ufffd"
    [letter] = dead_letters_sent(dead)
    assert letter.value == script[1].value and letter.reason == "rejected"
    assert letter.detail.startswith("invalid:") and "agent_id" in letter.detail and "NUL" in letter.detail

    # The safety net: should a NUL reach the store anyway, the record is dead-lettered naming it, not retried.
    monkeypatch.setattr("ticketflow.intake.app.prepare", lambda envelope: envelope.command)
    reopen = record(c.ReopenTicket(ticket, "not\x00fixed", "ann"))
    assert await deliver(intake, dead, [reopen]) == []
    detail = dead_letters_sent(dead)[-1].detail
    assert detail.startswith("unstorable:") and "TicketReopened" in detail and "NUL" in detail
