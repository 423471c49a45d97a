"""The engine's test bench: four local platform servers, the channels pointed at them, a ledger.

Used by test_delivery.py and test_delivery_properties.py through the `stack` fixture (conftest.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp
from fakes.webhook import FakeWebhookReceiver
from support.bitrix24 import installed_portal

from ticketflow.notifications.adapters.channels import (
    Bitrix24Channel,
    ChannelClient,
    EmailChannel,
    ExpressBot,
    ExpressChannel,
    SmtpRelay,
    WebhookChannel,
    WebhookEndpoint,
)
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.adapters.rendering import TemplateCatalog
from ticketflow.notifications.adapters.resilience import CircuitBreaker, RetryPolicy
from ticketflow.notifications.domain.model import Channel, Notification

BOT_ID = uuid.UUID("0b2b4a5e-52a4-4f0a-9f3c-7d1f1c0b9e11")
BOT_SECRET = "express-bot-secret-0123456789abcdef0123"
CHAT = "6f1d8a0e-3c55-4a7b-9b61-2f8f6f0d6a10"
HOOK_SECRET = "hook-secret"
VARIABLES = {"ticket_number": "B24-7", "agent_name": "Anna", "message": "Clear the cache, please."}
ADDRESSES = {
    Channel.EXPRESS: (str(BOT_ID), CHAT),
    Channel.BITRIX24: ("portal-1", "chat15"),
    Channel.EMAIL: ("main", "client@example.test"),
    Channel.WEBHOOK: ("crm", "ext-42"),
}


@dataclass
class Stack:
    botx: FakeBotX
    bitrix: FakeBitrix24
    smtp: FakeSmtp
    hooks: FakeWebhookReceiver
    pool: asyncpg.Pool
    channels: list[ChannelClient]
    catalog: TemplateCatalog = field(default_factory=TemplateCatalog.from_directory)
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)  # recorded, not waited: the tests stay fast
        await asyncio.sleep(0)

    def deliverer(self, *, lease: float = 60.0, max_attempts: int = 4, **kw: Any) -> Deliverer:
        kw.setdefault("breaker_factory", lambda: CircuitBreaker(failure_threshold=50, reset_timeout=60))
        kw.setdefault("attempt_deadline", min(20.0, lease / 2))  # shorter than the lease, as the engine demands
        return Deliverer(
            ledger=PgLedger(self.pool, lease_seconds=lease),
            catalog=self.catalog,
            channels=self.channels,
            retry=RetryPolicy(max_attempts=max_attempts, base_delay=0.01, max_delay=0.05, max_retry_after=5),
            sleep=self.sleep,
            **kw,
        )

    def total_received(self) -> int:
        return len(self.botx.received) + len(self.bitrix.received) + len(self.smtp.received) + len(self.hooks.received)


@asynccontextmanager
async def running_stack(ledger_pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    botx, bitrix = FakeBotX({BOT_ID: BOT_SECRET}), FakeBitrix24(member_id="portal-1")
    smtp, hooks = FakeSmtp(), FakeWebhookReceiver(secret=HOOK_SECRET)
    servers = [botx.running(), bitrix.running(), smtp.running(), hooks.running()]
    await asyncio.gather(*(server.__aenter__() for server in servers))  # in parallel: uvicorn
    channels: list[ChannelClient] = []  # needs ~0.2 s to stop, so stop them together too
    portals = None
    try:
        portals = await installed_portal(bitrix, ledger_pool)
        bitrix.requests = 0  # the install's calls (bot list, register) are not the tests' business
        channels = [
            ExpressChannel([ExpressBot(BOT_ID, botx.base_url, BOT_SECRET)], callback_timeout=5),
            Bitrix24Channel(portals, rate=50, burst=20),
            EmailChannel([SmtpRelay("main", "127.0.0.1", smtp.port, "support@ticketflow.test")]),
            WebhookChannel([WebhookEndpoint("crm", hooks.url, HOOK_SECRET)]),
        ]
        yield Stack(botx, bitrix, smtp, hooks, ledger_pool, channels)
    finally:
        await asyncio.gather(*(channel.aclose() for channel in channels))
        if portals is not None:
            await portals.http.aclose()
        await asyncio.gather(*(server.__aexit__(None, None, None) for server in servers))


def note(channel: Channel, *, template: str = "agent_reply", variables: dict[str, Any] | None = None,
         address: str | bool | None = True, event_id: str | None = None) -> Notification:  # fmt: skip
    destination, default_address = ADDRESSES[channel]
    return Notification.for_event(
        event_id=event_id or f"ev-{uuid.uuid4()}",
        channel=channel,
        recipient="client-1",
        destination=destination,
        address=default_address if address is True else address or None,
        template=template,
        locale="ru",
        variables=VARIABLES if variables is None else variables,
    )
