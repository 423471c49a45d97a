"""`ticketflow` against the real broker and PostgreSQL: dead letters listed, inspected and redriven, replays,
commands on ticket.commands, the roster, a ticket's timeline, tail, lag, desks; and bad input as one line
with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from support.eventstore import migrated_pool, some_events
from support.infra import KafkaTopicFactory
from support.records import FakeRecord

from ticketflow.cli.app import main
from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ids import sla_stream, ticket_stream
from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.deskconfig import PACKAGED_DESKS
from ticketflow.eventstore import EventStore
from ticketflow.messaging import topics
from ticketflow.messaging.dead_letters import DeadLetterWriter


async def cli(*argv: str) -> int:
    """The command as a person runs it (its own event loop, in a thread)."""
    return await asyncio.to_thread(main, list(argv))


def json_out(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


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


@pytest.fixture
async def dead_lettered(kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory) -> str:
    """A topic whose .dlq holds three dead letters (undecodable, rejected, undecodable)."""
    topic = await kafka_topic_factory(partitions=1)
    await kafka_topic_factory(name=f"{topic}.dlq")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    writer = DeadLetterWriter(producer, "test")
    for n, reason in enumerate(("undecodable", "rejected", "undecodable")):
        original = FakeRecord(topic, 0, n, b"k", f"record {n}".encode(), headers=(("traceparent", b"tp"),))
        await writer.send(original, reason, f"why {n}", command_id=f"c-{n}")
    await producer.stop()
    return topic


@pytest.mark.kafka
async def test_dead_letters_are_listed_newest_first_and_inspected_whole(
    kafka_bootstrap: str, dead_lettered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("--bootstrap", kafka_bootstrap, "--json", "dlq", "list", dead_lettered) == 0
    assert [d["value"] for d in json_out(capsys)] == ["record 2", "record 1", "record 0"]
    assert await cli("--bootstrap", kafka_bootstrap, "--json", "dlq", "inspect", dead_lettered, "0:1") == 0
    shown = json_out(capsys)
    assert (shown["reason"], shown["detail"], shown["context"], shown["headers"]) == (
        "rejected", "why 1", {"command-id": "c-1"}, {"traceparent": "tp"}
    )  # fmt: skip
    assert await cli("--bootstrap", kafka_bootstrap, "dlq", "inspect", dead_lettered, "0:9") == 1
    assert capsys.readouterr().err.startswith("ticketflow: error: no dead letter at 0:9 among the newest")


@pytest.mark.kafka
async def test_redrive_asks_first_then_republishes_once_without_their_dead_letter_headers(
    kafka_bootstrap: str, dead_lettered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    group = ("--group", f"redrive-{uuid.uuid4().hex[:6]}")
    assert await cli("--bootstrap", kafka_bootstrap, "dlq", "redrive", dead_lettered, *group) == 1  # no terminal
    assert "needs a confirmation" in capsys.readouterr().err
    base = ("--bootstrap", kafka_bootstrap, "--json", "dlq", "redrive", dead_lettered, "--yes", *group)
    assert await cli(*base, "--reason", "rejected") == 0
    assert json_out(capsys) == {"topic": dead_lettered, "read": 3, "redriven": 1, "left": 2}
    assert await cli(*base) == 0
    assert json_out(capsys)["redriven"] == 3  # the commit stopped at the first one left out
    redriven = await read_all(kafka_bootstrap, dead_lettered, 4)
    assert sorted(v for _, v, _ in redriven) == [b"record 0", b"record 1", b"record 1", b"record 2"]
    assert all(headers == {"traceparent": b"tp", "x-redriven-from": b"dlq"} for _, _, headers in redriven)
    assert await cli("--bootstrap", kafka_bootstrap, "dlq", "redrive", dead_lettered, "--yes", *group) == 0
    assert "has no dead letter to redrive" in capsys.readouterr().out


@pytest.mark.kafka
async def test_a_missing_dead_letter_topic_is_one_line_and_exit_1(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in (("list",), ("redrive", "--yes")):
        assert await cli("--bootstrap", kafka_bootstrap, "dlq", action[0], "no.such.topic", *action[1:]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no.such.topic has no dead-letter topic; topics with one: agent.events" in err


@pytest.mark.pg
@pytest.mark.kafka
async def test_replay_publishes_a_tickets_streams_again_in_order(
    pg_database: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ticketflow replay` publishes to the declared topic (ticket.events of the shared broker): the
    ticket's records are read from the ends the partitions had before, by its key."""
    pool = await migrated_pool(pg_database)
    # read_uncommitted: the replay is not transactional, and another relay's open transaction on the shared
    # topic would hold a read_committed reader back
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        store = EventStore(pool)
        ticket = uuid.uuid4()
        await store.append(ticket_stream(ticket), 0, some_events(ticket, 3))
        await store.append(sla_stream(ticket), 0, some_events(ticket, 2))
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            described = (await admin.describe_topics([TICKET_EVENTS]))[0]["partitions"]
        finally:
            await admin.close()
        partitions = [TopicPartition(TICKET_EVENTS, found["partition"]) for found in described]
        assert partitions, "ticket.events is not on the broker (make topics)"
        consumer.assign(partitions)
        for partition, end in (await consumer.end_offsets(partitions)).items():
            consumer.seek(partition, end)
        assert await cli("--pg-dsn", pg_database, "--bootstrap", kafka_bootstrap, "--json", "replay", "--ticket",
                         str(ticket)) == 0  # fmt: skip
        assert json_out(capsys)["published"] == 5
        mine: list[tuple[str, int]] = []
        async with asyncio.timeout(30):
            while len(mine) < 5:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == str(ticket).encode():
                            envelope = json.loads(record.value)
                            mine.append((envelope["stream_id"], envelope["stream_version"]))
        assert mine == [(ticket_stream(ticket), v) for v in (1, 2, 3)] + [(sla_stream(ticket), v) for v in (1, 2)]
    finally:
        await consumer.stop()
        await pool.close()


