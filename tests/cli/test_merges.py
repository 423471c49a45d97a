"""`ticketflow merges`: automatic merges still in force, and which of them crossed requesters (issue 14:
earlier code merged a public bot's customers into each other's tickets). Real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from support.eventstore import migrated_pool

from ticketflow.cli import tickets
from ticketflow.cli.app import main
from ticketflow.contracts import commands as c
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.commands import execute
from ticketflow.lifecycle import decide, evolve, initial_state

pytestmark = pytest.mark.pg
BOT = "8dada2c8-67a6-4434-9dec-570d244e78ee"


async def test_cross_requester_merges_are_found_and_undone_ones_are_not(
    pg_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = await migrated_pool(pg_database)
    store = EventStore(pool)

    async def run(command: c.TicketCommand) -> None:
        await execute(store, ticket_stream(command.ticket_id), command, decide, evolve, initial_state())

    async def opened(user: str) -> uuid.UUID:
        ticket = uuid.uuid4()
        chat = ChatRef("express", BOT, f"chat-{user}")
        await run(c.OpenTicket(ticket, "express", "client", chat, Requester(user), "ошибка", "m", datetime.now(UTC)))
        return ticket

    try:
        a = await opened("customer-a")
        b = await opened("customer-b")  # merged into a stranger's ticket, as earlier code did
        await run(c.MarkDuplicate(b, a, 0.8))
        a2 = await opened("customer-a")  # the same requester's repeat: a merge that stays
        await run(c.MarkDuplicate(a2, a, 0.9))
        undone = await opened("customer-c")  # a stranger's merge an agent already undid
        await run(c.MarkDuplicate(undone, a, 0.7))
        await run(c.UndoMerge(undone, "another requester's ticket", "lead"))

        cross = await tickets.automatic_merges(pg_database, cross_requester=True)
        assert [(r["ticket_id"], r["into_ticket_id"]) for r in cross] == [(b, a)]
        assert cross[0]["requester"] == f"express:{BOT}:customer-b"
        assert cross[0]["into_requester"] == f"express:{BOT}:customer-a"
        every = await tickets.automatic_merges(pg_database, cross_requester=False)
        assert {r["ticket_id"] for r in every} == {b, a2}

        monkeypatch.setenv("TICKETFLOW_PG_DSN", pg_database)
        assert await asyncio.to_thread(main, ["--json", "merges", "--cross-requester"]) == 0  # the CLI's own loop
        [shown] = json.loads(capsys.readouterr().out)
        assert (shown["ticket_id"], shown["into_ticket_id"]) == (str(b), str(a))
        assert await asyncio.to_thread(main, ["merges", "--cross-requester"]) == 0
        printed = capsys.readouterr().out
        assert "1 cross-requester automatic merges in force" in printed and "ticketflow undo-merge" in printed
    finally:
        await pool.close()
