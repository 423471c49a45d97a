"""The read models on the real PostgreSQL: projected live while tickets run their lifecycles (and a rebuild
swaps fresh copies in half-way), they equal a rebuild from zero; and what each one shows of a ticket."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from support.eventstore import migrated_pool
from support.ticket_histories import Step, append_steps, histories, roster

from ticketflow.contracts import commands as c
from ticketflow.contracts import notification_events as n
from ticketflow.contracts import sla_events as s
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id, notification_stream, sla_stream, ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.contracts.views import ticket_detail_decoder
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.commands import execute
from ticketflow.lifecycle import decide, evolve, initial_state
from ticketflow.projector.adapters.read_models import NAMES
from ticketflow.projector.app import Projector, UnknownReadModel, rebuild

pytestmark = pytest.mark.pg

DESKS = load_desks()
TABLES = {
    "ticket_list": "ticket_id",
    "ticket_details": "ticket_id",
    "queue_backlog": "ticket_id",
    "sla_board_tickets": "ticket_id",
    "sla_board_clocks": "ticket_id, target",
    "agent_load": "agent_id",
    "agent_load_tickets": "ticket_id",
    "desk_metric_tickets": "ticket_id",
    "register_entries": "ticket_id",
    "register_organisations": "desk_id, organisation_id",
    "backlog_history_tickets": "ticket_id",
    "backlog_hours": "desk_id, queue_id, hour",
}
MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def store(pg_database: str) -> AsyncIterator[EventStore]:
    pool = await migrated_pool(pg_database)
    yield EventStore(pool)
    await pool.close()


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[dict[str, object]]]:
    return {
        table: [dict(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        for table, key in TABLES.items()
    }


async def test_every_read_model_projected_live_equals_a_rebuild_from_zero(store: EventStore) -> None:
    projector = Projector(store, DESKS, batch_size=41)  # odd size: batches split tickets
    await append_steps(store, roster(MONDAY), {})
    tickets = list(histories(1, 60, random.Random(5), MONDAY, spacing_s=40))
    stop = asyncio.Event()
    live = asyncio.create_task(projector.run(stop))

    async def one(steps: list[Step]) -> None:
        versions: dict[str, int] = {}
        for step in steps:
            await append_steps(store, [step], versions)
            await asyncio.sleep(0)

    writers = asyncio.gather(*(one(steps) for _, steps in tickets))
    await asyncio.sleep(0.2)
    reports = await rebuild(store.pool, DESKS)  # while the projector runs and the writers write
    await writers
    await projector.catch_up()
    stop.set()
    await live
    assert [r.projection for r in reports] == list(NAMES)
    projected = await snapshot(store.pool)
    assert len(projected["ticket_list"]) == len(tickets)
    statuses = {str(r["status"]) for r in projected["ticket_list"]}
    assert {"closed", "resolved", "merged"} <= statuses and len(statuses) >= 5, statuses  # tickets moved along
    assert projected["sla_board_clocks"] and projected["agent_load_tickets"] and projected["queue_backlog"]
    assert projected["backlog_hours"] and projected["backlog_history_tickets"]

    await rebuild(store.pool, DESKS)  # a quiet rebuild from zero
    assert await snapshot(store.pool) == projected
    counted = await store.pool.fetch(
        """SELECT desk_id, organisation_id, count(*) AS tickets,
                  count(*) FILTER (WHERE feature_outcome = 'declined') AS declined
           FROM register_entries GROUP BY 1, 2 ORDER BY 1, 2"""
    )
    kept = [
        (r["desk_id"], r["organisation_id"], r["tickets"], r["declined"]) for r in projected["register_organisations"]
    ]
    assert kept == [tuple(r) for r in counted]  # the counters kept by deltas agree with a count


async def test_a_rebuild_keeps_the_list_indexes_and_statistics_under_their_names(store: EventStore) -> None:
    """Later migrations may name them; the planner needs the statistics (projector migration 0006)."""
    objects = """SELECT (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes
                         WHERE schemaname = 'public' AND tablename = 'ticket_list') AS indexes,
                        (SELECT array_agg(stxname::text ORDER BY stxname) FROM pg_statistic_ext
                         WHERE stxrelid = 'public.ticket_list'::regclass
                           AND stxnamespace = 'public'::regnamespace) AS statistics,
                        (SELECT count(*) FROM pg_namespace
                         WHERE nspname LIKE 'rebuild\\_%' OR nspname LIKE 'retired\\_%') AS leftovers"""
    for _, steps in histories(9001, 5, random.Random(7), MONDAY, spacing_s=40):
        await append_steps(store, steps, {})
    before = dict(await store.pool.fetchrow(objects))
    assert "ticket_list_category" in before["indexes"] and "ticket_list_desk_category" in before["statistics"]
    await rebuild(store.pool, DESKS, ["tickets"])
    after = dict(await store.pool.fetchrow(objects))
    assert after == {**before, "leftovers": 0}
    analysed = "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'ticket_list'"
    assert await store.pool.fetchval(analysed) > 0  # the copy was analysed before it was swapped in


async def test_a_rebuild_names_the_read_models_it_keeps(store: EventStore) -> None:
    with pytest.raises(UnknownReadModel, match="tickets, queue_backlog"):
        await rebuild(store.pool, DESKS, ["ticket_summaries"])
    [report] = await rebuild(store.pool, DESKS, ["agent_load"])
    assert report.projection == "agent_load" and report.applied == await store.count()


async def run(store: EventStore, command: c.TicketCommand) -> None:
    await execute(store, ticket_stream(command.ticket_id), command, decide, evolve, initial_state())


async def test_the_ticket_document_holds_the_conversation_clocks_deliveries_and_every_event(store: EventStore) -> None:
    ticket = uuid.uuid4()
    chat = ChatRef("express", "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69", "chat-1")
    requester = Requester("huid-1", "Anna", roles=("system_admin",))
    await run(store, c.OpenTicket(ticket, "express", "technical-standard", chat, requester, "Push не приходят",
                                  "m1", MONDAY))  # fmt: skip
    await run(store, c.RecordPreflightPassed(ticket, "bug_report"))
    deadline = MONDAY + timedelta(hours=4)
    await store.append(sla_stream(ticket), 0, [_new(s.SlaClockStarted(ticket, "first_response", "p", 14400, MONDAY,
                                                                      deadline))])  # fmt: skip
    await store.append(sla_stream(ticket), 1, [_new(s.SlaWarning(ticket, "first_response", 0.5, deadline, MONDAY))])
    await run(store, c.RouteTicket(ticket, "technical-l2", "l2", "normal", "technical"))
    await run(store, c.AssignTicket(ticket, "ann", "least_loaded"))
    await run(store, c.ReplyAsAgent(ticket, "ann", "r1", "Проверьте настройки уведомлений"))
    await store.append(notification_stream(ticket), 0, [_new(n.NotificationFailed(
        ticket, "k1", "express", "huid-1", "agent_replied", "chat is gone", True, MONDAY, 3))])  # fmt: skip
    await store.append(notification_stream(ticket), 1, [_new(n.NotificationOutcomeUnknown(
        ticket, "k2", "express", "huid-1", "ticket_opened", "no answer within 20s", MONDAY))])  # fmt: skip
    await run(store, c.AddCustomerMessage(ticket, "m2", "Не помогло", MONDAY, "huid-1"))
    await Projector(store, DESKS).catch_up()

    doc = ticket_detail_decoder.decode(
        await store.pool.fetchval("SELECT doc::text FROM ticket_details WHERE ticket_id = $1", ticket)
    )
    assert [(m.author, m.author_id, m.text) for m in doc.conversation] == [
        ("customer", "huid-1", "Push не приходят"),
        ("agent", "ann", "Проверьте настройки уведомлений"),
        ("customer", "huid-1", "Не помогло"),
    ]
    events = await store.pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = ANY($1)",
        [ticket_stream(ticket), sla_stream(ticket), notification_stream(ticket)],
    )
    assert len(doc.timeline) == events and [e.position for e in doc.timeline] == sorted(
        e.position for e in doc.timeline
    )
    assert "text" not in doc.timeline[0].detail and doc.timeline[0].type == "TicketOpened"
    [clock] = doc.sla
    assert (clock.target, clock.state, clock.deadline, clock.warning_level) == (
        "first_response",
        "running",
        deadline,
        0.5,
    )
    assert (doc.sla_state, doc.sla_due_at) == ("warning", deadline)
    failed, unknown = doc.deliveries
    assert (failed.state, failed.permanent, failed.reason) == ("failed", True, "chat is gone")
    # issue 16: sent, and no answer said whether it arrived; never resent, so the agent checks the chat
    assert (unknown.notification_key, unknown.state, unknown.reason) == ("k2", "unknown", "no answer within 20s")
    assert (doc.status, doc.queue_id, doc.assignee, doc.organisation_id) == (
        "in_progress", "technical-l2", "ann", "express:3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"
    )  # fmt: skip
    found = await store.pool.fetchval(
        "SELECT ticket_id FROM ticket_list WHERE search @@ to_tsquery('simple', 'помогло') AND ticket_id = $1", ticket
    )
    assert found == ticket  # the customer's later message is searchable, not only the first one


def _new(event: Any) -> NewEvent:

    return NewEvent(new_event_id(), event, MONDAY)


async def test_desk_metrics_leave_out_referred_and_duplicate_tickets(store: EventStore) -> None:
    chat = ChatRef("bitrix24", "portal-x", "d1")
    admin = Requester("admin-1", roles=("portal_admin",))
    friday_evening = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 18:30 in Moscow, half an hour before closing
    answered, referred, duplicate = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for ticket in (answered, referred, duplicate):
        await run(
            store, c.OpenTicket(ticket, "bitrix24-box", "box", chat, admin, "slow", f"m-{ticket}", friday_evening)
        )
    await run(store, c.RecordPreflightPassed(answered, "performance"))
    await run(store, c.RouteTicket(answered, "box-l1", "l1", "normal", "rule"))
    await run(store, c.AssignTicket(answered, "ann"))
    await run(store, c.ReferTicket(referred, "custom_development", "partners"))
    await run(store, c.MarkDuplicate(duplicate, answered, 0.97))
    await Projector(store, DESKS).catch_up()
    rows = {
        r["ticket_id"]: r
        for r in await store.pool.fetch(
            "SELECT * FROM desk_metric_tickets WHERE ticket_id = ANY($1)", [answered, referred, duplicate]
        )
    }
    assert rows[answered]["excluded"] is None and rows[answered]["day"] == friday_evening.date()
    assert (rows[referred]["excluded"], rows[duplicate]["excluded"]) == ("referred", "duplicate")


async def test_the_agent_sees_merges_suggestions_and_known_problems(store: EventStore) -> None:
    ticket, other, problem = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    chat = ChatRef("bitrix24", "portal-y", "d2")
    await run(store, c.OpenTicket(ticket, "bitrix24-box", "box", chat, Requester("u"), "slow", "m1", MONDAY))
    await run(store, c.MarkDuplicate(ticket, other, 0.9))
    projector = Projector(store, DESKS)

    async def seen() -> tuple[object, ...]:
        await projector.catch_up()
        raw = await store.pool.fetchval("SELECT doc::text FROM ticket_details WHERE ticket_id = $1", ticket)
        doc = ticket_detail_decoder.decode(raw)
        return doc.status, doc.merged_into, doc.suggested_duplicates, doc.known_problem_of, doc.excluded_from_metrics

    assert await seen() == ("merged", other, [], None, "duplicate")
    await run(store, c.UndoMerge(ticket, "another requester's ticket", "lead"))
    await run(store, c.RecordPreflightPassed(ticket, "bug_report", (), (c.DuplicateCandidate(other, 0.9),)))
    assert await seen() == ("ready", None, [other], None, None)
    await run(store, c.LinkKnownProblem(ticket, problem, "anna"))
    assert await seen() == ("ready", None, [other], problem, None)


async def test_the_register_shows_a_feature_requests_outcome(store: EventStore) -> None:
    ticket = uuid.uuid4()
    bot = "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"
    requester = Requester("huid-9", "Boris", roles=("system_admin",))
    await run(store, c.OpenTicket(ticket, "express", "client", ChatRef("express", bot, "c9"), requester,
                                  "Добавьте тёмную тему в web", "m1", MONDAY))  # fmt: skip
    await run(store, c.RecordPreflightPassed(ticket, "feature_request"))
    await run(store, c.RouteTicket(ticket, "product-requests", "product", "normal", "feature-requests"))
    await run(store, c.AssignTicket(ticket, "kate"))
    await run(store, c.SetFeatureRequestOutcome(ticket, "declined", "kate", "not on the roadmap"))
    await Projector(store, DESKS).catch_up()
    row = await store.pool.fetchrow("SELECT * FROM register_entries WHERE ticket_id = $1", ticket)
    assert row is not None
    assert (row["organisation_id"], row["category"], row["status"], row["requester_name"]) == (
        f"express:{bot}", "feature_request", "assigned", "Boris"
    )  # fmt: skip
    assert (row["feature_outcome"], row["feature_reason"], row["outcome_by"]) == (
        "declined",
        "not on the roadmap",
        "kate",
    )


async def test_the_rebuild_command_shows_progress_and_names_what_it_rebuilt(
    store: EventStore, pg_database: str
) -> None:
    chat = ChatRef("bitrix24", "portal-z", "d9")
    await run(store, c.OpenTicket(uuid.uuid4(), "bitrix24-box", "box", chat, Requester("u"), "hi", "m1", MONDAY))
    env = {**os.environ, "TICKETFLOW_PG_DSN": pg_database}
    command = [sys.executable, "-m", "ticketflow.projector", "rebuild", "tickets", "sla_board"]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rebuilt tickets:" in done.stdout and "rebuilt sla_board:" in done.stdout
    assert "tickets:" in done.stderr and "ev/s" in done.stderr  # tqdm's bar, with its rate and estimate
    unknown = [sys.executable, "-m", "ticketflow.projector", "rebuild", "ticket_summaries"]
    refused = await asyncio.to_thread(subprocess.run, unknown, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no read model ticket_summaries" in refused.stderr
