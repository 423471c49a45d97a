"""On the real PostgreSQL: calendar versions stored and loaded back (a configuration changed since
still finds the calendar the clocks counted in), and the engine's timers, checkpoint and pruning for
a ticket moved out of and into SLA."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from msgspec.structs import replace
from sla_builders import BOX, FakeRules, opened, passed, replied, ts, waiting
from sla_clock import ManualClock
from sla_records import Ticket, count_of
from support.eventstore import migrated_pool

from ticketflow.contracts import ticket_events as te
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.deskconfig.model import WeeklyHours
from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters import calendar_versions, checkpoints
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine

pytestmark = pytest.mark.pg
B = 1_750_000_000


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(pg_database)
    yield pool
    await pool.close()


def around_the_clock(registry: DeskRegistry) -> DeskRegistry:
    desk = registry.desk(BOX)
    all_day = WeeklyHours(**{day: ("00:00-24:00",) for day in WeeklyHours.__struct_fields__})
    calendars = tuple(replace(c, weekly=all_day, holiday_country=None) for c in desk.calendars)
    return DeskRegistry({**registry.desks, BOX: replace(desk, calendars=calendars)})


async def test_calendar_versions_stored_by_one_run_are_found_by_the_next_on_a_changed_configuration(
    pool: asyncpg.Pool,
) -> None:
    # Given a run on the packaged configuration that stored its calendar versions (twice: idempotent);
    first = DeskRules(load_desks())
    before = first.calendar_version(BOX, "box")
    await calendar_versions.save(pool, first.definitions())
    await calendar_versions.save(pool, first.definitions())
    stored = await calendar_versions.load(pool)
    assert stored == first.definitions() and before in stored
    # when the next run starts on a changed configuration (the box calendar is now 24/7),
    changed = around_the_clock(load_desks())
    second = DeskRules(changed, await calendar_versions.load(pool))
    await calendar_versions.save(pool, second.definitions())
    # then the old version is still there, built as it was (closed Tuesday 20:00 MSK, open at 11:00),
    old = second.calendar_of_version(before)
    assert old is not None and not old.is_open_ts(ts(2025, 3, 4, 20)) and old.is_open_ts(ts(2025, 3, 4, 11))
    # and the new one is stored next to it.
    after = second.calendar_version(BOX, "box")
    assert after != before and {before, after} <= set(await calendar_versions.load(pool))
    assert await pool.fetchval("SELECT count(*) FROM sla_calendar_versions WHERE version = $1", before) == 1


async def test_the_engine_arms_timers_when_an_excluded_ticket_moves_into_sla_and_drops_them_when_it_leaves(
    pool: asyncpg.Pool,
) -> None:
    rules = FakeRules(queue_tracks={"sla-q": "t", "free-q": "client"})
    engine = SlaEngine(rules, SlaWriter(EventStore(pool)), ManualClock(B * 1000))
    await engine.assign(0, 0, {}, 0)
    t = Ticket()
    offset = 0

    async def feed(event: te.TicketEvent, at: int) -> None:
        nonlocal offset
        await engine.handle(0, [offset], [t.envelope(event, at)])
        offset += 1

    def routed(queue: str) -> te.TicketRouted:
        return te.TicketRouted(t.ticket_id, queue, "l1", "normal", "r", "test")

    # Given a client-support ticket (no SLA): excluded, no timers;
    await feed(opened(t.ticket_id, "d", "client"), B)
    await feed(passed(t.ticket_id), B)
    part = engine.partitions[0]
    assert part.tickets[t.ticket_id].status == "excluded" and engine.timers() == 0
    await feed(replied(t.ticket_id), B + 1)
    # when routed to an SLA queue, then resolution starts (first response: an agent replied) and is armed;
    await feed(routed("sla-q"), B + 2)
    assert part.tickets[t.ticket_id].status == "active" and engine.timers() == 1
    # the checkpoint keeps what the exclusion remembered;
    await feed(waiting(t.ticket_id), B + 3)
    await feed(routed("free-q"), B + 4)
    state = part.tickets[t.ticket_id]
    assert (state.status, state.held, state.replied) == ("excluded", "waiting", True) and engine.timers() == 0
    taken = engine.snapshot_of(0)
    assert taken is not None
    await engine.drain()
    await checkpoints.save(pool, "exclusion", 0, *taken)
    loaded = await checkpoints.load(pool, "exclusion", 0)
    assert loaded is not None and loaded[1][t.ticket_id] == state
    # and a terminal event closes the excluded ticket: pruned like any finished one.
    await feed(te.TicketClosed(t.ticket_id, "done", "agent"), B + 5)
    assert t.ticket_id not in part.tickets and t.ticket_id in part.removed
    await engine.drain()
    assert await count_of(pool, "SlaClockStarted", t) == 1
    assert await count_of(pool, "SlaClockCancelled", t) == 1
    await engine.close()
