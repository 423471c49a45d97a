"""The SRE command line against the real broker and PostgreSQL: redrive, replay, commands, bad input."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.eventstore import migrated_pool, some_events
from support.infra import KafkaTopicFactory
from support.records import FakeRecord
from support.relay import read_published

from ticketflow.contracts.commands import AssignTicket, CommandEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.runtime import ops


async def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < expected:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got += [(r.key, r.value, dict(r.headers)) for r in records if r.value is not None]
        extra = await consumer.getmany(timeout_ms=500)  # nothing more than expected
        got += [(r.key, r.value, dict(r.headers)) for records in extra.values() for r in records if r.value]
    finally:
        await consumer.stop()
    return got


@pytest.mark.kafka
async def test_redrive_republishes_dead_letters_once_without_their_dead_letter_headers(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory, kafka_admin: AIOKafkaAdminClient
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    await kafka_admin.create_topics([NewTopic(f"{topic}.dlq", 1, 1)])
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        writer = DeadLetterWriter(producer, "test")
        for n in range(3):
            original = FakeRecord(topic, 0, n, b"k", f"record {n}".encode(), headers=(("traceparent", b"tp"),))
            await writer.send(original, "undecodable", "bad json")
        await producer.stop()
        group = f"redrive-{uuid.uuid4().hex[:6]}"
        assert await ops.dlq_redrive(kafka_bootstrap, topic, 100, group) == 0
        redriven = await read_all(kafka_bootstrap, topic, 3)
        assert sorted(v for _, v, _ in redriven) == [b"record 0", b"record 1", b"record 2"]
        for _, _, headers in redriven:
            assert headers == {"traceparent": b"tp", "x-redriven-from": b"dlq"}  # the original's, marked
        assert await ops.dlq_redrive(kafka_bootstrap, topic, 100, group) == 0  # committed: nothing again
        assert len(await read_all(kafka_bootstrap, topic, 3)) == 3
    finally:
        await kafka_admin.delete_topics([f"{topic}.dlq"])


@pytest.mark.pg
@pytest.mark.kafka
async def test_replay_publishes_a_streams_events_again_in_order(
    pg_database: str, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    pool = await migrated_pool(pg_database)
    try:
        store = EventStore(pool)
        ticket = uuid.uuid4()
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
        for _ in range(2):
            assert await ops.replay(pg_database, kafka_bootstrap, ticket_stream(ticket), {"ticket.events": topic}) == 0
        records = await read_published(kafka_bootstrap, topic, 6)
        assert [r.envelope.stream_version for r in records] == [1, 2, 3, 1, 2, 3]  # twice, each time in order
        assert {r.key for r in records} == {str(ticket).encode()}
        assert [r.envelope for r in records[:3]] == await store.read_stream(ticket_stream(ticket))
    finally:
        await pool.close()


def test_unknown_topic_and_bad_priority_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops.run(["dlq", "show", "no.such.topic"]) == 2
    assert "no.such.topic has no dead-letter topic" in capsys.readouterr().out
    assert ops.run(["priority", str(uuid.uuid4()), "asap"]) == 2
    assert "priority must be one of urgent, high, normal, low" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ops.run(["assign", "not-a-uuid", "ann"])


@pytest.mark.kafka
async def test_assign_command_goes_to_ticket_commands_keyed_by_ticket(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    monkeypatch.setattr(ops, "TICKET_COMMANDS", topic)
    ticket = uuid.uuid4()
    assert await ops.send_command(kafka_bootstrap, AssignTicket(ticket, "ann", "manual", "sre-bob"), "sre-bob") == 0
    [(key, value, _)] = await read_all(kafka_bootstrap, topic, 1)
    envelope = msgspec.json.decode(value, type=CommandEnvelope)
    assert key == str(ticket).encode() and envelope.actor == "sre-bob"
    assert envelope.command == AssignTicket(ticket, "ann", "manual", "sre-bob")


@pytest.mark.pg
async def test_agent_join_and_status_append_roster_events_in_order(pg_database: str) -> None:
    from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged

    pool = await migrated_pool(pg_database)
    try:
        join = AgentJoinedQueue("ann", "box-l1", ("installation",), ("ru", "en"), 3)
        assert await ops.agent_event(pg_database, join) == 0
        assert await ops.agent_event(pg_database, AgentStatusChanged("ann", "online")) == 0
        stream = await EventStore(pool).read_stream("agent-ann")
        assert [e.event for e in stream] == [join, AgentStatusChanged("ann", "online")]
    finally:
        await pool.close()


def test_agent_subcommands_build_the_agents_lifecycle_commands() -> None:
    from ticketflow.contracts import commands as c

    ticket = uuid.uuid4()
    t = str(ticket)
    expected = {
        ("start", t, "ann"): c.StartWork(ticket, "ann"),
        ("reply", t, "ann", "please restart"): c.ReplyAsAgent(ticket, "ann", "", "please restart"),
        ("wait", t, "logs please", "--actor", "ann"): c.WaitForCustomer(ticket, "logs please", "ann"),
        ("resolve", t, "fixed", "--actor", "ann"): c.ResolveTicket(ticket, "fixed", "ann"),
        ("close", t, "confirmed"): c.CloseTicket(ticket, "confirmed", "sre"),
        ("reopen", t, "not fixed", "--actor", "lead"): c.ReopenTicket(ticket, "not fixed", "lead"),
        ("undo-merge", t, "another requester", "--actor", "lead"): c.UndoMerge(ticket, "another requester", "lead"),
        ("link-known-problem", t, t[::-1].replace("-", "")[:32]): c.LinkKnownProblem(
            ticket, uuid.UUID(t[::-1].replace("-", "")[:32]), "sre"
        ),
    }
    for argv, command in expected.items():
        assert ops.agent_command(ops.parser().parse_args(list(argv))) == command
    with pytest.raises(SystemExit):
        ops.parser().parse_args(["reply", t, "ann"])  # no text
    with pytest.raises(SystemExit):
        ops.parser().parse_args(["link-known-problem", t, "not-a-ticket-id"])


@pytest.mark.kafka
async def test_reply_subcommand_sends_a_reply_on_ticket_commands_with_the_actor(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, kafka_topic_factory: KafkaTopicFactory
) -> None:
    from ticketflow.contracts.commands import ReplyAsAgent

    topic = await kafka_topic_factory(partitions=1)
    monkeypatch.setattr(ops, "TICKET_COMMANDS", topic)
    monkeypatch.setenv("TICKETFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    ticket = uuid.uuid4()
    argv = ["reply", str(ticket), "ann", "please restart the portal", "--actor", "ann"]
    assert await asyncio.to_thread(ops.run, argv) == 0  # ops.run owns its event loop
    [(key, value, _)] = await read_all(kafka_bootstrap, topic, 1)
    envelope = msgspec.json.decode(value, type=CommandEnvelope)
    assert key == str(ticket).encode() and envelope.actor == "ann"
    assert envelope.command == ReplyAsAgent(ticket, "ann", "", "please restart the portal")
