"""The query API answers what the read models hold: filters select what they say, every sort walks every
ticket once in its order, pages stay stable while tickets arrive and change, the SLA board counts business
minutes, and a client can wait (bounded) until its own event is in the read models."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from queries_world import BOTH_TOKEN, BOX, DESKS, EXPRESS, World, bearer, every_page
from support.ticket_histories import append_steps, histories

from ticketflow.contracts import commands as c
from ticketflow.contracts import sla_events as s
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id, sla_stream, ticket_stream
from ticketflow.contracts.values import ChatRef, Priority, Requester
from ticketflow.eventstore.commands import execute
from ticketflow.lifecycle import decide, evolve, initial_state
from ticketflow.projector.app import Projector

pytestmark = pytest.mark.pg
HEADERS = bearer(BOTH_TOKEN)


async def ids_where(world: World, sql: str, *args: Any) -> set[str]:
    return {str(r[0]) for r in await world.pool.fetch(f"SELECT ticket_id FROM ticket_list WHERE {sql}", *args)}


@pytest.mark.parametrize(
    ("params", "where", "args"),
    [
        ({"status": "closed,resolved"}, "status = ANY($1)", (["closed", "resolved"],)),
        ({"desk": EXPRESS, "queue": "technical-l2"}, "desk_id = $1 AND queue_id = $2", (EXPRESS, "technical-l2")),
        ({"priority": "urgent"}, "priority = $1", ("urgent",)),
        ({"assignee": "none"}, "assignee IS NULL", ()),
        ({"assignee": "box-agent-1,none"}, "(assignee = $1 OR assignee IS NULL)", ("box-agent-1",)),
        ({"sla_state": "met,breached"}, "sla_state = ANY($1)", (["met", "breached"],)),
        ({"category": "feature_request"}, "category = $1", ("feature_request",)),
        ({"organisation": "bitrix24:portal-003"}, "organisation_id = $1", ("bitrix24:portal-003",)),
        ({"q": "ЛИЦЕНЗ серт"}, "search @@ to_tsquery('simple', 'лиценз:* & серт:*')", ()),
        ({"q": "logs", "status": "closed"}, "search @@ to_tsquery('simple', 'logs:*') AND status = 'closed'", ()),
    ],
    ids=lambda v: str(v)[:50],
)
async def test_each_filter_selects_what_it_says(
    world: World, client: httpx.AsyncClient, params: dict[str, str], where: str, args: tuple[Any, ...]
) -> None:
    expected = await ids_where(world, where, *args)
    assert expected, "the world has tickets of this kind"
    found = await every_page(client, "/v1/tickets", HEADERS, **params)
    assert [t["ticket_id"] for t in found if t["ticket_id"] in expected] == [t["ticket_id"] for t in found]
    assert {t["ticket_id"] for t in found} == expected and len(found) == len(expected)


SORTS = {
    "-opened_at": "opened_at DESC, ticket_id DESC",
    "opened_at": "opened_at, ticket_id",
    "-updated_at": "updated_at DESC, ticket_id DESC",
    "updated_at": "updated_at, ticket_id",
    "priority": "priority_rank, ticket_id",
    "-priority": "priority_rank DESC, ticket_id DESC",
    "sla_due_at": "due_sort, ticket_id",
}


@pytest.mark.parametrize("sort", SORTS)
async def test_every_sort_walks_every_ticket_once_in_its_order(
    world: World, client: httpx.AsyncClient, sort: str
) -> None:
    expected = await ordered(world, sort)
    found = await every_page(client, "/v1/tickets", HEADERS, sort=sort)
    assert [t["ticket_id"] for t in found] == expected  # two desks merged page by page, in one order


async def ordered(world: World, sort: str) -> list[str]:
    return [str(r[0]) for r in await world.pool.fetch(f"SELECT ticket_id FROM ticket_list ORDER BY {SORTS[sort]}")]


async def test_pages_stay_stable_while_tickets_arrive_and_change(world: World, client: httpx.AsyncClient) -> None:
    for sort in ("-opened_at", "opened_at"):
        before = await ordered(world, sort)
        seen: list[str] = []
        cursor = None
        rng = random.Random(sort)
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 9, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/tickets", params=params, headers=HEADERS)).json()
            seen += [t["ticket_id"] for t in page["tickets"]]
            cursor = page["next_cursor"]
            # Between two pages: new tickets open, others get new events (their updated_at moves).
            first = 10_000 + rng.randrange(10**6)
            new = list(histories(first, 2, rng, datetime.now(UTC)))
            await append_steps(world.store, [step for _, steps in new for step in steps[:3]], {})
            ticket = uuid.UUID(rng.choice(before))
            await run(world, c.ChangePriority(ticket, "urgent" if rng.random() < 0.5 else "low", "lead"))
            await world.project()
            if cursor is None:
                break
        old = [t for t in seen if t in set(before)]
        assert old == before  # every ticket that was there, once, in order: nothing repeated, nothing skipped
        assert len(seen) == len(set(seen))
        if sort == "-opened_at":
            assert seen == old  # newer tickets sort before the cursor: a walk that started never meets them


async def run(world: World, command: c.TicketCommand) -> None:
    try:
        await execute(world.store, ticket_stream(command.ticket_id), command, decide, evolve, initial_state())
    except Exception as error:  # a finished ticket refuses a new priority: nothing changes, as intended
        assert "not allowed" in str(error)


async def test_the_ticket_document_is_served_as_stored(world: World, client: httpx.AsyncClient) -> None:
    for ticket in world.tickets[EXPRESS][:10]:
        answer = (await client.get(f"/v1/tickets/{ticket}", headers=HEADERS)).json()
        stored = await world.pool.fetchval("SELECT doc FROM ticket_details WHERE ticket_id = $1", uuid.UUID(ticket))
        assert answer["ticket"] == json.loads(stored)
        assert answer["ticket"]["timeline"] and answer["ticket"]["conversation"]
        assert answer["position"] >= answer["ticket"]["position"]


async def test_the_sla_board_counts_business_minutes_in_the_clocks_calendar(
    world: World, client: httpx.AsyncClient
) -> None:
    calendar = DESKS.calendar(BOX, "box")  # 10:00-19:00 Moscow, weekdays
    now = datetime.now(UTC)
    soon = calendar.add_business_seconds(now, 30 * 60)  # due in 30 business minutes
    later = calendar.add_business_seconds(now, 90 * 60)
    tickets = {name: uuid.uuid4() for name in ("soon", "later", "breached", "paused")}
    chat = ChatRef("bitrix24", "portal-board", "d1")
    for name, ticket in tickets.items():
        await run(world, c.OpenTicket(ticket, BOX, "box", chat, Requester("u"), name, f"m-{ticket}", now))
        await run(world, c.RecordPreflightPassed(ticket, "performance"))
        deadline = {"soon": soon, "later": later}.get(name, now - timedelta(minutes=5))
        events: list[Any] = [s.SlaClockStarted(ticket, "first_response", "box/normal", 7200, now, deadline)]
        if name == "breached":
            events.append(s.SlaBreached(ticket, "first_response", deadline, now))
        if name == "paused":
            events.append(s.SlaClockPaused(ticket, "first_response", now, 600))
        await world.store.append(sla_stream(ticket), 0, [NewEvent(new_event_id(), e, now) for e in events])
    await world.project()

    async def board(within: int) -> dict[str, set[str]]:
        body = (await client.get(f"/v1/desks/{BOX}/sla-board", params={"within": within, "limit": 500},
                                 headers=HEADERS)).json()  # fmt: skip
        return {k: {x["ticket_id"] for x in body[k]["clocks"]} & {str(t) for t in tickets.values()}
                for k in ("at_risk", "breached", "paused")}  # fmt: skip

    within_60, within_120 = await board(60), await board(120)
    assert within_60 == {"at_risk": {str(tickets["soon"])}, "breached": {str(tickets["breached"])},
                         "paused": {str(tickets["paused"])}}  # fmt: skip
    assert within_120["at_risk"] == {str(tickets["soon"]), str(tickets["later"])}
    body = (await client.get(f"/v1/desks/{BOX}/sla-board", params={"limit": 1}, headers=HEADERS)).json()
    counted = await world.pool.fetchval("SELECT count(*) FROM sla_board_clocks WHERE desk_id = $1 AND breached", BOX)
    assert body["breached"]["count"] == counted and len(body["breached"]["clocks"]) == min(1, counted)


async def test_backlog_agents_metrics_and_register_agree_with_their_tables(
    world: World, client: httpx.AsyncClient
) -> None:
    backlog = (await client.get(f"/v1/desks/{EXPRESS}/backlog", headers=HEADERS)).json()
    waiting = await world.pool.fetchval(
        "SELECT count(*) FROM queue_backlog WHERE desk_id = $1 AND status IN "
        "('ready', 'routed', 'assigned', 'in_progress', 'waiting_on_customer')", EXPRESS,
    )  # fmt: skip
    assert backlog["total"] == waiting == sum(sum(q["ages"].values()) for q in backlog["queues"])

    agents = await every_page(client, f"/v1/desks/{EXPRESS}/agents", HEADERS)
    held = await world.pool.fetch(
        "SELECT assignee, count(*) FROM ticket_list WHERE desk_id = $1 AND status IN "
        "('assigned', 'in_progress', 'waiting_on_customer') GROUP BY 1", EXPRESS,
    )  # fmt: skip
    assert {a["agent_id"]: a["assigned"] for a in agents if a["assigned"]} == {r[0]: r[1] for r in held}
    assert {a["agent_id"] for a in agents} >= {f"express-agent-{i}" for i in range(10)}

    metrics = (await client.get(f"/v1/desks/{EXPRESS}/metrics", headers=HEADERS)).json()
    first, last = (datetime.fromisoformat(metrics[k]).date() for k in ("first_day", "last_day"))
    counted = await world.pool.fetchval(
        "SELECT count(*) FROM desk_metric_tickets WHERE desk_id = $1 AND excluded IS NULL AND day BETWEEN $2 AND $3",
        EXPRESS, first, last,
    )  # fmt: skip
    assert sum(d["opened"] for d in metrics["days"]) == counted > 0
    busy = max(metrics["days"], key=lambda d: d["opened"])
    responses = sorted(
        r[0] for r in await world.pool.fetch(
            "SELECT first_response_s FROM desk_metric_tickets WHERE desk_id = $1 AND day = $2 AND excluded IS NULL "
            "AND first_response_s IS NOT NULL", EXPRESS, datetime.fromisoformat(busy["day"]).date(),
        )
    )  # fmt: skip
    if responses:
        assert min(responses) <= busy["first_response_p50_s"] <= busy["first_response_p90_s"] <= max(responses)

    organisations = (await client.get(f"/v1/desks/{EXPRESS}/organisations", headers=HEADERS)).json()["organisations"]
    for organisation in organisations:
        path = f"/v1/desks/{EXPRESS}/organisations/{organisation['organisation_id']}/tickets"
        entries = await every_page(client, path, HEADERS)
        assert len(entries) == organisation["tickets"]
        declined = await every_page(client, path, HEADERS, feature_outcome="declined")
        assert len(declined) == organisation["declined"] and all(e["feature_reason"] for e in declined)
    assert {o["label"] for o in organisations} <= {"cts.express.example.ru", "cts.customer.example.ru"}


async def test_a_client_waits_for_its_own_event_and_is_told_when_the_wait_ran_out(
    world: World, client: httpx.AsyncClient
) -> None:
    ticket = await world.pool.fetchval(
        "SELECT ticket_id FROM ticket_list WHERE status IN ('routed', 'assigned', 'in_progress') ORDER BY ticket_id"
    )
    answer = (await client.get(f"/v1/tickets/{ticket}", headers=HEADERS)).json()
    priority: Priority = "urgent" if answer["ticket"]["priority"] != "urgent" else "low"
    result = await execute(world.store, ticket_stream(ticket), c.ChangePriority(ticket, priority, "lead"), decide,
                           evolve, initial_state())  # fmt: skip
    assert result.result is not None
    position = result.result.positions[-1]
    # Nobody projects: the wait runs out and the answer says so.
    started = time.monotonic()
    stale = await client.get(f"/v1/tickets/{ticket}", params={"min_position": position, "wait_ms": 300},
                             headers=HEADERS)  # fmt: skip
    assert stale.json()["reached"] is False and stale.json()["position"] < position
    assert 0.3 <= time.monotonic() - started < 5
    # The projector runs: the same question is answered as soon as the event is in.
    stop = asyncio.Event()
    projecting = asyncio.create_task(Projector(world.store, world.desks).run(stop))
    try:
        fresh = (await client.get(f"/v1/tickets/{ticket}", params={"min_position": position, "wait_ms": 10_000},
                                  headers=HEADERS)).json()  # fmt: skip
    finally:
        stop.set()
        await projecting
    assert fresh["reached"] is True and fresh["position"] >= position and fresh["ticket"]["priority"] == priority


async def test_the_backlog_history_ends_where_the_backlog_is_now_and_adds_up_hour_by_hour(
    world: World, client: httpx.AsyncClient
) -> None:
    """Two read models kept apart (backlog_history by the events' hours, queue_backlog by status) agree: the
    history's last hour, after every event, is the backlog now, queue by queue."""
    last = await world.pool.fetchval("SELECT max(occurred_at) FROM events")
    hours = 24 * 7  # the backlog before the first hour counts too: the last hour is the backlog after everything
    for desk in (BOX, EXPRESS):
        answer = await client.get(
            f"/v1/desks/{desk}/backlog-history",
            params={"until": (last + timedelta(hours=1)).isoformat(), "hours": hours},
            headers=HEADERS,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["hours"]) == hours
        first = datetime.fromisoformat(body["hours"][0])
        now = await world.pool.fetch(
            "SELECT queue_id, count(*) FROM queue_backlog WHERE desk_id = $1 AND status IN "
            "('ready', 'routed', 'assigned', 'in_progress', 'waiting_on_customer') GROUP BY 1", desk,
        )  # fmt: skip
        assert {q["queue_id"]: q["backlog"][-1] for q in body["queues"] if q["backlog"][-1]} == {
            r[0]: r[1] for r in now
        }
        assert body["total"]["backlog"][-1] == sum(r[1] for r in now) > 0
        before = await world.pool.fetchval(
            "SELECT coalesce(sum(entered - exited), 0) FROM backlog_hours WHERE desk_id = $1 AND hour < $2", desk, first
        )
        assert body["total"]["backlog"][0] == before + body["total"]["entered"][0] - body["total"]["exited"][0]
        for i in range(1, hours):
            came, went = body["total"]["entered"][i], body["total"]["exited"][i]
            assert body["total"]["backlog"][i] == body["total"]["backlog"][i - 1] + came - went
        assert sum(body["total"]["entered"]) == await world.pool.fetchval(
            "SELECT coalesce(sum(entered), 0) FROM backlog_hours WHERE desk_id = $1 AND hour >= $2", desk, first
        )
    one = (await client.get(f"/v1/desks/{EXPRESS}/backlog-history", params={"queue": "none", "hours": 3},
                            headers=HEADERS)).json()  # fmt: skip
    assert [q["queue_id"] for q in one["queues"]] in ([], [None]) and len(one["hours"]) == 3


async def test_the_first_response_histogram_counts_each_ticket_once_in_its_bucket(
    world: World, client: httpx.AsyncClient
) -> None:
    body = (await client.get(f"/v1/desks/{EXPRESS}/first-responses", headers=HEADERS)).json()
    first, last = (datetime.fromisoformat(body[k]).date() for k in ("first_day", "last_day"))
    times = [
        r[0]
        for r in await world.pool.fetch(
            "SELECT first_response_s FROM desk_metric_tickets WHERE desk_id = $1 AND excluded IS NULL "
            "AND day BETWEEN $2 AND $3", EXPRESS, first, last,
        )
    ]  # fmt: skip
    answered = [s for s in times if s is not None]
    assert body["responded"] == len(answered) > 0 and body["not_responded"] == len(times) - len(answered)
    for bucket in body["buckets"]:
        low, high = bucket["from_seconds"], bucket["to_seconds"]
        assert bucket["tickets"] == len([s for s in answered if low <= s and (high is None or s < high)])
    assert [b["from_seconds"] for b in body["buckets"]][:3] == [0, 300, 900]
    assert body["buckets"][-1]["to_seconds"] is None
