"""The chaos run's load: the outage tests' (tests/outage/outage_load.py: new BotX conversations posted to
intake's HTTP route with a valid JWT, a follow-up in every fourth, an agent's reply to every routed
ticket) plus conversations put on `chat.inbound` directly, as a platform adapter outside intake would.

What counts is what was ACCEPTED: a webhook answered 202, a `chat.inbound` record the broker acknowledged.
A webhook refused (intake restarting, or answering 503 while the broker is down) is sent again unchanged,
as a platform retrying would, for up to `RETRY_S` seconds; one never answered 202 is not accepted (and not
counted). A `chat.inbound` record is sent again, with the same message id, until the broker takes it.
Intake must store each message once however often it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from intake_payloads import botx_message
from outage_load import AGENT, Conversation, Load, Lookup, agent_reply, bug_report
from support.system import PUBLIC_BOT, PUBLIC_BOT_HOST

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.commands import CommandEnvelope, ReplyAsAgent

RETRY_S = 120.0


@dataclass
class ChaosLoad(Load):  # type: ignore[misc]  # mypy sees tests/outage/outage_load.py as `outage.outage_load`
    refused_chats: set[uuid.UUID] = field(default_factory=set)  # first message refused: not accepted
    inbound: list[Conversation] = field(default_factory=list)  # conversations put on chat.inbound
    retrying: list[asyncio.Task[None]] = field(default_factory=list)  # first posts under way

    @property
    def accepted(self) -> list[Conversation]:
        return [c for c in self.conversations if c.chat not in self.refused_chats] + self.inbound

    async def post_once(self, client: httpx.AsyncClient, conversation: Conversation, text: str) -> bool:
        """Post a message; a refused post is sent again unchanged (same sync_id, as a platform retrying a
        webhook would) every second for `RETRY_S`. True once intake answered 202."""
        command = botx_message(text, chat_id=conversation.chat, user_huid=conversation.user, bot_id=PUBLIC_BOT)
        command["from"]["host"] = PUBLIC_BOT_HOST
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                answer = await client.post(f"{self.intake_url}/command", json=command, headers=self.headers())
                if answer.status_code == 202:
                    return True
                self.refused.append(f"{answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as error:
                self.refused.append(repr(error))
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1)

    async def post(self, client: httpx.AsyncClient, conversation: Conversation, text: str) -> None:
        """Post in the background: a refused post retrying for up to `RETRY_S` must not hold up the next
        conversation (intake refusing everything would otherwise slow the load to one per `RETRY_S`)."""
        self.retrying.append(asyncio.create_task(self._first_post(client, conversation, text)))

    async def _first_post(self, client: httpx.AsyncClient, conversation: Conversation, text: str) -> None:
        if not await self.post_once(client, conversation, text):
            self.refused_chats.add(conversation.chat)

    async def conversations_at(self, rate: float, seconds: float) -> None:
        """`Load.conversations_at`, waiting for the first posts still retrying before its client closes."""
        followups: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(timeout=30) as client:
            start, n = time.monotonic(), len(self.conversations)
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                conversation = Conversation(uuid.uuid4(), uuid.uuid4(), bug_report(n + i))
                self.conversations.append(conversation)
                await self.post(client, conversation, conversation.text)
                if (n + i) % 4 == 0:
                    followups.append(asyncio.create_task(self.follow_up(client, conversation)))
            await asyncio.gather(*followups, *self.retrying)

    async def follow_up(self, client: httpx.AsyncClient, conversation: Conversation) -> None:
        await asyncio.sleep(1.5)
        if conversation.chat in self.refused_chats:
            return
        text = f"Дополнение к обращению: {conversation.text[-10:]}, скриншот позже"
        conversation.followed_up = await self.post_once(client, conversation, text)

    async def agents(self, stop: asyncio.Event, rate: float = 5.0) -> None:
        """The outage tests' agents (`Load.agents`), with a producer that survives a broker restart: after
        one, aiokafka's idempotent producer can stop for good (OutOfOrderSequenceNumber) and a send wait
        forever; each send here has a deadline, and a failed one is made again on a new producer (the
        command id keeps it from being applied twice)."""
        producer = await self.started_producer()
        store = Lookup(self.dsn)
        try:
            while not stop.is_set():
                due = [c for c in await self.find_tickets(store) if not c.commanded]
                if due:
                    conversation, ticket = due[0], due[0].ticket
                    assert ticket is not None
                    reply = ReplyAsAgent(ticket, AGENT, "", agent_reply(conversation))
                    envelope = msgspec.json.encode(CommandEnvelope(uuid.uuid4(), datetime.now(UTC), AGENT, reply))
                    while True:
                        try:
                            await asyncio.wait_for(producer.send_and_wait(
                                self.topics.ticket_commands, envelope, key=str(ticket).encode()), 15)  # fmt: skip
                            break
                        except (KafkaError, TimeoutError):
                            with contextlib.suppress(KafkaError, TimeoutError):
                                await asyncio.wait_for(producer.stop(), 10)
                            producer = await self.started_producer()
                    conversation.commanded = True
                    self.commands_sent += 1
                await asyncio.sleep(1 / rate)
        finally:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(producer.stop(), 10)
            store.close()

    async def started_producer(self) -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all")
            try:
                await producer.start()
                return producer
            except KafkaError:
                await producer.stop()
                await asyncio.sleep(1)

    async def inbound_at(self, rate: float, seconds: float) -> None:
        """New conversations on chat.inbound at `rate` per second; each record sent until acknowledged."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=5000)
        await producer.start()
        try:
            start, total = time.monotonic(), int(rate * seconds)
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                conversation = Conversation(uuid.uuid4(), uuid.uuid4(), bug_report(50_000 + len(self.inbound)))
                message = ChatMessage(
                    platform="express", tenant_id=str(PUBLIC_BOT), conversation_id=str(conversation.chat),
                    message_id=str(uuid.uuid4()), sender=ChatSender(str(conversation.user), "Load"),
                    text=conversation.text, received_at=datetime.now(UTC),
                )  # fmt: skip
                while True:
                    try:
                        await asyncio.wait_for(producer.send_and_wait(self.topics.chat_inbound,
                            msgspec.json.encode(message), key=str(conversation.chat).encode()), 15)  # fmt: skip
                        break
                    except (KafkaError, TimeoutError):
                        await asyncio.sleep(1)
                self.inbound.append(conversation)
        finally:
            await producer.stop()
