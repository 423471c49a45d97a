"""The SLA consumer through the real broker: end to end from the store through the relay, two instances
splitting partitions and taking over, and kill -9 under load (the consumer as a real process)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sla_builders import FakeRules, opened, passed, replied
from sla_consumers import consumer_for
from sla_records import Ticket, firing_counts
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.relay import relay_from_now

from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer

pytestmark = [pytest.mark.kafka, pytest.mark.pg]
WORKER = Path(__file__).parent / "sla_worker.py"
LEVELS = {"0.5", "0.75", "0.9", "breach"}


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(pg_database)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def broker(kafka_bootstrap: str) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    yield broker
    await broker.stop()


async def wait_for(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def produce(bootstrap: str, topic: str, tickets: list[Ticket], at: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for t in tickets:
            for event in (opened(t.ticket_id, "d", "t"), passed(t.ticket_id)):
                await producer.send(topic, t.envelope(event, at), key=t.key)
        await producer.flush()
    finally:
        await producer.stop()


def complete(counts: dict[tuple[str, str, str], int], tickets: list[Ticket], targets: tuple[str, ...]) -> bool:
    return all(
        (f"sla-{t.ticket_id}", target, level) in counts for t in tickets for target in targets for level in LEVELS
    )


async def test_end_to_end_from_the_store_through_the_relay_to_warnings_and_breaches(
    pool: asyncpg.Pool, broker: KafkaBroker, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    store = EventStore(pool)
    relay = await relay_from_now(store, kafka_bootstrap, {TICKET_EVENTS: topic}, idle_sleep=0.05)
    tickets = [Ticket() for _ in range(10)]
    now = datetime.now(UTC)
    for t in tickets:
        events = [opened(t.ticket_id, "d", "t"), passed(t.ticket_id)]
        await store.append(ticket_stream(t.ticket_id), 0, [NewEvent(new_event_id(), e, now) for e in events])
    # One ticket gets its reply at once: its first response is met, never warned.
    answered = tickets[0]
    await store.append(
        ticket_stream(answered.ticket_id), 2, [NewEvent(new_event_id(), replied(answered.ticket_id), now)]
    )
    stop = asyncio.Event()
    consumer = consumer_for(broker, pool, topic, FakeRules(first_response=2, resolution=4))
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    try:
        await wait_for(lambda: _complete(pool, tickets[1:], ("first_response", "resolution")), 60, "all firings")
        await asyncio.sleep(1.0)  # the SLA events come back through the relay: nothing more may be written
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    counts = await firing_counts(pool, tickets)
    assert set(counts.values()) == {1}
    assert not any(s == f"sla-{answered.ticket_id}" and target == "first_response" for s, target, _ in counts)
    met = await pool.fetchval("SELECT count(*) FROM events WHERE event_type = 'SlaMet' AND stream_id = $1",
                              f"sla-{answered.ticket_id}")  # fmt: skip
    assert met == 1 and relay.published > 20


async def _complete(pool: asyncpg.Pool, tickets: list[Ticket], targets: tuple[str, ...]) -> bool:
    return complete(await firing_counts(pool, tickets), tickets, targets)


async def test_two_instances_split_the_partitions_and_one_takes_over_when_the_other_stops(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=4)
    rules = FakeRules(first_response=3, resolution=6)
    broker_a, broker_b = KafkaBroker(kafka_bootstrap), KafkaBroker(kafka_bootstrap)  # two instances
    await broker_a.start()
    await broker_b.start()
    a, b = consumer_for(broker_a, pool, topic, rules), consumer_for(broker_b, pool, topic, rules)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a, task_b = asyncio.create_task(a.run(stop_a)), asyncio.create_task(b.run(stop_b))
    try:

        async def split() -> bool:
            if a.current is None or b.current is None:
                return False
            owned_a, owned_b = set(engine_of(a).partitions), set(engine_of(b).partitions)
            return bool(owned_a) and bool(owned_b) and not owned_a & owned_b and owned_a | owned_b == {0, 1, 2, 3}

        await wait_for(split, 40, "the group to split 4 partitions between two instances")
        tickets = [Ticket() for _ in range(40)]
        await produce(kafka_bootstrap, topic, tickets, int(time.time()))
        await wait_for(lambda: _armed(a, b), 20, "timers armed in both instances")
        stop_a.set()  # a leaves: b must own everything and fire a's timers from a's checkpoint
        await task_a
        await wait_for(lambda: _owns_all(b), 40, "b to own all partitions")
        await wait_for(lambda: _complete(pool, tickets, ("first_response", "resolution")), 40, "all firings")
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(task_a, task_b)
        await broker_a.stop()
        await broker_b.stop()
    assert set((await firing_counts(pool, tickets)).values()) == {1}


def engine_of(consumer: SlaConsumer) -> SlaEngine:
    assert consumer.current is not None, "the consumer has not started a round"
    return consumer.current.engine


async def _armed(*consumers: SlaConsumer) -> bool:
    return all(c.current is not None and engine_of(c).timers() > 0 for c in consumers)


async def _owns_all(consumer: SlaConsumer) -> bool:
    engine = engine_of(consumer)
    return set(engine.partitions) == {0, 1, 2, 3} and all(p.live for p in engine.partitions.values())


@pytest.mark.e2e
async def test_kill_9_under_load_then_restart_fires_every_due_timer_once(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    topic = await kafka_topic_factory(partitions=4)
    args = [sys.executable, str(WORKER), kafka_bootstrap, pg_database, topic, "3", "8"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    worker = start()
    tickets: list[Ticket] = []
    try:
        # Load: 50 tickets every 0.25 s; the worker is killed once it has fired something (after 2 s at
        # the earliest, however long its group join takes), and the load goes on 2 s into the outage.
        killed_at = None
        began = time.monotonic()
        while time.monotonic() - began < 60 and (killed_at is None or time.monotonic() - killed_at < 2):
            batch = [Ticket() for _ in range(50)]
            await produce(kafka_bootstrap, topic, batch, int(time.time()))
            tickets += batch
            if killed_at is None and time.monotonic() - began > 2 and await firing_counts(pool, tickets):
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                killed_at = time.monotonic()
            await asyncio.sleep(0.25)
        assert killed_at is not None, "the worker fired nothing before the kill"
        before_restart = await firing_counts(pool, tickets)
        await asyncio.sleep(max(0.0, killed_at + 10 - time.monotonic()))  # every deadline falls in the outage
        worker = start()
        await wait_for(lambda: _complete(pool, tickets, ("first_response", "resolution")), 90, "all firings")
        await asyncio.sleep(2)  # anything fired twice would show up now
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    counts = await firing_counts(pool, tickets)
    assert len(counts) == len(tickets) * 8 and set(counts.values()) == {1}
    assert len(before_restart) < len(counts)  # some firings happened only after the restart
