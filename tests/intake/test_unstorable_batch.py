"""The safety net behind the NUL rule, on the real PostgreSQL: a message that reaches intake's store with a
value PostgreSQL refuses (here a NUL that skipped normalisation) fails neither its batch nor the
consumer. The batch is recorded one message at a time, that message is dead-lettered naming the cause,
and the others are stored."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from intake_app import dead_letters_sent, make_intake
from support.records import FakeRecord

from ticketflow.contracts.chat import ChatMessage, ChatSender

pytestmark = pytest.mark.pg


def message(conversation: str, text: str) -> ChatMessage:
    return ChatMessage(
        platform="generic",
        tenant_id="acme",
        conversation_id=conversation,
        message_id=f"{conversation}-1",
        sender=ChatSender("u-1"),
        text=text,
        received_at=datetime.now(UTC),
    )


async def test_one_unstorable_message_is_dead_lettered_and_the_rest_of_the_batch_is_stored(
    pool: asyncpg.Pool,
) -> None:
    intake, producer = make_intake(pool=pool, lanes=1)
    good = [
        (FakeRecord("t", 0, n, None, f"v{n}".encode()), m)
        for n, m in enumerate([message("c-1", "first"), message("c-2", "poison\x00here"), message("c-3", "third")])
    ]
    await intake.record_inbound(good)  # must not raise: a raise would fail the batch and redeliver it forever
    [dead] = dead_letters_sent(producer)
    assert dead.value == b"v1" and dead.reason == "unstorable" and dead.consumer == "intake"
    assert "TicketOpened" in dead.detail and "NUL" in dead.detail
    rows = await pool.fetch("SELECT idempotency_key FROM intake_messages ORDER BY 1")
    assert [r["idempotency_key"] for r in rows] == ["generic:acme:c-1-1", "generic:acme:c-3-1"]
    texts = await pool.fetch("SELECT data->>'text' AS text FROM events WHERE event_type = 'TicketOpened' ORDER BY 1")
    assert [r["text"] for r in texts] == ["first", "third"]
    assert intake.metrics.value("ticketflow_intake_processed", outcome="opened") == 2
