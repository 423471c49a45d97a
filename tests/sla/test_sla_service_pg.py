"""The SLA engine on the real PostgreSQL event store, fed envelope bytes as Kafka would, on a manual
clock: firings, exactly-once appends, restart from a checkpoint, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from msgspec.structs import replace
from prometheus_client import REGISTRY
from sla_builders import FakeRules, customer, opened, passed, reopened, replied, resolved
from sla_clock import ManualClock
from sla_records import DownStore, Ticket, count_of, firing_counts
from support.eventstore import migrated_pool
from support.polling import eventually

from ticketflow.contracts import ticket_events as te
from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters import checkpoints
from ticketflow.sla.adapters.checkpoints import PartitionCheckpoints
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import Batch, SlaEngine

pytestmark = pytest.mark.pg
B = 1_750_000_000  # epoch seconds; the always-open calendar and second-sized targets of FakeRules
FIRINGS_PER_TICKET = 8  # first response and resolution: 3 warnings + breach each


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(pg_database)
    yield pool
    await pool.close()


def make_engine(pool: asyncpg.Pool, clock: ManualClock) -> SlaEngine:
    return SlaEngine(FakeRules(), SlaWriter(EventStore(pool)), clock)


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.01)


def lifecycle(tickets: list[Ticket], at: int) -> list[bytes]:
    return [t.envelope(event, at) for t in tickets for event in (opened(t.ticket_id, "d", "t"), passed(t.ticket_id))]


async def test_timers_fire_every_level_once_on_the_manual_clock(pool: asyncpg.Pool) -> None:
    clock = ManualClock(B * 1000)
    engine = make_engine(pool, clock)
    await engine.assign(0, 0, {}, 0)
    runner = asyncio.create_task(engine.loop.run())
    tickets = [Ticket() for _ in range(20)]
    values = lifecycle(tickets, B)
    assert await engine.handle(0, list(range(len(values))), values) == []
    assert engine.timers() == 40  # first response + resolution per ticket
    for second in range(1, 60):
        clock.advance_to((B + second) * 1000)
        await settle(3)
    engine.loop.stop()
    await runner
    await engine.drain()  # warnings and breaches are decided at once and stored by the append queue
    counts = await firing_counts(pool, tickets)
    assert len(counts) == 20 * FIRINGS_PER_TICKET and set(counts.values()) == {1}
    assert engine.timers() == 0 and engine.stats.dead_letters == 0
    # A second engine deciding the same records again appends nothing new (deterministic ids).
    again = make_engine(pool, ManualClock((B + 100) * 1000))
    await again.assign(0, 0, {}, len(values))
    await again.handle(0, list(range(len(values))), values)
    await again.go_live(again.partitions[0])
    assert again.writer.appended == 0 and again.writer.duplicates > 0
    assert again.writer.fallbacks > 0  # the bulk append refused the replayed ids; append_many explained them
    assert await firing_counts(pool, tickets) == counts


def sla_metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_the_metrics_count_live_timers_warnings_breaches_and_firing_lateness(pool: asyncpg.Pool) -> None:
    names = ("warnings_total", "breaches_total", "firing_lateness_seconds_count", "firing_lateness_seconds_sum")
    before = {name: sla_metric(f"ticketflow_sla_{name}") for name in names}

    def added(name: str) -> float:
        return sla_metric(f"ticketflow_sla_{name}") - before[name]

    clock = ManualClock(B * 1000)
    engine = make_engine(pool, clock)
    await engine.assign(0, 0, {}, 0)
    runner = asyncio.create_task(engine.loop.run())
    tickets = [Ticket() for _ in range(5)]
    values = lifecycle(tickets, B)
    assert await engine.handle(0, list(range(len(values))), values) == []
    assert sla_metric("ticketflow_sla_timers_live") == 10  # this engine's wheel: 2 clocks per ticket
    clock.advance_to((B + 59) * 1000)  # every level is due at once, up to 59 s late
    await eventually(lambda: engine.timers() == 0, "every timer fired")
    engine.loop.stop()
    await runner
    await engine.drain()
    assert sla_metric("ticketflow_sla_timers_live") == 0
    # FakeRules: 3 warnings and a breach for each of the 2 targets of each ticket.
    assert added("warnings_total") == 5 * 6 and added("breaches_total") == 5 * 2
    assert added("firing_lateness_seconds_count") >= 1  # once per fired batch
    assert added("firing_lateness_seconds_sum") > 0  # the earliest level fell due well before the clock jumped
    assert len(await firing_counts(pool, tickets)) == 5 * FIRINGS_PER_TICKET


async def test_restart_from_a_checkpoint_fires_what_fell_due_once_and_nothing_twice(pool: asyncpg.Pool) -> None:
    clock = ManualClock(B * 1000)
    first = make_engine(pool, clock)
    await first.assign(3, 0, {}, 0)
    runner = asyncio.create_task(first.loop.run())
    tickets = [Ticket() for _ in range(10)]
    values = lifecycle(tickets, B)
    await first.handle(3, list(range(len(values))), values)
    taken = first.snapshot_of(3)
    assert taken is not None and taken.removed == set()
    offset = taken.next_offset
    await checkpoints.save(pool, "t", 3, *taken)
    # After the checkpoint: replies for half the tickets, and some warnings fire (5 s of 10 s).
    later = [t.envelope(replied(t.ticket_id), B + 4) for t in tickets[:5]]
    await first.handle(3, list(range(offset, offset + 5)), later)
    clock.advance_to((B + 6) * 1000)
    await settle()
    first.loop.stop()
    await runner
    await first.drain()
    before_crash = await firing_counts(pool, tickets)
    assert before_crash  # something fired before the "crash"
    # Crash: the engine is gone. The next owner starts at the checkpoint 60 s later (all deadlines past).
    clock2 = ManualClock((B + 60) * 1000)
    second = make_engine(pool, clock2)
    saved = await checkpoints.load(pool, "t", 3)
    assert saved is not None and saved[0] == offset
    await second.assign(3, saved[0], saved[1], offset + 5)
    assert second.timers() == 0  # not live before the replay reached the end seen at assignment
    runner2 = asyncio.create_task(second.loop.run())
    await second.handle(3, list(range(offset, offset + 5)), later)
    await settle()
    second.loop.stop()
    await runner2
    await second.drain()
    counts = await firing_counts(pool, tickets)
    assert set(counts.values()) == {1}
    # Replied tickets: first-response firings up to the reply (second 4: the 0.5 warning at 5 s did not fire).
    replied_streams = {f"sla-{t.ticket_id}" for t in tickets[:5]}
    for t in tickets:
        stream = f"sla-{t.ticket_id}"
        first_response = {lvl for (s, target, lvl), _ in counts.items() if s == stream and target == "first_response"}
        resolution = {lvl for (s, target, lvl), _ in counts.items() if s == stream and target == "resolution"}
        assert resolution == {"0.5", "0.75", "0.9", "breach"}
        assert first_response == (set() if stream in replied_streams else {"0.5", "0.75", "0.9", "breach"})


async def test_wrong_input_is_dead_lettered_and_nothing_crashes(pool: asyncpg.Pool) -> None:
    engine = make_engine(pool, ManualClock(B * 1000))
    await engine.assign(1, 0, {}, 0)
    ghost, unknown_desk, gappy = Ticket(), Ticket(), Ticket()
    records = [
        b"{not json",
        ghost.envelope(replied(ghost.ticket_id), B),
        unknown_desk.envelope(opened(unknown_desk.ticket_id, "nowhere", "t"), B),
        gappy.envelope(opened(gappy.ticket_id, "d", "t"), B),
    ]
    gappy.version += 3  # three lifecycle events never arrived
    records.append(gappy.envelope(passed(gappy.ticket_id), B))
    records.append(gappy.envelope(customer(gappy.ticket_id), B + 1))
    rejected = await engine.handle(1, list(range(len(records))), records)
    assert [(r.partition, r.index, r.reason) for r in rejected] == [
        (1, 0, "undecodable"), (1, 1, "rejected"), (1, 2, "rejected"), (1, 4, "out of order"),
    ]  # fmt: skip
    assert rejected[1].detail == "AgentReplied for an unknown ticket"
    assert "nowhere" in rejected[2].detail
    assert rejected[3].detail.startswith("ticket stream version 5 after 1")
    assert engine.timers() == 2 and engine.stats.dead_letters == 4  # the out-of-order event was still applied


async def test_a_stale_stream_version_is_repaired_without_duplicates(pool: asyncpg.Pool) -> None:
    engine = make_engine(pool, ManualClock(B * 1000))
    await engine.assign(2, 0, {}, 0)
    t = Ticket()
    await engine.handle(2, [0, 1], lifecycle([t], B))
    stale = engine.partitions[2].tickets[t.ticket_id]
    closing = [t.envelope(te.TicketClosed(t.ticket_id, "done", "agent"), B + 1)]
    await engine.handle(2, [2], closing)
    # A second owner restored from before the close (older SLA head) replays it: nothing is written twice.
    other = make_engine(pool, ManualClock(B * 1000))
    await other.assign(2, 2, {t.ticket_id: stale}, 3)
    await other.handle(2, [2], closing)
    assert other.writer.appended == 0 and await count_of(pool, "SlaClockCancelled", t) == 2
    assert other.writer.fallbacks == 1  # the bulk append refused the replay (stale head): nothing half-written


async def test_a_stream_head_ahead_of_the_store_is_repaired_and_the_event_stored(pool: asyncpg.Pool) -> None:
    """Issue 21 (tests/chaos, PostgreSQL stopped): a kept state can claim a newer SLA head than the store
    holds: a checkpoint is cut with the optimistic head (every queued event counted), and the writer then
    stores fewer (a firing found already stored under another deadline is skipped). Restored from such a
    checkpoint, every append conflicted, the newer events read were none, and after 5 conflicts the
    writer dropped the event: here the SlaMet of a reply, leaving the clock neither met nor breached."""
    engine = make_engine(pool, ManualClock(B * 1000))
    await engine.assign(4, 0, {}, 0)
    t = Ticket()
    await engine.handle(4, [0, 1], lifecycle([t], B))
    kept = engine.partitions[4].tickets[t.ticket_id]
    ahead = replace(kept, sla_version=kept.sla_version + 2)  # two events the store never got
    restored = make_engine(pool, ManualClock(B * 1000))
    await restored.assign(4, 2, {t.ticket_id: ahead}, 3)
    await restored.handle(4, [2], [t.envelope(replied(t.ticket_id), B + 1)])
    assert await count_of(pool, "SlaMet", t) == 1
    assert restored.partitions[4].tickets[t.ticket_id].sla_version == await pool.fetchval(
        "SELECT max(stream_version) FROM events WHERE stream_id = $1", f"sla-{t.ticket_id}"
    )  # the kept head is the store's again: the next append does not conflict


async def test_incremental_checkpoints_add_up_to_the_whole_partition(pool: asyncpg.Pool) -> None:
    engine = make_engine(pool, ManualClock(B * 1000))
    await engine.assign(7, 0, {}, 0)
    first, second, third = Ticket(), Ticket(), Ticket()
    await engine.handle(7, list(range(4)), lifecycle([first, second], B))
    taken = engine.snapshot_of(7)
    assert taken is not None and set(taken[1]) == {first.ticket_id, second.ticket_id}
    await checkpoints.save(pool, "inc", 7, *taken)
    later = [second.envelope(replied(second.ticket_id), B + 1), *lifecycle([third], B + 1)]
    await engine.handle(7, [4, 5, 6], later)
    taken = engine.snapshot_of(7)
    assert taken is not None and set(taken[1]) == {second.ticket_id, third.ticket_id}  # only what changed
    await checkpoints.save(pool, "inc", 7, *taken)
    assert engine.snapshot_of(7) is None  # nothing moved since
    loaded = await checkpoints.load(pool, "inc", 7)
    assert loaded is not None and (loaded.next_offset, loaded.tickets) == (7, engine.partitions[7].tickets)


async def test_finished_tickets_are_pruned_from_memory_timers_and_checkpoints_resolved_ones_stay(
    pool: asyncpg.Pool,
) -> None:
    """Given 30 tickets with running clocks and 5 opened ones, checkpointed; when 10 are resolved and
    closed, 5 marked duplicates and the 5 opened ones refused, then those 20 leave the partition's
    states, slots, timers and checkpoint rows; 10 resolved tickets stay, and a reopen still resumes."""
    engine = make_engine(pool, ManualClock(B * 1000))
    await engine.assign(5, 0, {}, 0)
    tickets = [Ticket() for _ in range(30)]
    values = lifecycle(tickets, B)
    refused = [Ticket() for _ in range(5)]
    values += [t.envelope(opened(t.ticket_id, "d", "t"), B) for t in refused]
    offset = len(values)
    await engine.handle(5, list(range(offset)), values)
    part = engine.partitions[5]
    assert len(part.tickets) == 35 and engine.timers() == 60
    taken = engine.snapshot_of(5)
    assert taken is not None
    await checkpoints.save(pool, "prune", 5, *taken)
    rows_before = await pool.fetchval("SELECT count(*) FROM sla_ticket_states WHERE topic = 'prune'")
    closing, to_close, to_merge, to_resolve = [], tickets[:10], tickets[10:15], tickets[15:25]
    for t in to_close:
        closing += [(t, resolved(t.ticket_id)), (t, te.TicketClosed(t.ticket_id, "done", "agent"))]
    for t in to_merge:
        closing.append((t, te.DuplicateSuspected(t.ticket_id, tickets[-1].ticket_id, 0.97)))
    for t in to_resolve:
        closing.append((t, resolved(t.ticket_id)))
    for t in refused:
        closing.append((t, te.TicketRefused(t.ticket_id, "not_eligible", "no")))
    records = [t.envelope(event, B + 1) for t, event in closing]
    await engine.handle(5, list(range(offset, offset + len(records))), records)
    offset += len(records)
    # Memory: only the 15 unfinished tickets are left (10 resolved + 5 running), with their timers.
    assert len(part.tickets) == 15 and len(part.slots) == 15 and len(part.free) == 15  # refused: never had a slot
    assert engine.timers() == 10  # 5 running tickets x 2 clocks; resolved ones have none
    taken = engine.snapshot_of(5)
    assert taken is not None and len(taken[2]) == 20  # 20 rows to drop
    await checkpoints.save(pool, "prune", 5, *taken)
    rows_after = await pool.fetchval("SELECT count(*) FROM sla_ticket_states WHERE topic = 'prune'")
    assert (rows_before, rows_after) == (35, 15)
    loaded = await checkpoints.load(pool, "prune", 5)
    assert loaded is not None and loaded[1] == part.tickets
    # Their final SLA events were stored: 2 cancellations per merged ticket, 2 met per closed one.
    assert [await count_of(pool, "SlaClockCancelled", t) for t in to_merge] == [2] * 5
    assert [await count_of(pool, "SlaMet", t) for t in to_close] == [2] * 10
    # A resolved ticket is not pruned: the reopen resumes resolution and re-arms its timer.
    again = to_resolve[0]
    reopen = [again.envelope(reopened(again.ticket_id), B + 2)]
    await engine.handle(5, [offset], reopen)
    assert await count_of(pool, "SlaClockResumed", again) == 1 and engine.timers() == 11
    # A new ticket reuses a freed slot.
    fresh = Ticket()
    await engine.handle(5, [offset + 1, offset + 2], lifecycle([fresh], B + 3))
    assert len(part.free) == 14 and engine.timers() == 13 and engine.stats.dead_letters == 0
    await engine.close()


async def test_timers_are_armed_before_the_append_but_no_checkpoint_runs_ahead_of_the_store(pool: asyncpg.Pool) -> None:
    """Given the store goes down, when a poll is decided, then its timers are armed at once, the
    failed append poisons the engine (the consumer must restart from its checkpoint), and the
    checkpoint taken after the poll is never written: the one before it stays the truth."""
    saved = PartitionCheckpoints(pool, "down")
    engine = SlaEngine(FakeRules(), DownStore(EventStore(pool)), ManualClock(B * 1000), saved)
    await engine.assign(4, 0, {}, 0)
    await checkpoints.save(pool, "down", 4, 0, {})
    tickets = [Ticket() for _ in range(3)]
    values = lifecycle(tickets, B)
    await engine.handle_many([Batch(4, list(range(len(values))), values)])
    assert engine.timers() == 6  # armed before the store answered
    with pytest.raises(RuntimeError, match="restart from its checkpoint"):
        await engine.checkpoint(4)
    saved_before = await checkpoints.load(pool, "down", 4)
    assert saved_before is not None and saved_before[:3] == (0, {}, "")  # not moved past what is stored
    assert engine.failed is not None  # the consumer gives this engine up
    with pytest.raises(RuntimeError, match="restart from its checkpoint"):
        await engine.handle_many([Batch(4, [len(values)], [tickets[0].envelope(replied(tickets[0].ticket_id), B)])])
    assert await firing_counts(pool, tickets) == {} and await count_of(pool, "SlaClockStarted", tickets[0]) == 0
    await engine.close()