@pytest.mark.pg
async def test_a_tickets_stream_and_timeline_come_from_the_store(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = await migrated_pool(pg_database)
    try:
        ticket = uuid.uuid4()
        await EventStore(pool).append(ticket_stream(ticket), 0, some_events(ticket, 2, label="closed-"))
    finally:
        await pool.close()
    assert await cli("--pg-dsn", pg_database, "--json", "ticket", "timeline", str(ticket)) == 0
    timeline = json_out(capsys)
    assert [(t["type"], t["version"], t["event"]["reason"]) for t in timeline] == [
        ("TicketClosed", 1, "closed-0"), ("TicketClosed", 2, "closed-1")
    ]  # fmt: skip
    assert await cli("--pg-dsn", pg_database, "ticket", "stream", str(ticket)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["stream_version"] for line in lines] == [1, 2]
    assert await cli("--pg-dsn", pg_database, "ticket", "timeline", str(uuid.uuid4())) == 1
    assert "unknown ticket" in capsys.readouterr().err


def test_bad_input_is_one_line_and_a_non_zero_exit(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["priority", str(uuid.uuid4()), "asap"], 2, "priority must be one of urgent, high, normal, low"),
        (["assign", "not-a-uuid", "ann"], 2, "Invalid value for 'ticket_id'"),
        (["frobnicate"], 2, "No such command 'frobnicate'"),
        (["agent", "status", "ann", "sleeping"], 2, "status must be online, away or offline"),
        (["ops", "send", '{"version": 1, "command_id": "x", "actor": "a", "command": {"type": "Nope"}}'], 1,
         "not a valid ops command: unknown command type 'Nope'"),
        (["tail", "no.such.topic"], 1, "no.such.topic carries no known contract"),
        (["health", "--url", "billing=http://x"], 1, "--url takes service=url"),
    ]  # fmt: skip
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("ticketflow: error: ") and err.count("\n") == 1 and message in err, err


def test_a_bad_security_setting_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    assert main(["lag"]) == 2
    assert capsys.readouterr().err == "ticketflow: error: ticketflow: SASL_SSL needs a SASL user name and password\n"


def test_no_command_shows_the_help() -> None:
    assert main([]) == 0


