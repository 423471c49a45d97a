"""Pausing a desk's intake (the PauseIntake / ResumeIntake operator commands), on the real PostgreSQL: the
paused desk's messages are held, other desks' are recorded; the pause outlives a restart; resuming records
the held messages in the order they came, then takes new ones again."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from intake_app import make_intake
from support.records import FakeRecord

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.intake.adapters.desk_pauses import DeskPauses
from ticketflow.intake.tenants import GenericTenant, Tenants

pytestmark = pytest.mark.pg
TWO_DESKS = Tenants(generic={
    "acme": GenericTenant("acme", "ACME_KEY", desk="generic", track="default"),
    "globex": GenericTenant("globex", "GLOBEX_KEY", desk="express", track="client"),
})  # fmt: skip


def message(tenant: str, conversation: str, n: int, text: str) -> ChatMessage:
    return ChatMessage(platform="generic", tenant_id=tenant, conversation_id=conversation,
                       message_id=f"{conversation}-{n}", sender=ChatSender("u-1"), text=text,
                       received_at=datetime.now(UTC))  # fmt: skip


def inbound(*messages: ChatMessage) -> list[tuple[FakeRecord, ChatMessage]]:
    return [(FakeRecord("chat.inbound", 0, n, None, b"v"), m) for n, m in enumerate(messages)]


async def event_types(pool: asyncpg.Pool, tenant: str) -> list[str]:
    rows = await pool.fetch(
        """SELECT e.event_type FROM events e JOIN intake_messages m ON e.stream_id = 'ticket-' || m.ticket_id
           WHERE m.idempotency_key LIKE $1 GROUP BY e.position, e.event_type ORDER BY e.position""",
        f"generic:{tenant}:%",
    )
    return [r["event_type"] for r in rows]


async def test_a_paused_desk_is_held_and_recorded_in_order_when_it_resumes(pool: asyncpg.Pool) -> None:
    pauses = DeskPauses(pool)
    intake, _ = make_intake(pool=pool, tenants=TWO_DESKS, pauses=pauses, lanes=1)
    await intake.pause_desk("generic", "sre:anna", "pause-1")
    await intake.record_inbound(inbound(message("acme", "c-1", 1, "the portal is down"),
                                        message("globex", "g-1", 1, "the app crashes"),
                                        message("acme", "c-1", 2, "still down")))  # fmt: skip
    assert await event_types(pool, "acme") == []  # held, not recorded
    assert await event_types(pool, "globex") == ["TicketOpened"]  # another desk goes on
    assert await pool.fetchval("SELECT count(*) FROM intake_held_messages WHERE desk_id = 'generic'") == 2

    restarted = DeskPauses(pool)
    await restarted.load()
    assert restarted.paused == {"generic"}  # a restarted intake stays paused

    await intake.record_inbound(inbound(message("acme", "c-1", 1, "the portal is down")))  # redelivered
    assert await pool.fetchval("SELECT count(*) FROM intake_held_messages") == 2  # held once
    assert await intake.resume_desk("generic") == (2, 0)
    assert await event_types(pool, "acme") == ["TicketOpened", "CustomerMessageAdded"]  # in the order they came
    assert await pool.fetchval("SELECT count(*) FROM intake_held_messages") == 0
    assert pauses.paused == set() and await pool.fetchval("SELECT count(*) FROM intake_paused_desks") == 0
    await intake.record_inbound(inbound(message("acme", "c-2", 1, "new one")))
    recorded = "SELECT count(*) FROM intake_messages WHERE idempotency_key LIKE 'generic:acme:%'"
    assert await pool.fetchval(recorded) == 3


async def test_a_webhook_in_store_mode_is_held_too(pool: asyncpg.Pool) -> None:
    intake, _ = make_intake(pool=pool, tenants=TWO_DESKS, pauses=DeskPauses(pool))
    await intake.pause_desk("generic", "sre:anna", "pause-2")
    await intake.accept(message("acme", "w-1", 1, "from a webhook"))  # accepted (durable), held
    assert (
        await pool.fetchval("SELECT count(*) FROM intake_held_messages WHERE idempotency_key = 'generic:acme:w-1-1'")
        == 1
    )
    assert await intake.resume_desk("generic") == (1, 0)
    assert await pool.fetchval("SELECT count(*) FROM intake_messages WHERE idempotency_key = 'generic:acme:w-1-1'") == 1
