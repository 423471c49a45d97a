"""The load of the outage tests, and the census that counts what became of it.

`Load` plays the eXpress public bot's users and the agents: new conversations posted to intake as BotX
sends them (each a new user and chat, a bug report worded its own way), a second message in every
fourth conversation, and an agent's reply (`ReplyAsAgent`, which intake applies; only its command id
keeps it from being applied twice) for every ticket routing has routed, on this run's `ticket.commands`.
Webhooks and commands keep coming while the database is away: intake takes webhooks onto Kafka without
it, and the commands queue on Kafka.

`census` reads what the system made of it, from the store, the ledger, the dead-letter topics and what
the fake BotX received, and counts per conversation: what is missing (lost), what is there more than
once (duplicate effects), what was dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from intake_payloads import botx_message
from pybotx.auth import build_botx_jwt_v2
from support.demo import demo_secrets
from support.system import EXPRESS_BOTS, PUBLIC_BOT, PUBLIC_BOT_HOST, ChatPlatforms, PrivateTopics

from ticketflow.contracts.commands import CommandEnvelope, ReplyAsAgent
from ticketflow.contracts.ids import ticket_number
from ticketflow.messaging.dead_letters import DeadLetter

HINT = "Пока мы регистрируем обращение"  # intake's self-help hints (chat.replies), the first answer
REGISTERED = "зарегистрировано под номером"  # "registered under TF-…" once preflight took the ticket
AGENT = "agent-anna"
PROBLEMS = ("не приходят push-уведомления", "не открывается чат", "падает при запуске", "не грузятся вложения",
            "пропадают сообщения", "не работает звонок", "зависает лента", "не обновляется список чатов")  # fmt: skip
PLATFORMS_ = ("Android", "iOS", "Windows", "macOS", "Linux", "веб-версии")


def agent_reply(conversation: Conversation) -> str:
    return f"Проверьте, пожалуйста, версию сборки ({str(conversation.chat)[:8]})"


def bug_report(n: int) -> str:
    """A clear bug report, worded its own way (preflight's duplicate check sees distinct texts)."""
    platform, problem = PLATFORMS_[n % len(PLATFORMS_)], PROBLEMS[n % len(PROBLEMS)]
    return f"После обновления до 3.{n % 40}.{n} на {platform} {problem}, код {n:05d}"


@dataclass
class Conversation:
    chat: uuid.UUID
    user: uuid.UUID
    text: str
    followed_up: bool = False
    ticket: uuid.UUID | None = None
    commanded: bool = False


@dataclass
class Load:
    intake_url: str
    topics: PrivateTopics
    bootstrap: str
    dsn: str
    conversations: list[Conversation] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # webhooks intake did not take (should stay empty)
    commands_sent: int = 0
    sent_during_outage: Counter[str] = field(default_factory=Counter)
    outage: bool = False
    began_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def headers(self) -> dict[str, str]:
        secret = demo_secrets()[EXPRESS_BOTS[PUBLIC_BOT]]
        token = build_botx_jwt_v2(bot_id=PUBLIC_BOT, bot_host=PUBLIC_BOT_HOST, secret_key=secret)
        return {"Authorization": f"Bearer {token}"}

    async def post(self, client: httpx.AsyncClient, conversation: Conversation, text: str) -> None:
        command = botx_message(text, chat_id=conversation.chat, user_huid=conversation.user, bot_id=PUBLIC_BOT)
        command["from"]["host"] = PUBLIC_BOT_HOST
        try:
            answer = await client.post(f"{self.intake_url}/command", json=command, headers=self.headers())
            if answer.status_code != 202:
                self.refused.append(f"{answer.status_code} {answer.text[:200]}")
        except httpx.HTTPError as error:
            self.refused.append(repr(error))
        if self.outage:
            self.sent_during_outage["webhooks"] += 1

    async def conversations_at(self, rate: float, seconds: float) -> None:
        """New conversations at `rate` per second for `seconds`; every fourth gets a second message."""
        followups: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(timeout=30) as client:
            start, n = time.monotonic(), len(self.conversations)
            total = int(rate * seconds)
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                conversation = Conversation(uuid.uuid4(), uuid.uuid4(), bug_report(n + i))
                self.conversations.append(conversation)
                await self.post(client, conversation, conversation.text)
                if (n + i) % 4 == 0:
                    followups.append(asyncio.create_task(self.follow_up(client, conversation)))
            await asyncio.gather(*followups)

    async def follow_up(self, client: httpx.AsyncClient, conversation: Conversation) -> None:
        await asyncio.sleep(1.5)
        conversation.followed_up = True
        await self.post(client, conversation, f"Дополнение к обращению: {conversation.text[-10:]}, скриншот позже")

    async def agents(self, stop: asyncio.Event, rate: float = 5.0) -> None:
        """An agent replies in every ticket routing has routed, at `rate` per second; the tickets are
        found in the store while it answers (and those found before an outage are replied to during it)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        store = Lookup(self.dsn)
        try:
            while not stop.is_set():
                due = [c for c in await self.find_tickets(store) if not c.commanded]
                if due:
                    conversation, ticket = due[0], due[0].ticket
                    assert ticket is not None
                    reply = ReplyAsAgent(ticket, AGENT, "", agent_reply(conversation))
                    envelope = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), AGENT, reply)
                    await producer.send_and_wait(self.topics.ticket_commands, msgspec.json.encode(envelope),
                                                 key=str(ticket).encode())  # fmt: skip
                    conversation.commanded = True
                    self.commands_sent += 1
                    if self.outage:
                        self.sent_during_outage["commands"] += 1
                await asyncio.sleep(1 / rate)
        finally:
            await producer.stop()
            store.close()

    async def find_tickets(self, store: Lookup) -> list[Conversation]:
        """Conversations whose ticket routing has routed (looked up in the store while it answers)."""
        unknown = {str(c.chat): c for c in self.conversations if c.ticket is None}
        if unknown:
            rows = await store.fetch(
                "SELECT o.stream_id, o.data->'chat'->>'conversation_id' AS chat FROM events o"
                " WHERE o.event_type = 'TicketOpened' AND o.data->'chat'->>'conversation_id' = ANY($1::text[])"
                " AND EXISTS (SELECT FROM events r WHERE r.stream_id = o.stream_id"
                "             AND r.event_type = 'TicketRouted')",
                list(unknown),
            )
            for row in rows:
                unknown[row["chat"]].ticket = uuid.UUID(row["stream_id"].removeprefix("ticket-"))
        return [c for c in self.conversations if c.ticket is not None]


class Lookup:
    """One connection for the load's look-ups, made again after the database went away; while it is away,
    a look-up finds nothing (the tickets known so far are what the agents have)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: asyncpg.Connection | None = None

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        try:
            if self.connection is None:
                self.connection = await asyncpg.connect(self.dsn, timeout=3)
            return list(await self.connection.fetch(query, *args, timeout=3))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError):
            self.close()
            return []

    def close(self) -> None:
        if self.connection is not None:
            self.connection.terminate()
            self.connection = None


