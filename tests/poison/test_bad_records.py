"""Issue 21 item 3: bad records on every consumed topic, against the services as real processes.

The system (projector with the relay, intake, preflight, routing, sla, notifications; tests/support/system.py)
runs on this run's own topics of the shared broker and a fresh database. A conversation is opened and
routed first. Then every consumed topic (`chat.inbound`, `ticket.commands`, `ticket.events`,
`chat.replies`, `agent.events`, and this run's own `ops.commands`, which every service reads) gets the same
set of bad records (malformed JSON, a truncated record, a
record of another topic's contract, an unknown type, bytes that are not UTF-8, an empty value, a
tombstone, a 900 kB record), keyed so that they share a partition with the good records that follow them.

The promise: no consumer stopped (every service still ready, its process alive); every bad record in its
topic's `.dlq` once per consumer of that topic, with the reason and the decoder's detail; nothing else
dead-lettered (on `ops.commands`: once, by the first service to claim the rejection, and answered on
`ops.events`); every good record after them processed (an operator's command answered by every
service): a message on `chat.inbound` opens and routes its
ticket and its chat hears "registered", an agent's reply on `ticket.commands` is applied and delivered
(its `AgentReplied` on `ticket.events` comes after the bad records of that partition), a reply on
`chat.replies` reaches its chat, and every committing consumer group's offsets reach the end of its topics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import httpx
import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from intake_payloads import botx_message
from pybotx.auth import build_botx_jwt_v2
from support.demo import demo_secrets
from support.eventstore import migrated_pool
from support.ops import Answers
from support.ops import command as ops_command
from support.ops import send as send_ops
from support.system import EXPRESS_BOTS, PUBLIC_BOT, PUBLIC_BOT_HOST, ChatPlatforms, PrivateTopics, System

from ticketflow.contracts.chat import ChatMessage, ChatReply, ChatSender
from ticketflow.contracts.commands import CommandEnvelope, ReplyAsAgent
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ticket_events import TicketClosed
from ticketflow.contracts.topics import MAX_INPUT_RECORD_BYTES
from ticketflow.contracts.values import ChatRef
from ticketflow.messaging.dead_letters import DeadLetter, dead_letter_topic

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICES = ("projector", "intake", "preflight", "routing", "sla", "notifications")
ANY_SERVICE = "any service"  # who dead-letters a bad ops.commands record: one of SERVICES, whichever claims it
REGISTERED = "зарегистрировано под номером"  # notifications' "registered under TF-…" once preflight took it
OVERSIZED = 900_000  # under the broker's 1 MB record limit: the consumers, not the producer, must cope
# A well-formed message or command as big as the broker takes: stored, its event would not fit in a record
# and would hold up the relay (it did, before intake's MAX_INPUT_RECORD_BYTES). Refused by intake.
WELL_FORMED_TOO_BIG = 1_047_000
BIG_BUT_ALLOWED = MAX_INPUT_RECORD_BYTES - 4096  # within the limit: processed like any other
# Who consumes what (the name each consumer's dead letters carry).
CONSUMERS = {
    "chat_inbound": {"intake"},
    "ticket_commands": {"intake-commands", "routing"},
    "ticket_events": {"preflight", "routing", "sla", "notifications"},
    "chat_replies": {"notifications"},
    "agent_events": {"routing"},
    "big_command": {"intake-commands"},  # routing has nothing to do with an agent's reply: it takes it
    "ops_commands": {ANY_SERVICE},  # every service reads every record; the first to claim a bad one letters it
}
# intake names a record that is no chat message "invalid_record"; the per-key and ordered patterns "undecodable".
REASONS = {"intake": "invalid_record"} | dict.fromkeys(
    ("intake-commands", "preflight", "routing", "sla", "notifications"), "undecodable"
)
REASONS[ANY_SERVICE] = "undecodable"
LOG_LEVEL = {"type": "SetLogLevel", "level": "INFO", "logger": "ticketflow.poison"}  # changes nothing
_encode = msgspec.json.encode


@dataclass
class Running:
    dsn: str
    bootstrap: str
    topics: PrivateTopics
    platforms: ChatPlatforms
    system: System
    ops: OpsTopics


@dataclass(frozen=True)
class OpsTopics:
    """This run's operators' topics (the shared broker's ops.commands is the running system's)."""

    commands: str
    events: str

    @classmethod
    def named(cls, suffix: str) -> OpsTopics:
        return cls(f"ops.commands.{suffix}", f"ops.events.{suffix}")

    @property
    def all(self) -> list[str]:
        return [self.commands, dead_letter_topic(self.commands), self.events]

    async def create(self, bootstrap: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1) for name in self.all])
        finally:
            await admin.close()

    async def delete(self, bootstrap: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(self.all)
        finally:
            await admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(
    pg_database: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    logs = tmp_path_factory.mktemp("poison")
    pool = await migrated_pool(pg_database)
    await pool.close()
    topics = PrivateTopics.named("poison")
    ops = OpsTopics.named(topics.ticket_events.rsplit(".", 1)[-1])
    await topics.create(kafka_bootstrap)
    await ops.create(kafka_bootstrap)
    try:
        async with ChatPlatforms.running(logs) as platforms:
            overrides = {"notifications": {"AUTO_REDRIVE_SECONDS": "0"}}  # only the normal path delivers
            common = {"TICKETFLOW_OPS_COMMANDS_TOPIC": ops.commands, "TICKETFLOW_OPS_EVENTS_TOPIC": ops.events}
            system = System(pg_database, kafka_bootstrap, topics, platforms, logs, overrides, common)
            try:
                await system.start(*SERVICES)
                yield Running(pg_database, kafka_bootstrap, topics, platforms, system, ops)
            finally:
                system.stop()
                log.info("bad-records test logs: %s", logs)
    finally:
        await topics.delete(kafka_bootstrap)
        await ops.delete(kafka_bootstrap)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, wait_s: float = 120) -> T:
    deadline = time.monotonic() + wait_s
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {wait_s:.0f}s"
        await asyncio.sleep(0.5)


async def post_botx(system: System, chat: uuid.UUID, text: str) -> None:
    secret = demo_secrets()[EXPRESS_BOTS[PUBLIC_BOT]]
    token = build_botx_jwt_v2(bot_id=PUBLIC_BOT, bot_host=PUBLIC_BOT_HOST, secret_key=secret)
    command = botx_message(text, chat_id=chat, bot_id=PUBLIC_BOT)
    command["from"]["host"] = PUBLIC_BOT_HOST
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{system['intake'].url}/command", json=command,
                                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 202, answer.text


async def events_of(dsn: str, conversation: str) -> tuple[str | None, Counter[str]]:
    """The conversation's ticket stream and how many events of each type it holds."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT e.stream_id, e.event_type FROM events e WHERE e.stream_id IN (SELECT o.stream_id FROM events o"
            " WHERE o.event_type = 'TicketOpened' AND o.data->'chat'->>'conversation_id' = $1)",
            conversation,
        )
    finally:
        await conn.close()
    streams = {r["stream_id"] for r in rows}
    assert len(streams) <= 1, f"{conversation}: {len(streams)} tickets"
    return (next(iter(streams)) if streams else None), Counter(r["event_type"] for r in rows)


