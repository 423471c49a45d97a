"""The whole system as six real processes on the real broker and a fresh database (conftest.py): the
`make run` demo conversation, asserted."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from types import ModuleType

import httpx
import pytest
from support.demo import demo_secrets, load_demo
from support.eventstore import migrated_pool

from ticketflow.cli.context import Context
from ticketflow.cli.tickets import send_command
from ticketflow.contracts.commands import ReplyAsAgent
from ticketflow.contracts.ids import ticket_number
from ticketflow.messaging.security import PLAINTEXT

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
REGISTERED = "зарегистрировано под номером"  # the requester's "registered under TF-…" (ticket_opened, ru)


async def tickets_by_desk(client: httpx.AsyncClient, demo: ModuleType, before: set[str]) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    for _ in range(90):
        answer = await client.get(f"{demo.DASHBOARD}/v1/tickets", params={"limit": "100"}, headers=demo.DASHBOARD_AUTH)
        tickets = answer.json()["tickets"]
        new = [t for t in tickets if t["ticket_id"] not in before]
        settled = len(new) >= 3 and all(t["status"] not in ("opened", "ready") for t in new)
        if settled and any(t["assignee"] for t in new):
            break
        await asyncio.sleep(1)
    grouped: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for t in new:
        grouped.setdefault(t["desk_id"], []).append(t)
    return grouped


async def test_the_demo_conversation_flows_through_every_service(
    system: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_demo()
    for name, value in demo_secrets().items():  # the demo signs BotX requests with the bot's secret
        monkeypatch.setenv(name, os.environ.get(name, value))
    await demo.agents(system)
    before = await demo.ticket_ids(client)
    chat = await demo.conversation(client)  # includes BotX delivering the same command twice

    desks = await tickets_by_desk(client, demo, before)
    [express] = desks["express"]  # one ticket although BotX delivered twice
    assert (express["status"], express["queue_id"], express["assignee"]) == ("assigned", "client-l1", "agent-anna")
    bitrix = sorted(t["status"] for t in desks["bitrix24-box"])
    assert bitrix == ["awaiting_customer", "refused"]  # private-address portal; non-administrator

    # The portal check's remediation is recorded for the customer, in both languages.
    pool = await migrated_pool(system)
    try:
        failed = await pool.fetchval(
            "SELECT data FROM events WHERE event_type = 'PreflightFailed' AND stream_id = $1",
            f"ticket-{next(t for t in desks['bitrix24-box'] if t['status'] == 'awaiting_customer')['ticket_id']}",
        )
        assert "public_address" in failed and '"ru"' in failed and '"en"' in failed

        # An agent replies through ticket.commands (the SRE/agent CLI path); intake applies it.
        ticket = uuid.UUID(express["ticket_id"])
        await send_command(
            Context(os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), "", PLAINTEXT),
            ReplyAsAgent(ticket, "agent-anna", "", "Обновите приложение до 3.22, пожалуйста"),
            "agent-anna",
        )
        for _ in range(60):
            replied = await pool.fetchval(
                "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'AgentReplied'", f"ticket-{ticket}"
            )
            if replied:
                break
            await asyncio.sleep(1)
        assert replied == 1
        opened = await pool.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'TicketOpened' AND data->'chat'->>'conversation_id' = $1",
            str(chat),
        )
        assert opened == 1  # the duplicate BotX delivery opened nothing
        # The Bitrix24 chat each portal ticket came from (the dialog is the user's), by its status.
        dialogs = {
            t["status"]: json.loads(
                await pool.fetchval(
                    "SELECT data FROM events WHERE event_type = 'TicketOpened' AND stream_id = $1",
                    f"ticket-{t['ticket_id']}",
                )
            )["chat"]["conversation_id"]
            for t in desks["bitrix24-box"]
        }
    finally:
        await pool.close()

    # What the user saw in the eXpress chat, delivered by notifications to the BotX server: the
    # self-help hints (intake -> chat.replies), "registered" once preflight took the ticket, the
    # assignment, the agent's reply, the /status answer.
    await demo.ask_status(client, chat)
    number = ticket_number(uuid.UUID(express["ticket_id"]))

    def expected_arrived(in_chat: list[str], to_portal: list[str]) -> bool:
        return (
            any("3.22" in body for body in in_chat)
            and any(f"Обращение {number}: " in body for body in in_chat)
            and any("только администраторам портала" in text for text in to_portal)
            and any("192.168.10.5" in text for text in to_portal)
        )

    for attempt in range(62):
        received = (await client.get(f"{demo.PLATFORMS}/received")).json()
        in_chat = [m["body"] for m in received["express"] if m["chat_id"] == str(chat)]
        to_portal = [m["message"] for m in received["bitrix24"]]
        if attempt == 61 or expected_arrived(in_chat, to_portal):
            break
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # anything delivered twice would arrive by now
    received = (await client.get(f"{demo.PLATFORMS}/received")).json()
    in_chat = [m["body"] for m in received["express"] if m["chat_id"] == str(chat)]
    print("\n".join(in_chat))
    assert sum("Обновите приложение до 3.22" in body for body in in_chat) == 1, in_chat
    assert len(in_chat) == len(set(in_chat)), f"a message was delivered twice: {in_chat}"
    assert any(number in body for body in in_chat), f"no message names {number}: {in_chat}"
    assert any("Анна Смирнова" in body for body in in_chat), "the agent is named from the staff directory"
    assert any(f"Обращение {number}: " in body for body in in_chat), "the /status answer names the number"
    # "Registered" only once preflight passed: one message, before the assignment and the reply.
    registered = [i for i, body in enumerate(in_chat) if REGISTERED in body]
    assert len(registered) == 1 and number in in_chat[registered[0]], in_chat
    assigned = next(i for i, body in enumerate(in_chat) if "Анна Смирнова" in body)
    reply = next(i for i, body in enumerate(in_chat) if "Обновите приложение до 3.22" in body)
    assert registered[0] < assigned < reply, in_chat
    to_portal = [m["message"] for m in received["bitrix24"]]
    assert any("только администраторам портала" in text for text in to_portal), to_portal  # the refusal
    assert any("192.168.10.5" in text for text in to_portal), to_portal  # the remediation names the portal
    # Neither portal ticket was taken: each chat holds only what preflight decided, never "registered".
    by_dialog = {status: [m["message"] for m in received["bitrix24"] if m["dialog_id"] == dialog]
                 for status, dialog in dialogs.items()}  # fmt: skip
    [refusal] = by_dialog["refused"]
    assert "только администраторам портала" in refusal, by_dialog
    [remediation] = by_dialog["awaiting_customer"]
    assert "192.168.10.5" in remediation, by_dialog
    assert not any(REGISTERED in text for text in to_portal), to_portal