@dataclass
class Census:
    conversations: int
    lost: list[str]
    duplicates: list[str]
    dead_letters: list[DeadLetter]
    ledger: dict[str, int]
    unknown_arrived: int = 0  # unknown outcomes whose message the chat did receive
    unknown_missing: list[str] = field(default_factory=list)  # ...and those it did not

    @property
    def counts(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "lost": len(self.lost), "duplicates": len(self.duplicates),
                "dead letters": len(self.dead_letters), "ledger": self.ledger,
                "unknown outcomes that arrived": self.unknown_arrived,
                "unknown outcomes that did not arrive": len(self.unknown_missing)}  # fmt: skip

    def explain(self) -> str:
        letters = [(d.original_topic, d.consumer, d.reason, d.detail[:200]) for d in self.dead_letters[:5]]
        return json.dumps({**self.counts, "lost (first 10)": self.lost[:10], "duplicates (first 10)":
                           self.duplicates[:10], "dead letters (first 5)": letters},
                          ensure_ascii=False, indent=1, default=str)  # fmt: skip


async def census(load: Load, platforms: ChatPlatforms) -> Census:
    """What became of the load's conversations (dead letters: those written since the load began)."""
    conn = await asyncpg.connect(load.dsn)
    try:
        return await _census(load, platforms, load.conversations, conn)
    finally:
        await conn.close()