def bodies(platforms: ChatPlatforms, chat: uuid.UUID) -> list[str]:
    return [m.body for m in platforms.botx.received if m.chat_id == chat]


async def opened_and_routed(running: Running, chat: uuid.UUID) -> uuid.UUID:
    """The chat's ticket, once it is routed and the chat heard that it was registered."""
    stream, _ = await eventually(lambda: events_of(running.dsn, str(chat)), lambda s: s[1]["TicketRouted"] == 1,
                                 f"chat {chat} routed")  # fmt: skip
    await eventually(lambda: _as_future(bodies(running.platforms, chat)),
                     lambda b: any(REGISTERED in body for body in b), f"chat {chat} told 'registered'")  # fmt: skip
    assert stream is not None
    return uuid.UUID(stream.removeprefix("ticket-"))


async def _as_future(value: T) -> T:
    return value


def templates(ticket: uuid.UUID, chat: ChatRef) -> dict[str, bytes]:
    """A well-formed record of each topic's contract, from which the bad ones are made."""
    now = datetime.now(UTC)
    message = ChatMessage("express", str(PUBLIC_BOT), str(uuid.uuid4()), str(uuid.uuid4()), ChatSender("u-1"), "x", now)
    event = EventEnvelope(uuid.uuid4(), f"ticket-{uuid.uuid4()}", 1, now, 1, TicketClosed(uuid.uuid4(), "x", "x"))
    command = CommandEnvelope(uuid.uuid4(), now, "x", ReplyAsAgent(ticket, "x", "", "x"))
    reply = ChatReply(f"poison-{uuid.uuid4()}", chat, "x", "x", "x", now)
    return {
        "chat_inbound": _encode(message),
        "ticket_events": _encode(event),
        "agent_events": _encode(event),
        "ticket_commands": _encode(command),
        "chat_replies": _encode(reply),
        "ops_commands": ops_command(f"poison-{uuid.uuid4()}", LOG_LEVEL),
    }


