"""The safety net behind the NUL rule, on the real PostgreSQL: a message that reaches intake's store with a
value PostgreSQL refuses (here a NUL that skipped normalisation) fails neither its batch nor the
consumer. The batch is recorded one message at a time, that message is dead-lettered naming the cause,
and the others are stored."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import asyncpg
import pytest

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.eventstore import EventStore
from ticketflow.intake.adapters.metrics import Metrics
from ticketflow.intake.adapters.store import IntakeStore
from ticketflow.intake.domain import DeskRoute
from ticketflow.intake.handlers import InboundConsumer

pytestmark = pytest.mark.pg


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, str, str]] = []

    async def dead_letter(
        self, value: bytes | None, key: bytes | None, reason: str, detail: str, source: tuple[str, int, int]
    ) -> None:
        self.sent.append((value, reason, detail))


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
    store = IntakeStore(pool, EventStore(pool), lambda m: DeskRoute("generic", "default"))
    dead = DeadLetters()
    consumer = InboundConsumer(store, dead, SimpleNamespace(), Metrics(), lanes=1)  # type: ignore[arg-type]
    good = [
        (SimpleNamespace(topic="t", partition=0, offset=n, key=None, value=f"v{n}".encode()), m)
        for n, m in enumerate([message("c-1", "first"), message("c-2", "poison\x00here"), message("c-3", "third")])
    ]
    await consumer.record(good)  # must not raise: a raise would fail the batch and redeliver it forever
    [(value, reason, detail)] = dead.sent
    assert value == b"v1" and reason == "unstorable"
    assert "TicketOpened" in detail and "NUL" in detail
    rows = await pool.fetch("SELECT idempotency_key FROM intake_messages ORDER BY 1")
    assert [r["idempotency_key"] for r in rows] == ["generic:acme:c-1-1", "generic:acme:c-3-1"]
    texts = await pool.fetch("SELECT data->>'text' AS text FROM events WHERE event_type = 'TicketOpened' ORDER BY 1")
    assert [r["text"] for r in texts] == ["first", "third"]
    assert consumer.metrics.value("intake_dead_letters_total", reason="unstorable") == 1
    assert consumer.metrics.value("intake_processed_total", outcome="opened") == 2