async def _census(load: Load, platforms: ChatPlatforms, chosen: list[Conversation], conn: Any) -> Census:
    chats = [str(c.chat) for c in chosen]
    opened = await conn.fetch(
        "SELECT stream_id, data->'chat'->>'conversation_id' AS chat FROM events WHERE event_type = 'TicketOpened'"
        " AND data->'chat'->>'conversation_id' = ANY($1::text[])",
        chats,
    )
    ticket_of: dict[str, list[str]] = {}
    for row in opened:
        ticket_of.setdefault(row["chat"], []).append(row["stream_id"])
    streams = [s for found in ticket_of.values() for s in found]
    events = await conn.fetch(
        "SELECT stream_id, event_type, count(*) AS n FROM events WHERE stream_id = ANY($1::text[])"
        " GROUP BY stream_id, event_type",
        streams,
    )
    per_ticket: dict[str, Counter[str]] = {}
    for row in events:
        per_ticket.setdefault(row["stream_id"], Counter())[row["event_type"]] = row["n"]
    unknown_keys = {r["idempotency_key"]: r for r in await conn.fetch(
        "SELECT idempotency_key, address, template FROM notification_deliveries WHERE status = 'unknown'")}  # fmt: skip
    ledger = {r["status"]: r["n"] for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM notification_deliveries WHERE address = ANY($1::text[]) GROUP BY 1",
        chats)}  # fmt: skip
    unknown_templates: dict[str, set[str]] = {}
    for row in unknown_keys.values():
        unknown_templates.setdefault(row["address"], set()).add(row["template"])

    received: dict[str, list[str]] = {}
    for message in platforms.botx.received:
        received.setdefault(str(message.chat_id), []).append(message.body)
    lost: list[str] = []
    duplicates: list[str] = []
    unknown_missing: list[str] = []
    unknown_arrived = 0
    for c in chosen:
        chat, found = str(c.chat), ticket_of.get(str(c.chat), [])
        if len(found) != 1:
            (lost if not found else duplicates).append(f"{chat}: {len(found)} tickets opened")
            continue
        counts = per_ticket.get(found[0], Counter())
        expected = {"TicketOpened": 1, "PreflightPassed": 1, "TicketRouted": 1,
                    "CustomerMessageAdded": int(c.followed_up), "AgentReplied": int(c.commanded)}  # fmt: skip
        for event_type, want in expected.items():
            if counts[event_type] < want:
                lost.append(f"{chat}: {event_type} {counts[event_type]} of {want}")
            elif counts[event_type] > want:
                duplicates.append(f"{chat}: {event_type} {counts[event_type]} times")
        bodies = received.get(chat, [])
        if len(bodies) != len(set(bodies)):
            duplicates.append(f"{chat}: a message arrived twice: {Counter(bodies).most_common(1)}")
        number = ticket_number(uuid.UUID(found[0].removeprefix("ticket-")))
        wanted = {"chat_reply": HINT, "ticket_opened": f"{REGISTERED} {number}"}
        if c.commanded:
            wanted["agent_reply"] = agent_reply(c)
        for template, marker in wanted.items():
            arrived = sum(marker in body for body in bodies)
            if template in unknown_templates.get(chat, set()):  # a person checks these: count what happened
                if arrived:
                    unknown_arrived += 1
                else:
                    unknown_missing.append(f"{chat}: {template}")
            elif arrived == 0:
                lost.append(f"{chat}: no {template} message")
            elif arrived > 1:
                duplicates.append(f"{chat}: {template} {arrived} times")
        if len(bodies) > len(wanted):
            duplicates.append(f"{chat}: {len(bodies)} messages, {len(wanted)} expected")
    letters = [d for d in await read_dead_letters(load) if d.at_ms is None or d.at_ms >= load.began_ms]
    return Census(len(chosen), lost, duplicates, letters, ledger, unknown_arrived, unknown_missing)


async def read_dead_letters(load: Load) -> list[DeadLetter]:
    """Everything on this run's dead-letter topics."""
    consumer = AIOKafkaConsumer(*load.topics.dead_letter_topics, bootstrap_servers=load.bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        found: list[DeadLetter] = []
        while batch := await consumer.getmany(timeout_ms=2000):
            found += [DeadLetter.of(r) for records in batch.values() for r in records]
        return found
    finally:
        await consumer.stop()