@pytest.mark.kafka
async def test_ticket_commands_go_to_ticket_commands_keyed_by_ticket_with_the_actor(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    monkeypatch.setattr("ticketflow.cli.commands_tickets.TICKET_COMMANDS", topic)
    ticket = uuid.uuid4()
    t, problem = str(ticket), uuid.uuid4()
    expected = {
        ("assign", t, "ann", "--actor", "sre-bob"): c.AssignTicket(ticket, "ann", "manual", "sre-bob"),
        ("unassign", t, "away"): c.UnassignTicket(ticket, "away", "sre"),
        ("priority", t, "high"): c.ChangePriority(ticket, "high", "sre"),
        ("move", t, "box-l2", "--tier", "l2"): c.RouteTicket(
            ticket, "box-l2", "l2", "normal", "manual", "moved by sre", "sre"
        ),
        ("start", t, "ann"): c.StartWork(ticket, "ann"),
        ("reply", t, "ann", "please restart", "--actor", "ann"): c.ReplyAsAgent(ticket, "ann", "", "please restart"),
        ("wait", t, "logs please", "--actor", "ann"): c.WaitForCustomer(ticket, "logs please", "ann"),
        ("resolve", t, "fixed", "--actor", "ann"): c.ResolveTicket(ticket, "fixed", "ann"),
        ("close", t, "confirmed"): c.CloseTicket(ticket, "confirmed", "sre"),
        ("reopen", t, "not fixed", "--actor", "lead"): c.ReopenTicket(ticket, "not fixed", "lead"),
        ("undo-merge", t, "another requester", "--actor", "lead"): c.UndoMerge(ticket, "another requester", "lead"),
        ("link-known-problem", t, str(problem)): c.LinkKnownProblem(ticket, problem, "sre"),
    }  # fmt: skip
    for argv in expected:
        assert await cli("--bootstrap", kafka_bootstrap, *argv) == 0
    sent = await read_all(kafka_bootstrap, topic, len(expected))
    envelopes = [msgspec.json.decode(value, type=CommandEnvelope) for _, value, _ in sent]
    assert [e.command for e in envelopes] == list(expected.values())
    assert {key for key, _, _ in sent} == {t.encode()}
    assert envelopes[0].actor == "sre-bob" and envelopes[5].actor == "ann"


@pytest.mark.pg
async def test_agent_join_and_status_append_roster_events_in_order(pg_database: str) -> None:
    assert await cli("--pg-dsn", pg_database, "agent", "join", "ann", "box-l1", "--skills", "installation",
                     "--languages", "ru,en", "--capacity", "3") == 0  # fmt: skip
    assert await cli("--pg-dsn", pg_database, "agent", "status", "ann", "online") == 0
    pool = await migrated_pool(pg_database)
    try:
        stream = await EventStore(pool).read_stream("agent-ann")
    finally:
        await pool.close()
    join = AgentJoinedQueue("ann", "box-l1", ("installation",), ("ru", "en"), 3)
    assert [e.event for e in stream] == [join, AgentStatusChanged("ann", "online")]


@pytest.mark.kafka
async def test_tail_decodes_each_record_by_its_topics_contract(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, kafka_topic_factory: KafkaTopicFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    topic = await kafka_topic_factory(partitions=1)
    monkeypatch.setitem(topics.CONTRACTS, topic, CommandEnvelope)
    ticket = uuid.uuid4()
    good = CommandEnvelope(uuid.uuid4(), datetime(2026, 1, 5, 10, tzinfo=UTC), "ann", c.StartWork(ticket, "ann"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, msgspec.json.encode(good), key=b"k")
    await producer.send_and_wait(topic, b"{not json", key=b"k")
    await producer.stop()
    argv = ("--bootstrap", kafka_bootstrap, "--json", "tail", topic, "--from-beginning", "--limit", "2", "--idle", "20")
    assert await cli(*argv) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["value"]["command"] == {"type": "StartWork", "ticket_id": str(ticket), "agent_id": "ann"}
    assert second["undecodable"].startswith("JSON is malformed")


@pytest.mark.kafka
async def test_lag_per_group_and_partition(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await kafka_topic_factory(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for n in range(5):
        await producer.send_and_wait(topic, b"x", partition=n % 2)
    await producer.stop()
    group = f"lag-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        await consumer.commit({TopicPartition(topic, 0): 1, TopicPartition(topic, 1): 2})
    finally:
        await consumer.stop()
    assert await cli("--bootstrap", kafka_bootstrap, "--json", "lag", "--group", group) == 0
    rows = [(r["partition"], r["committed"], r["end"], r["lag"]) for r in json_out(capsys)]
    assert rows == [(0, 1, 3, 2), (1, 2, 2, 0)]


def test_desks_check_lists_problems_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["desks", "check", str(PACKAGED_DESKS)]) == 0
    assert "ok: bitrix24-box" in capsys.readouterr().out
    (tmp_path / "broken.toml").write_text("id = 'x'\n[[tracks]]\n", encoding="utf-8")
    assert main(["--json", "desks", "check", str(tmp_path)]) == 1
    report = json_out(capsys)
    assert report["ok"] is False and report["problems"] and all("broken.toml" in p for p in report["problems"])
