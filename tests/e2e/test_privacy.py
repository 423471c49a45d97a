"""Issue 14, on the running system (conftest.py): two customers of the public eXpress client-support bot
write look-alike tickets. B gets a ticket of its own and reads nothing of A's; the agent sees the
suggestion; A's own repeat is still merged and A is told so; an agent undoes that merge and the ticket
goes on as any other (registered, routed)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from support.demo import demo_secrets, load_demo

from ticketflow.cli.context import Context
from ticketflow.cli.tickets import send_command
from ticketflow.contracts.commands import UndoMerge
from ticketflow.contracts.ids import ticket_number
from ticketflow.messaging.security import PLAINTEXT

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
A_TEXT = "Ошибка входа с телефона: Иван Петров, +7 916 555-12-34, пароль не принимается"
B_TEXT = "ошибка вход телефон"
# What B must never read: every word of A's text that B did not write itself.
A_ONLY = ("Иван", "Петров", "916", "555-12-34", "пароль", "принимается", "входа", "телефона")
REGISTERED = ("зарегистрировано под номером", "registered")


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, seconds: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await probe()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"waited {seconds:.0f} s for {what}")
        await asyncio.sleep(0.5)


async def test_a_customer_is_never_shown_a_strangers_ticket(
    system: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_demo()
    for name, value in demo_secrets().items():  # the test signs BotX requests with the bot's secret
        monkeypatch.setenv(name, os.environ.get(name, value))
    pool = await asyncpg.create_pool(system, min_size=1, max_size=2)
    assert pool is not None
    customer_a, customer_b = uuid.uuid4(), uuid.uuid4()
    chat_a, chat_b = uuid.uuid4(), uuid.uuid4()

    async def post(text: str, chat: uuid.UUID, user: uuid.UUID) -> None:
        command, headers = demo.express_command(text, chat, user_huid=user)
        answer = await client.post(f"{demo.INTAKE}/command", json=command, headers=headers)
        assert answer.status_code == 202, answer.text

    async def ticket_in(chat: uuid.UUID, after: frozenset[uuid.UUID] = frozenset()) -> uuid.UUID | None:
        rows = await pool.fetch(
            "SELECT substr(stream_id, 8)::uuid AS t FROM events WHERE event_type = 'TicketOpened'"
            " AND data->'chat'->>'conversation_id' = $1 ORDER BY position",
            str(chat),
        )
        return next((r["t"] for r in rows if r["t"] not in after), None)

    async def summary(ticket: uuid.UUID) -> dict[str, Any]:
        answer = await client.get(f"{demo.DASHBOARD}/v1/tickets/{ticket}", headers=demo.DASHBOARD_AUTH)
        return dict(answer.json()["ticket"]) if answer.status_code == 200 else {}

    async def past_preflight(ticket: uuid.UUID) -> dict[str, Any] | None:
        row = await summary(ticket)
        return row if row.get("status") not in (None, "opened") else None

    async def chat_messages(chat: uuid.UUID) -> list[str]:
        received = (await client.get(f"{demo.PLATFORMS}/received")).json()
        return [m["body"] for m in received["express"] if m["chat_id"] == str(chat)]

    try:
        # Customer A files the ticket of the report; it passes preflight and joins the duplicate index.
        await post(f"/ticket {A_TEXT}", chat_a, customer_a)
        a = await eventually(lambda: ticket_in(chat_a), "A's ticket")
        await eventually(lambda: past_preflight(a), "A's ticket past preflight")

        # Customer B, seconds later, the short probe of the report.
        await post(f"/ticket {B_TEXT}", chat_b, customer_b)
        b = await eventually(lambda: ticket_in(chat_b), "B's ticket")
        b_row = await eventually(lambda: past_preflight(b), "B's ticket past preflight")
        assert b_row["status"] != "merged" and b_row["merged_into"] is None  # a ticket of its own
        assert b_row["suggested_duplicates"] == [str(a)]  # the agent sees the suggestion
        suggested = await pool.fetchval(
            "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'DuplicateSuggested'"
            " AND data->>'candidate_id' = $2",
            f"ticket-{b}",
            str(a),
        )
        assert suggested == 1

        # B hears that its own ticket is registered, and nothing of A's.
        registered_b = await eventually(
            lambda: _with(chat_messages(chat_b), lambda bodies: [x for x in bodies if ticket_number(b) in x]),
            "B's 'registered' message",
        )
        assert any(any(word in body for word in REGISTERED) for body in registered_b)

        # A writes the same problem again (/ticket: a new ticket): merged into A's own, and told so.
        await post("/ticket ошибка входа с телефона, пароль не принимается", chat_a, customer_a)
        a2 = await eventually(lambda: ticket_in(chat_a, frozenset({a})), "A's second ticket")
        a2_row = await eventually(lambda: past_preflight(a2), "A's second ticket past preflight")
        assert (a2_row["status"], a2_row["merged_into"]) == ("merged", str(a))
        told = await eventually(
            lambda: _with(chat_messages(chat_a), lambda bodies: [x for x in bodies if ticket_number(a2) in x]),
            "A's duplicate notice",
        )
        assert any(ticket_number(a) in body for body in told), told

        # An agent undoes that merge: the ticket is examined again, registered and routed like any other.
        bootstrap = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        cli = Context(bootstrap, "", PLAINTEXT)
        await send_command(cli, UndoMerge(a2, "a different problem after all", "lead-boris"), "lead-boris")
        await eventually(
            lambda: _with(summary(a2), lambda row: row["status"] not in ("merged", "opened") and row),
            "A's second ticket back after the undo",
        )
        await eventually(
            lambda: _with(chat_messages(chat_a), lambda bodies: [x for x in bodies if "зарегистрировано" in x
                                                                 and ticket_number(a2) in x]),
            "the 'registered' message of the undone ticket",
        )  # fmt: skip

        await asyncio.sleep(3)  # anything else on its way to B would have arrived by now
        to_b = await chat_messages(chat_b)
        assert to_b, "B was answered"
        for body in to_b:
            assert ticket_number(a) not in body, body
            assert not [word for word in A_ONLY if word.lower() in body.lower()], body
    finally:
        await pool.close()


async def _with(value: Awaitable[Any], pick: Callable[[Any], Any]) -> Any:
    return pick(await value)
