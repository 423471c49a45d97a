"""The ticket_summaries read model: live projection equals a rebuild from zero; the query API."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from support.eventstore import migrated_pool
from support.tickets import open_ticket, random_followups, run

from ticketflow.eventstore import EventStore
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.projector.adapters.ticket_summaries import TicketSummaries
from ticketflow.projector.http import routes

pytestmark = pytest.mark.pg


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def store(pg_database: str) -> AsyncIterator[EventStore]:
    pool = await migrated_pool(pg_database)
    yield EventStore(pool)
    await pool.close()


async def snapshot(pool: asyncpg.Pool) -> list[dict[str, object]]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM ticket_summaries ORDER BY ticket_id")]


async def test_live_projection_equals_rebuild_from_zero(store: EventStore) -> None:
    rng = random.Random(42)
    runner = ProjectionRunner(store, TicketSummaries(), batch_size=37)  # odd size: batches split tickets
    tickets = [uuid.uuid4() for _ in range(40)]
    for n, ticket in enumerate(tickets):
        await run(store, open_ticket(ticket, n))

    async def lifecycle(ticket: uuid.UUID) -> None:
        for command in random_followups(ticket, rng):
            await run(store, command)
            await asyncio.sleep(0)

    async def live() -> None:
        while not done.is_set():
            await runner.step()
            await asyncio.sleep(0.001)

    done = asyncio.Event()
    projecting = asyncio.create_task(live())
    await asyncio.gather(*(lifecycle(t) for t in tickets))
    done.set()
    await projecting
    await runner.catch_up()
    live_rows = await snapshot(store.pool)
    assert len(live_rows) == len(tickets)
    statuses = sorted(str(r["status"]) for r in live_rows)
    assert len(set(statuses)) >= 4, statuses  # the scripts really moved tickets along

    applied = await runner.rebuild()
    assert applied == await store.count()
    assert await snapshot(store.pool) == live_rows


async def test_a_rebuild_replays_the_log_alone_while_another_instances_runner_keeps_stepping(
    store: EventStore,
) -> None:
    runner = ProjectionRunner(store, TicketSummaries(), batch_size=7)
    for n in range(30):
        await run(store, open_ticket(uuid.uuid4(), 2000 + n))
    await runner.catch_up()
    live_rows = await snapshot(store.pool)
    other_instance = ProjectionRunner(store, TicketSummaries(), batch_size=7)
    stepped: list[int] = []

    async def keep_stepping() -> None:
        while not done.is_set():
            stepped.append(await other_instance.step())
            await asyncio.sleep(0)

    done = asyncio.Event()
    stepping = asyncio.create_task(keep_stepping())
    try:
        applied = await runner.rebuild()
    finally:
        done.set()
        await stepping
    assert stepped  # it really ran alongside the rebuild
    assert applied == await store.count()  # the whole log, by the rebuild alone
    assert await snapshot(store.pool) == live_rows  # no event applied twice


async def test_referred_tickets_are_excluded_from_sla_statistics(store: EventStore) -> None:
    from ticketflow.contracts.commands import ReferTicket

    ticket = uuid.uuid4()
    await run(store, open_ticket(ticket, 999))
    await run(store, ReferTicket(ticket, "custom_development", "partners do custom development"))
    await ProjectionRunner(store, TicketSummaries()).catch_up()
    row = await store.pool.fetchrow("SELECT status, sla_excluded FROM ticket_summaries WHERE ticket_id = $1", ticket)
    assert row is not None and (row["status"], row["sla_excluded"]) == ("referred", True)


async def test_the_agent_sees_merges_suggestions_and_known_problems(store: EventStore) -> None:
    from ticketflow.contracts import commands as c

    ticket, other, problem = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await run(store, open_ticket(ticket, 1001))
    await run(store, c.MarkDuplicate(ticket, other, 0.9))
    runner = ProjectionRunner(store, TicketSummaries())
    await runner.catch_up()
    sql = (
        "SELECT status, merged_into, suggested_duplicate_of, known_problem_of"
        " FROM ticket_summaries WHERE ticket_id = $1"
    )
    assert tuple(await store.pool.fetchrow(sql, ticket)) == ("merged", other, None, None)
    await run(store, c.UndoMerge(ticket, "another requester's ticket", "lead"))
    await run(store, c.RecordPreflightPassed(ticket, "bug_report", (), (c.DuplicateCandidate(other, 0.9),)))
    await runner.catch_up()
    assert tuple(await store.pool.fetchrow(sql, ticket)) == ("ready", None, other, None)
    await run(store, c.LinkKnownProblem(ticket, problem, "anna"))
    await runner.catch_up()
    assert tuple(await store.pool.fetchrow(sql, ticket)) == ("ready", None, other, problem)


async def test_the_agent_sees_messages_whose_delivery_is_unknown(store: EventStore) -> None:
    """Issue 16: a message that left for the chat without an answer is counted on the ticket (the agent
    checks the chat), apart from failed ones."""
    from datetime import UTC, datetime

    from ticketflow.contracts import notification_events as ne
    from ticketflow.contracts.envelope import NewEvent
    from ticketflow.contracts.ids import new_event_id, notification_stream

    ticket = uuid.uuid4()
    await run(store, open_ticket(ticket, 1002))
    now = datetime.now(UTC)
    unknown = ne.NotificationOutcomeUnknown(ticket, "k-1", "express", "requester:u", "ticket_opened",
                                            "outcome unknown: no answer within 20s", now)  # fmt: skip
    failed = ne.NotificationFailed(ticket, "k-2", "bitrix24", "agent-anna", "assigned_to_you", "http 403", True, now)
    await store.append(notification_stream(ticket), 0, [NewEvent(new_event_id(), e, now) for e in (unknown, failed)])
    await ProjectionRunner(store, TicketSummaries()).catch_up()
    row = await store.pool.fetchrow(
        "SELECT notifications_unknown, notifications_failed FROM ticket_summaries WHERE ticket_id = $1", ticket
    )
    assert row is not None and (row["notifications_unknown"], row["notifications_failed"]) == (1, 1)


async def test_query_api_filters_and_refuses_bad_queries(store: EventStore) -> None:
    from starlette.applications import Starlette

    await ProjectionRunner(store, TicketSummaries()).catch_up()
    app = Starlette(routes=routes(store.pool))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://projector") as client:
        referred = (await client.get("/v1/tickets", params={"status": "referred"})).json()["tickets"]
        assert referred and all(t["status"] == "referred" for t in referred)
        one = await client.get(f"/v1/tickets/{referred[0]['ticket_id']}")
        assert one.status_code == 200 and one.json()["sla_excluded"] is True
        assert (await client.get(f"/v1/tickets/{uuid.uuid4()}")).status_code == 404
        bad = await client.get("/v1/tickets", params={"colour": "red"})
        assert bad.status_code == 400 and "colour" in bad.json()["error"]
        assert (await client.get("/v1/tickets/not-a-uuid")).status_code == 400
        stats = (await client.get("/v1/stats")).json()["by_desk_and_status"]
        assert sum(s["tickets"] for s in stats) == await store.pool.fetchval("SELECT count(*) FROM ticket_summaries")
