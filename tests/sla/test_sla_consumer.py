"""The SLA consumer's partition owner (`consumer.SlaPartitions`) on the real PostgreSQL, with the
consumer's side played by a fake `PartitionControl`: an assigned partition is restored from its
checkpoint and read from there; a poll is decided and its wrong records dead-lettered with their cause;
ticks take caught-up partitions live and write checkpoints (and one last while stopping); a revoked
partition is checkpointed and dropped; a failed append fails the round, and nothing is checkpointed past
what the store holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
from sla_builders import FakeRules, opened, passed, replied
from sla_clock import ManualClock
from sla_records import DownStore, Ticket
from support.eventstore import migrated_pool
from support.polling import eventually
from support.records import FakeRecord, RecordingProducer

from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.owned import PartitionControl
from ticketflow.sla.adapters import checkpoints
from ticketflow.sla.adapters.checkpoints import PartitionCheckpoints
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaPartitions

pytestmark = pytest.mark.pg
B = 1_750_000_000


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await migrated_pool(pg_database)
    yield created
    await created.close()


class FakeControl:
    """What the owner asks of its consumer, answered from dicts; seeks and commits are kept."""

    def __init__(self, beginnings: dict[int, int], ends: dict[int, int]) -> None:
        self.beginnings, self.ends = beginnings, ends
        self.positions: dict[int, int] = {}
        self.seeks: dict[int, int] = {}
        self.commits: dict[int, int] = {}

    def seek(self, partition: int, offset: int) -> None:
        self.seeks[partition] = self.positions[partition] = offset

    async def end_offsets(self, partitions: list[int]) -> dict[int, int]:
        return {p: self.ends[p] for p in partitions}

    async def beginning_offsets(self, partitions: list[int]) -> dict[int, int]:
        return {p: self.beginnings[p] for p in partitions}

    async def position(self, partition: int) -> int:
        return self.positions[partition]

    async def commit(self, partition: int, offset: int) -> None:
        self.commits[partition] = offset


class Owned:
    """An owner on one engine with checkpoints under `topic`, its control and its dead letters."""

    def __init__(self, pool: asyncpg.Pool, topic: str, *, every: float = 3600, writer: Any = None) -> None:
        self.topic = topic
        self.producer = RecordingProducer()
        writer = writer if writer is not None else SlaWriter(EventStore(pool))
        self.engine = SlaEngine(FakeRules(), writer, ManualClock(B * 1000), PartitionCheckpoints(pool, topic))
        self.stop = asyncio.Event()
        dead_letters = DeadLetterWriter(self.producer, "sla")  # type: ignore[arg-type]
        self.owner = SlaPartitions(self.engine, dead_letters, self.stop, checkpoint_every_s=every)
        self.fake = FakeControl({0: 0, 1: 0}, {0: 0, 1: 0})
        self.control = cast(PartitionControl, self.fake)

    def records(self, partition: int, first: int, values: list[bytes | None]) -> dict[int, list[FakeRecord]]:
        key = b"k"
        return {partition: [FakeRecord(self.topic, partition, first + n, key, v) for n, v in enumerate(values)]}

    def dead_letters(self) -> list[DeadLetter]:
        sent = self.producer.sent
        return [DeadLetter.of(FakeRecord(m["topic"], 0, n, m["key"], m["value"], headers=m["headers"]))
                for n, m in enumerate(sent)]  # fmt: skip


def lifecycle(t: Ticket) -> list[bytes | None]:
    return [t.envelope(opened(t.ticket_id, "d", "t"), B), t.envelope(passed(t.ticket_id), B)]


async def test_an_assigned_partition_is_restored_from_its_checkpoint_and_goes_live_once_caught_up(
    pool: asyncpg.Pool,
) -> None:
    # Given partition 0 checkpointed at offset 5 (with a ticket's state) and partition 1 never,
    first = Owned(pool, "owned-restore")
    t = Ticket()
    await first.owner.assigned([0], first.control)
    await first.owner.records(first.records(0, 0, lifecycle(t)), first.control)
    await first.engine.drain()
    kept = dict(first.engine.partitions[0].tickets)
    await first.owner.stopped()
    await checkpoints.save(pool, "owned-restore", 0, 5, kept)
    # when a new owner is assigned both, partition 1's log starting at 3 and partition 0 ending at 7,
    owned = Owned(pool, "owned-restore")
    owned.fake.beginnings, owned.fake.ends = {0: 0, 1: 3}, {0: 7, 1: 3}
    await owned.owner.assigned([0, 1], owned.control)
    # then each is read from its checkpoint (or its log's beginning), partition 0's timers wait for the
    # replay, partition 1 (nothing to replay) is live at once;
    assert owned.fake.seeks == {0: 5, 1: 3}
    assert owned.engine.partitions[0].tickets == kept and owned.engine.replaying() == [0] and owned.engine.timers() == 0
    # and once the consumer's position reaches the end seen at assignment, partition 0 goes live too.
    await owned.owner.tick(owned.control)
    assert owned.engine.replaying() == [0]
    owned.fake.positions[0] = 7
    await owned.owner.tick(owned.control)
    assert owned.engine.replaying() == [] and owned.engine.timers() == 2 and owned.owner.failed is None
    await owned.owner.stopped()
    assert owned.engine.partitions == {} and owned.owner.failed is None


async def test_a_poll_is_decided_and_wrong_records_are_dead_lettered_with_their_cause(pool: asyncpg.Pool) -> None:
    owned = Owned(pool, "owned-poll")
    await owned.owner.assigned([0], owned.control)
    t, ghost = Ticket(), Ticket()
    values = [*lifecycle(t), b"{not json", None, ghost.envelope(replied(ghost.ticket_id), B)]
    polled = owned.records(0, 0, values)
    await owned.owner.records(polled, owned.control)
    await owned.engine.drain()
    assert owned.engine.timers() == 2 and owned.engine.stats.events == 5 and owned.owner.failed is None
    dead = owned.dead_letters()
    assert [(d.reason, d.consumer, d.original_topic, d.original_offset) for d in dead] == [
        ("undecodable", "sla", "owned-poll", 2),
        ("undecodable", "sla", "owned-poll", 3),
        ("rejected", "sla", "owned-poll", 4),
    ]
    assert dead[2].detail == "AgentReplied for an unknown ticket" and dead[0].value == b"{not json"
    assert {m["topic"] for m in owned.producer.sent} == {"owned-poll.dlq"}
    await owned.owner.stopped()


async def test_ticks_checkpoint_when_due_and_once_more_while_stopping_and_commit_the_offsets(
    pool: asyncpg.Pool,
) -> None:
    # Every tick is due (checkpoint_every_s=0): the poll's states and offset are checkpointed and committed.
    due = Owned(pool, "owned-due", every=0)
    await due.owner.assigned([0], due.control)
    t = Ticket()
    await due.owner.records(due.records(0, 0, lifecycle(t)), due.control)
    await due.owner.tick(due.control)
    saved = await checkpoints.load(pool, "owned-due", 0)
    assert saved is not None and saved.next_offset == 2 and set(saved.tickets) == {t.ticket_id}
    assert due.fake.commits == {0: 2} and due.engine.stats.checkpoints == 1
    await due.owner.stopped()
    # Not due for an hour: nothing until the service stops, then one checkpoint while still in the group.
    later = Owned(pool, "owned-stop")
    await later.owner.assigned([0], later.control)
    await later.owner.records(later.records(0, 0, lifecycle(Ticket())), later.control)
    await later.owner.tick(later.control)
    assert await checkpoints.load(pool, "owned-stop", 0) is None and later.fake.commits == {}
    later.stop.set()
    await later.owner.tick(later.control)
    saved = await checkpoints.load(pool, "owned-stop", 0)
    assert saved is not None and saved.next_offset == 2 and later.fake.commits == {0: 2}
    await later.owner.stopped()
    assert later.engine.stats.checkpoints == 1  # nothing moved since: stopping wrote no second one


async def test_a_revoked_partition_is_checkpointed_committed_and_dropped(pool: asyncpg.Pool) -> None:
    owned = Owned(pool, "owned-revoke")
    await owned.owner.assigned([0, 1], owned.control)
    t, u = Ticket(), Ticket()
    await owned.owner.records({**owned.records(0, 0, lifecycle(t)), **owned.records(1, 0, lifecycle(u))}, owned.control)
    await owned.owner.revoked([0])
    saved = await checkpoints.load(pool, "owned-revoke", 0)
    assert saved is not None and set(saved.tickets) == {t.ticket_id} and owned.fake.commits == {0: 2}
    assert set(owned.engine.partitions) == {1} and owned.engine.timers() == 2  # u's timers stay
    await owned.owner.stopped()
    assert await checkpoints.load(pool, "owned-revoke", 1) is not None  # stopping checkpoints the rest


async def test_a_failed_append_fails_the_round_and_nothing_is_checkpointed_past_the_store(pool: asyncpg.Pool) -> None:
    owned = Owned(pool, "owned-down", every=0, writer=DownStore(EventStore(pool)))
    await checkpoints.save(pool, "owned-down", 0, 0, {})
    await owned.owner.assigned([0, 1], owned.control)
    t = Ticket()
    await owned.owner.records(owned.records(0, 0, lifecycle(t)), owned.control)
    assert owned.engine.timers() == 2  # decided and armed; the append fails behind
    await eventually(lambda: owned.engine.failed is not None, "the append to fail")
    await owned.owner.tick(owned.control)
    assert owned.owner.failed is not None  # the round ends: a fresh engine starts from the checkpoints
    await owned.owner.records(owned.records(0, 2, [t.envelope(replied(t.ticket_id), B)]), owned.control)
    assert owned.engine.stats.events == 2  # a failed owner decides nothing more
    await owned.owner.revoked([1])
    await owned.owner.stopped()
    saved = await checkpoints.load(pool, "owned-down", 0)
    assert saved is not None and (saved.next_offset, saved.tickets) == (0, {})
    assert await checkpoints.load(pool, "owned-down", 1) is None
    assert owned.engine.partitions == {} and owned.fake.commits == {}
