"""A restore arms the timers each checkpoint row stored for its state (one vectorised wheel call),
exactly as deriving them from the states would; rows without them, states the replay changed, and a
changed desk configuration are derived, and their timers stored again at the next checkpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sla_builders import FakeRules, customer, opened, passed, replied, waiting
from sla_clock import ManualClock
from sla_records import Ticket
from support.eventstore import migrated_pool

from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters import checkpoints
from ticketflow.sla.adapters.checkpoints import UNKNOWN, PartitionCheckpoints
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine

pytestmark = pytest.mark.pg
B = 1_750_000_000


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await migrated_pool(pg_database)
    yield created
    await created.close()


def derived_by(engine: SlaEngine) -> list[uuid.UUID]:
    """The tickets whose timers `engine` derives from their state from now on (`_sync`, spied on)."""
    derived: list[uuid.UUID] = []
    sync = engine._sync

    def spied(part: Any, ticket: uuid.UUID, state: Any, *args: Any) -> None:
        derived.append(ticket)
        sync(part, ticket, state, *args)

    setattr(engine, "_sync", spied)  # noqa: B010 - a spy on an instance
    return derived


def engine_on(pool: asyncpg.Pool, topic: str, rules: Any, at: int = B) -> SlaEngine:
    return SlaEngine(rules, SlaWriter(EventStore(pool)), ManualClock(at * 1000), PartitionCheckpoints(pool, topic))


def timers_of(engine: SlaEngine, partition: int) -> dict[uuid.UUID, set[tuple[int, int, int]]]:
    """Per ticket: (target index, level, due) of every armed timer, whatever its slot."""
    part = engine.partitions[partition]
    found: dict[uuid.UUID, set[tuple[int, int, int]]] = {}
    for (slot, kind), (handle, level, due) in part.armed.items():
        ticket = part.ids[slot]
        assert ticket is not None and engine.wheel._slots.is_live(handle)
        found.setdefault(ticket, set()).add((kind, level, due))
    return found


async def lived_partition(pool: asyncpg.Pool, topic: str, rules: Any) -> tuple[SlaEngine, list[Ticket], int]:
    """A live partition of tickets in different places (clocks running, first response met, waiting,
    not yet past preflight), checkpointed with its timers; returns the engine, tickets and offset."""
    engine = engine_on(pool, topic, rules)
    await engine.assign(0, 0, {}, 0)
    tickets = [Ticket() for _ in range(40)]
    values = []
    for n, t in enumerate(tickets):
        values.append(t.envelope(opened(t.ticket_id, "d", "t"), B))
        if n % 10 != 9:  # every tenth stays before preflight: no clock, no timer
            values.append(t.envelope(passed(t.ticket_id), B + n % 7))
        if n % 10 in (1, 2):
            values.append(t.envelope(replied(t.ticket_id), B + 3))
        if n % 10 == 2:
            values.append(t.envelope(waiting(t.ticket_id), B + 4))
    await engine.handle(0, list(range(len(values))), values)
    assert engine.timers() > 0
    await engine.checkpoint(0)
    return engine, tickets, len(values)


async def test_a_restore_arms_the_stored_timers_as_deriving_them_would(pool: asyncpg.Pool) -> None:
    rules = FakeRules()
    first, tickets, offset = await lived_partition(pool, "stored", rules)
    stored = await pool.fetchval("SELECT count(*) FROM sla_ticket_states WHERE topic = 'stored' AND timers IS NULL")
    assert stored == 0  # every row of a live partition carries its timers
    second = engine_on(pool, "stored", rules)
    derived = derived_by(second)
    assert await second.restore(0, 0, offset) == offset  # nothing to replay: live at once
    assert derived == []  # no ticket's timers derived: all armed as stored
    assert timers_of(second, 0) == timers_of(first, 0) and second.timers() == first.timers()
    assert second.snapshot_of(0) is None  # nothing to store again
    # The same rows without their timers (as before migration 0006) are derived, and stored again.
    saved = await checkpoints.load(pool, "stored", 0)
    assert saved is not None
    third = engine_on(pool, "stored", rules)
    derived = derived_by(third)
    await third.assign(0, offset, saved.tickets, offset, saved.configuration, saved.timers.copy() * 0 + UNKNOWN)
    assert len(derived) == len(tickets) and timers_of(third, 0) == timers_of(first, 0)
    taken = third.snapshot_of(0)
    assert taken is not None and set(taken.timers) == {t.ticket_id for t in tickets}
    for engine in (first, second, third):
        await engine.close()


async def test_a_state_the_replay_changed_is_armed_from_its_new_state(pool: asyncpg.Pool) -> None:
    rules = FakeRules()
    first, tickets, offset = await lived_partition(pool, "replayed", rules)
    answered, customer_wrote = tickets[0], tickets[3]
    later = [answered.envelope(replied(answered.ticket_id), B + 5),
             customer_wrote.envelope(replied(customer_wrote.ticket_id), B + 5),
             customer_wrote.envelope(customer(customer_wrote.ticket_id), B + 6)]  # fmt: skip
    await first.handle(0, [offset, offset + 1, offset + 2], later)  # decided after the checkpoint
    second = engine_on(pool, "replayed", rules)
    derived = derived_by(second)
    await second.restore(0, 0, offset + 3)  # replays the three records, then goes live
    await second.handle(0, [offset, offset + 1, offset + 2], later)
    assert sorted(derived) == sorted([answered.ticket_id, customer_wrote.ticket_id])  # the other 38: as stored
    assert timers_of(second, 0) == timers_of(first, 0)
    taken = second.snapshot_of(0)
    assert taken is not None and set(taken.timers) == {answered.ticket_id, customer_wrote.ticket_id}
    for engine in (first, second):
        await engine.close()


async def test_under_a_changed_configuration_only_timers_that_moved_are_stored_again(pool: asyncpg.Pool) -> None:
    """A ladder change moves no target (no state is recalculated) but moves the timers of every running
    clock: those tickets' rows are stored again, the others (waiting, before preflight) are not."""
    rules = FakeRules()
    first, tickets, offset = await lived_partition(pool, "changed", rules)
    await first.close()
    rules.warnings = (0.6, 0.75, 0.9)
    second = engine_on(pool, "changed", rules)
    await second.restore(0, 0, offset)
    saved = await checkpoints.load(pool, "changed", 0)
    assert saved is not None
    derived = engine_on(pool, "changed-derived", rules)
    await derived.assign(0, offset, saved.tickets, offset, saved.configuration)  # derived, as before
    assert timers_of(second, 0) == timers_of(derived, 0)
    taken = second.snapshot_of(0)
    assert taken is not None and taken.configuration == rules.fingerprint()
    running = {t.ticket_id for n, t in enumerate(tickets) if n % 10 not in (2, 9)}
    assert set(taken.changed) == set(taken.timers) == running
    for engine in (second, derived):
        await engine.close()
