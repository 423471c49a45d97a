"""The backlog's history on the real PostgreSQL: per desk, queue and hour of the events' own times, the
tickets that entered and exited the backlog; the same rows whatever the log's interleaving of tickets, the
batch size, or the day the projector runs, and after a rebuild."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from support.eventstore import migrated_pool
from support.infra import create_database, drop_database, dsn_with_database, unique_name
from support.ticket_histories import Step, append_steps

from ticketflow.contracts import commands as c
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.lifecycle import decide, evolve, initial_state
from ticketflow.projector.app import Projector, rebuild

pytestmark = pytest.mark.pg

DESKS = load_desks()
DESK = "bitrix24-box"
MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow: the hours below are UTC hours


def hour(h: int) -> datetime:
    return MONDAY.replace(hour=h)


def at(h: int, m: int) -> datetime:
    return MONDAY.replace(hour=h, minute=m)


def ticket_steps(ticket: uuid.UUID, script: list[tuple[datetime, c.TicketCommand]]) -> list[Step]:
    state, steps = initial_state(), []
    for when, command in script:
        for event in decide(command, state):  # type: ignore[arg-type]
            state = evolve(state, event)
            steps.append(Step(ticket_stream(ticket), event, when))
    return steps


def opened(ticket: uuid.UUID, when: datetime) -> c.OpenTicket:
    return c.OpenTicket(ticket, DESK, "box", ChatRef("bitrix24", "portal-1", f"chat-{ticket}"), Requester("admin"),
                        "Портал тормозит", f"m-{ticket}", when)  # fmt: skip


A, B, C = (uuid.UUID(int=i) for i in (0xA, 0xB, 0xC))
SCRIPTS: dict[uuid.UUID, list[tuple[datetime, c.TicketCommand]]] = {
    A: [
        (at(7, 5), opened(A, at(7, 5))),
        (at(7, 10), c.RecordPreflightPassed(A, "performance")),  # enters "" (waiting for routing) at 07:00
        (at(7, 20), c.RouteTicket(A, "box-l1", "l1", "normal", "r")),  # "" -> box-l1 at 07:00
        (at(7, 25), c.AssignTicket(A, "ivan")),  # still in box-l1's backlog: no move
        (at(9, 30), c.ResolveTicket(A, "done", "ivan")),  # exits box-l1 at 09:00
        (at(10, 15), c.ReopenTicket(A, "not fixed", "admin")),  # enters box-l1 again at 10:00
    ],
    B: [
        (at(7, 40), opened(B, at(7, 40))),
        (at(7, 45), c.RecordPreflightPassed(B, "updates")),  # enters "" at 07:00
        (at(8, 5), c.RouteTicket(B, "box-l1", "l1", "high", "r")),  # "" -> box-l1 at 08:00
        (at(8, 50), c.ResolveTicket(B, "updated", "ivan")),  # exits at 08:00
        (at(9, 0), c.CloseTicket(B, "confirmed", "admin")),  # no longer in the backlog: no move, the row goes
    ],
    C: [
        (at(8, 10), opened(C, at(8, 10))),
        (at(8, 12), c.ReferTicket(C, "custom_development", "partners")),  # never in the backlog
    ],
}
EXPECTED = {  # (queue, hour) -> (entered, exited)
    ("", hour(7)): (2, 1),
    ("", hour(8)): (0, 1),
    ("box-l1", hour(7)): (1, 0),
    ("box-l1", hour(8)): (1, 1),
    ("box-l1", hour(9)): (0, 1),
    ("box-l1", hour(10)): (1, 0),
}


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_store(pg_dsn: str) -> AsyncIterator[EventStore]:
    """A database of its own per test: each test appends the same tickets in another order."""
    name = unique_name("tf_hist")
    await create_database(pg_dsn, name)
    pool = await migrated_pool(str(dsn_with_database(pg_dsn, name)))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()
        server = await asyncpg.connect(pg_dsn)
        try:
            await drop_database(server, name)
        finally:
            await server.close()


async def rows(store: EventStore) -> dict[tuple[str, datetime], tuple[int, int]]:
    found = await store.pool.fetch("SELECT queue_id, hour, entered, exited FROM backlog_hours WHERE desk_id = $1", DESK)
    return {(r["queue_id"], r["hour"]): (r["entered"], r["exited"]) for r in found}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_hours_come_from_the_events_times_whatever_the_interleaving_batch_or_rebuild(
    fresh_store: EventStore, seed: int
) -> None:
    rng = random.Random(seed)
    queues = {ticket: ticket_steps(ticket, script) for ticket, script in SCRIPTS.items()}
    log: list[Step] = []
    while any(queues.values()):  # each ticket's events in order, tickets interleaved at random
        ticket = rng.choice([t for t, left in queues.items() if left])
        log.append(queues[ticket].pop(0))
    await append_steps(fresh_store, log, {})
    await Projector(fresh_store, DESKS, batch_size=rng.randint(1, 7)).catch_up()

    assert await rows(fresh_store) == EXPECTED  # the events' hours (two weeks before this test runs), not now
    # The backlog at the end of each hour: A waits in box-l1 after being reopened, nothing else.
    level, levels = {"": 0, "box-l1": 0}, []
    for h in range(7, 11):
        for queue in level:
            came, went = EXPECTED.get((queue, hour(h)), (0, 0))
            level[queue] += came - went
        levels.append(dict(level))
    assert levels[-1] == {"": 0, "box-l1": 1}
    kept = await fresh_store.pool.fetch("SELECT ticket_id, status FROM backlog_history_tickets ORDER BY ticket_id")
    assert [(r["ticket_id"], r["status"]) for r in kept] == [(A, "in_progress"), (C, "referred")]  # B closed: gone

    [report] = await rebuild(fresh_store.pool, DESKS, ["backlog_history"], batch_size=2)
    assert report.applied == await fresh_store.count()
    assert await rows(fresh_store) == EXPECTED


async def test_a_rebuild_later_gives_the_same_rows_as_projecting_live(fresh_store: EventStore) -> None:
    """Events appended over a long history: the live projection and a rebuild (days of wall clock apart, in
    effect: nothing in a row depends on when it is projected) agree row for row."""
    steps = []
    for n in range(40):
        ticket = uuid.UUID(int=0x100 + n)
        start = MONDAY + timedelta(minutes=37 * n)
        script: list[tuple[datetime, c.TicketCommand]] = [
            (start, opened(ticket, start)),
            (start + timedelta(minutes=3), c.RecordPreflightPassed(ticket, "performance")),
            (start + timedelta(minutes=50), c.RouteTicket(ticket, ("box-l1", "box-l2")[n % 2], "l1", "normal", "r")),
        ]
        if n % 3:
            script.append((start + timedelta(hours=5 + n % 4), c.ResolveTicket(ticket, "done", "ivan")))
        steps += ticket_steps(ticket, script)
    steps.sort(key=lambda s: s.at)
    await append_steps(fresh_store, steps, {})
    await Projector(fresh_store, DESKS, batch_size=13).catch_up()
    live = await rows(fresh_store)
    entered = sum(e for e, _ in live.values())
    exited = sum(x for _, x in live.values())
    waiting = await fresh_store.pool.fetchval(
        "SELECT count(*) FROM queue_backlog WHERE status IN ('ready', 'routed', 'assigned', 'in_progress', "
        "'waiting_on_customer')"
    )
    assert entered - exited == waiting == 40 - len([n for n in range(40) if n % 3])  # agrees with queue_backlog
    await rebuild(fresh_store.pool, DESKS, ["backlog_history"])
    assert await rows(fresh_store) == live