def _with(template: bytes, **changes: Any) -> bytes:
    return json.dumps({**json.loads(template), **changes}).encode()


def _unknown_type(template: bytes) -> bytes:
    document = json.loads(template)
    for holder in ("event", "command"):
        if holder in document:
            document[holder]["type"] = "NoSuchThing"
            return json.dumps(document).encode()
    return _with(template, schema="chat.message/v9" if "sender" in document else "chat.reply/v9")


def wrong_types(template: bytes) -> dict[str, bytes]:
    """The template with one field at a time (the record's own, and its event's or command's) holding a
    value of the wrong type: a list of numbers for text, a string for lists, numbers and identifiers."""
    document, variants = json.loads(template), {}
    for holder in (None, "event", "command"):
        fields = document if holder is None else document.get(holder)
        if not isinstance(fields, dict):
            continue
        for name, value in fields.items():
            if name == "type":
                continue  # the tag: "unknown type"
            wrong: Any = "not a list" if isinstance(value, list) else [1, 2]
            changed = json.loads(template)
            (changed if holder is None else changed[holder])[name] = wrong
            variants[f"wrong type in {holder + '.' if holder else ''}{name}"] = json.dumps(changed).encode()
    return variants


def bad_records(kind: str, all_templates: dict[str, bytes]) -> dict[str, bytes | None]:
    template = all_templates[kind]
    other = all_templates["ticket_commands" if kind == "chat_inbound" else "chat_inbound"]
    return {
        "malformed JSON": b"{not json",
        "truncated": template[: len(template) // 2],
        "another topic's contract": other,
        "unknown type": _unknown_type(template),
        **wrong_types(template),
        "not UTF-8": b"\xff\xfe" + template,
        "empty": b"",
        "tombstone": None,
        "oversized": _with(template, padding="x" * OVERSIZED),
    }


def big_message(chat: uuid.UUID, size: int) -> bytes:
    """A well-formed chat message of about `size` bytes."""
    return _encode(ChatMessage("express", str(PUBLIC_BOT), str(chat), str(uuid.uuid4()), ChatSender(str(uuid.uuid4())),
                               "лог: " + "x" * size, datetime.now(UTC)))  # fmt: skip


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int
    label: str


async def send(producer: AIOKafkaProducer, topic: str, value: bytes | None, key: bytes, label: str) -> Sent:
    metadata = await producer.send_and_wait(topic, value, key=key)
    return Sent(topic, metadata.partition, metadata.offset, label)


async def dead_letters(running: Running) -> list[DeadLetter]:
    topics = [*running.topics.dead_letter_topics, dead_letter_topic(running.ops.commands)]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=running.bootstrap,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        found: list[DeadLetter] = []
        while batch := await consumer.getmany(timeout_ms=2000):
            found += [DeadLetter.of(r) for records in batch.values() for r in records]
        return found
    finally:
        await consumer.stop()


async def lag(running: Running) -> dict[str, int]:
    """Per committing consumer group, how many records of its topics it has not committed."""
    t, base = running.topics, running.topics.ticket_events
    groups = {
        f"intake-{base}": [t.chat_inbound],
        f"intake-{base}-commands": [t.ticket_commands],
        f"preflight-{base}": [t.ticket_events],
        f"routing-{base}": [t.ticket_events, t.agent_events, t.ticket_commands],
        f"notifications-{base}": [t.ticket_events],
        f"notifications-{base}-replies": [t.chat_replies],
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=running.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=running.bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")  # fmt: skip
    await admin.start()
    await consumer.start()
    try:
        behind: dict[str, int] = {}
        for group, topics in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            partitions = [TopicPartition(topic, p) for topic in topics for p in range(4)]
            ends = await consumer.end_offsets(partitions)
            behind[group] = 0
            for tp, end in ends.items():
                start = committed[tp].offset if tp in committed else 0
                if start < end:
                    behind[group] += await _records_between(consumer, tp, start, end)
        return behind
    finally:
        await consumer.stop()
        await admin.close()


async def _records_between(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> int:
    """Records a group has still to consume in [start, end). The relay publishes in Kafka transactions,
    whose commit markers take offsets of their own: a group that committed its last record's offset + 1
    (routing's ordered pipeline) stays before the final marker, with no record left to read."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    batch = await consumer.getmany(tp, timeout_ms=2000)
    return sum(1 for record in batch.get(tp, []) if record.offset < end)


async def every_service_reads_ops_commands(running: Running, answers: Answers, wait_s: float = 120) -> None:
    """Each service's ops reader starts at the topic's end: probes (a log level, changing nothing) until
    every service answered one, so what is written from now on is read by all."""
    deadline = time.monotonic() + wait_s
    for n in range(10_000):
        await send_ops(running.bootstrap, running.ops.commands, ops_command(f"probe-{n}", LOG_LEVEL))
        probed = {a.service for a in answers.seen if a.command_id.startswith("probe-")}
        if probed >= set(SERVICES):
            return
        assert time.monotonic() < deadline, f"ops readers not positioned: only {probed} answered"
        await answers.quiet(2.0)
    raise AssertionError("unreachable")


@pytest.mark.timeout(900)
async def test_bad_records_on_every_topic_are_dead_lettered_with_their_reason_and_the_good_ones_around_them_processed(
    running: Running,
) -> None:
    system, platforms, t = running.system, running.platforms, running.topics
    first_chat = uuid.uuid4()
    await post_botx(system, first_chat, "После обновления до 3.12 на Android не приходят push-уведомления")
    ticket = await opened_and_routed(running, first_chat)
    chat_ref = ChatRef("express", str(PUBLIC_BOT), str(first_chat))
    ticket_key = str(ticket).encode()
    inbound_chat = uuid.uuid4()
    good_message = ChatMessage("express", str(PUBLIC_BOT), str(inbound_chat), str(uuid.uuid4()),
                               ChatSender(str(uuid.uuid4()), "Пётр"), "На Windows падает при запуске, код 00042",
                               datetime.now(UTC))  # fmt: skip
    inbound_key = f"express:{PUBLIC_BOT}:{inbound_chat}".encode()
    big_chat, too_big_chat = uuid.uuid4(), uuid.uuid4()
    topic_and_key = {
        "chat_inbound": (t.chat_inbound, inbound_key),
        "ticket_commands": (t.ticket_commands, ticket_key),
        "ticket_events": (t.ticket_events, ticket_key),
        "chat_replies": (t.chat_replies, ticket_key),
        "agent_events": (t.agent_events, b"agent-anna"),
        "ops_commands": (running.ops.commands, b"sre"),
    }
    made = templates(ticket, chat_ref)
    reply_text = f"Ответ вне обращения {uuid.uuid4().hex[:8]}"
    agent_text = f"Проверьте, пожалуйста, версию сборки {uuid.uuid4().hex[:8]}"
    answers = Answers(running.bootstrap, running.ops.events)
    await answers.__aenter__()
    await every_service_reads_ops_commands(running, answers)
    producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap, max_request_size=2 * OVERSIZED,
                                enable_idempotence=True, acks="all")  # fmt: skip
    await producer.start()
    try:
        bad: list[tuple[str, Sent]] = []
        for kind, (topic, key) in topic_and_key.items():
            for label, value in bad_records(kind, made).items():
                bad.append((kind, await send(producer, topic, value, key, label)))
        # The good records, each after the bad ones of its partition.
        await producer.send_and_wait(t.chat_inbound, _encode(good_message), key=inbound_key)
        too_big = big_message(too_big_chat, WELL_FORMED_TOO_BIG)
        bad.append(("chat_inbound", await send(producer, t.chat_inbound, too_big, inbound_key, "well-formed, too big")))
        big_command = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), "agent-anna",
                                      ReplyAsAgent(ticket, "agent-anna", "", "x" * WELL_FORMED_TOO_BIG))  # fmt: skip
        bad.append(("big_command", await send(producer, t.ticket_commands, _encode(big_command), ticket_key,
                                              "well-formed, too big")))  # fmt: skip
        await producer.send_and_wait(t.chat_inbound, big_message(big_chat, BIG_BUT_ALLOWED), key=inbound_key)
        command = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), "agent-anna",
                                  ReplyAsAgent(ticket, "agent-anna", "", agent_text))  # fmt: skip
        await producer.send_and_wait(t.ticket_commands, _encode(command), key=ticket_key)
        reply = ChatReply(f"poison-{uuid.uuid4()}", chat_ref, "poison_check", reply_text, "poison", datetime.now(UTC))
        await producer.send_and_wait(t.chat_replies, _encode(reply), key=ticket_key)
        await producer.send_and_wait(running.ops.commands, ops_command("poison-after", LOG_LEVEL), key=b"sre")
    finally:
        await producer.stop()
    last_chat = uuid.uuid4()
    await post_botx(system, last_chat, "Не открывается чат в веб-версии после входа, код 00043")

    # Every good record processed.
    await opened_and_routed(running, inbound_chat)
    await opened_and_routed(running, last_chat)
    await opened_and_routed(running, big_chat)
    await eventually(lambda: events_of(running.dsn, str(first_chat)), lambda s: s[1]["AgentReplied"] == 1,
                     "the agent's reply applied")  # fmt: skip
    await eventually(lambda: _as_future(bodies(platforms, first_chat)),
                     lambda b: any(agent_text in x for x in b) and any(reply_text in x for x in b),
                     "the agent's reply and the chat reply delivered")  # fmt: skip
    await eventually(lambda: lag(running), lambda behind: not any(behind.values()), "consumer groups caught up")
    try:  # the operator's command after the bad ones: answered by every service
        done = await answers.until(lambda seen: {a.service for a in seen if a.command_id == "poison-after"}
                                   >= set(SERVICES), "poison-after by every service", 120)  # fmt: skip
    finally:
        await answers.__aexit__()
    assert all(a.status == "done" for a in done if a.command_id == "poison-after")
    rejected = [a for a in done if a.status == "rejected"]

    # Every bad record dead-lettered once by each of its consumers, with its reason; nothing else.
    expected = Counter((s.topic, s.partition, s.offset, consumer) for kind, s in bad for consumer in CONSUMERS[kind])
    labels = {(s.topic, s.partition, s.offset): f"{kind}: {s.label}" for kind, s in bad}

    def seen(letters: list[DeadLetter]) -> Counter[tuple[str, int, int, str]]:
        return Counter((d.original_topic, d.original_partition or 0, d.original_offset or 0, consumer_of(d))
                       for d in letters)  # fmt: skip

    def consumer_of(letter: DeadLetter) -> str:
        if letter.original_topic == running.ops.commands:
            assert letter.consumer in SERVICES, letter.consumer
            return ANY_SERVICE
        return letter.consumer

    letters = await eventually(lambda: dead_letters(running), lambda found: seen(found) >= expected,
                               "every bad record dead-lettered by each consumer", wait_s=60)  # fmt: skip
    assert seen(letters) == expected, {labels.get(k[:3], k): n for k, n in (seen(letters) - expected).items()}
    for letter in letters:
        where = labels[(letter.original_topic, letter.original_partition or 0, letter.original_offset or 0)]
        expected_reason = REASONS[consumer_of(letter)]
        assert letter.reason == expected_reason, (where, letter.consumer, letter.reason, letter.detail[:300])
        assert letter.detail, (where, letter.consumer)

    bad_ops = [s for kind, s in bad if kind == "ops_commands"]
    assert len(rejected) == len(bad_ops), [(a.command_id, a.reason[:80]) for a in rejected]  # each answered once
    refused_big = [d for d in letters if labels[(d.original_topic, d.original_partition or 0, d.original_offset or 0)]
               .endswith("well-formed, too big")]  # fmt: skip
    assert len(refused_big) == 2 and all("exceeds" in d.detail for d in refused_big), [d.detail for d in refused_big]
    assert (await events_of(running.dsn, str(too_big_chat)))[0] is None, "a refused message opened a ticket"
    assert (await events_of(running.dsn, str(first_chat)))[1]["AgentReplied"] == 1, "the refused reply applied"

    # No consumer stopped.
    for name, (status, body) in (await system.readiness()).items():
        assert status == 200, (name, body)
        process = system[name].process
        assert process is not None and process.poll() is None, name
    for chat in (first_chat, inbound_chat, last_chat):
        assert len(bodies(platforms, chat)) == len(set(bodies(platforms, chat))), f"{chat}: a message twice"
