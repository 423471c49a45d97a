"""Issue 18, bad input / failure: a burst of SLA firings stored by the real engine and published by the
relay as a real process, while the relay is killed with SIGKILL mid-batch, the broker is unavailable for
30 s, or PostgreSQL restarts. Each time every firing reaches a `read_committed` consumer (as every
service consumes) exactly once, each SLA stream in version order. The shared broker and PostgreSQL are
never stopped: the outage tests run a private broker (the project's scripts, on other ports) or a
private PostgreSQL cluster (tests/support)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sla_burst import FiringBurst
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.kafka_broker import PrivateKafka
from support.private_postgres import private_postgres
from support.relay import Published, duplicates, out_of_order, read_published
from support.relay_process import RelayProcess

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.timeout(600)]
TICKETS = 3000  # 6,000 firings: many relay batches of 500
FIRINGS = (b"SlaWarning", b"SlaBreached")


@pytest_asyncio.fixture(loop_scope="session")
async def pool(pg_database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await migrated_pool(pg_database)
    yield created
    await created.close()


async def published_once_in_order(pool: asyncpg.Pool, burst: FiringBurst, bootstrap: str, topic: str) -> None:
    """Every firing the store holds for the burst, read once by a read_committed consumer, in order."""
    stored = {
        row["event_id"]
        for row in await pool.fetch(
            "SELECT event_id FROM events WHERE stream_id = ANY($1::text[]) AND event_type = ANY($2::text[])",
            burst.streams,
            [kind.decode() for kind in FIRINGS],
        )
    }
    assert len(stored) == burst.expected  # the store holds each firing once
    records = [r for r in await read_published(bootstrap, topic, burst.expected, settle_s=3) if is_firing(r)]
    assert duplicates(records) == []
    assert out_of_order(records) == []
    assert {r.envelope.event_id for r in records} == stored


def is_firing(record: Published) -> bool:
    return record.headers["event-type"] in FIRINGS


async def test_a_relay_killed_with_sigkill_mid_batch_publishes_every_firing_once_in_order(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """The relay process is SIGKILLed while a batch's records are on the broker and its transaction is
    open (the first process waits a second before each commit, so the kill lands there), and once more
    at an arbitrary moment; each time a new process with the same name takes over."""
    topic = await kafka_topic_factory(partitions=6)
    store, names = EventStore(pool), {TICKET_EVENTS: topic}
    start, name = await store.head(), f"test-relay-{uuid.uuid4().hex[:8]}"
    burst = FiringBurst(pool, TICKETS)
    firing = asyncio.create_task(burst.run())
    relay = RelayProcess(pg_database, kafka_bootstrap, names, start=start, name=name, batch_size=500, commit_delay_s=1)
    relay.start()
    raw = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")  # uncommitted too
    await raw.start()
    try:
        # Mid-batch: more of the burst on the broker (read_uncommitted) than the relay committed.
        on_broker = 0
        async with asyncio.timeout(120):
            while not (relay.published and on_broker > relay.published):
                batches = await raw.getmany(timeout_ms=50)
                on_broker += sum(1 for records in batches.values() for r in records
                                 if dict(r.headers)["event-type"] in FIRINGS)  # fmt: skip
        relay.kill()
        relay = RelayProcess(pg_database, kafka_bootstrap, names, start=start, name=name, batch_size=500).start()
        await relay.wait_published(200)
        relay.kill()  # anywhere
        relay = RelayProcess(pg_database, kafka_bootstrap, names, start=start, name=name, batch_size=500).start()
        await firing
        await published_once_in_order(pool, burst, kafka_bootstrap, topic)
    finally:
        await raw.stop()
        relay.stop()
        firing.cancel()
    everything = await read_published(kafka_bootstrap, topic, burst.expected, settle_s=2, committed=False)
    assert duplicates([r for r in everything if is_firing(r)]), "the killed batch was on the broker (then aborted)"


async def test_a_broker_unavailable_for_30_s_during_a_burst_loses_and_repeats_no_firing(
    pool: asyncpg.Pool, pg_database: str
) -> None:
    """A private broker (the project's scripts, other ports) stops for 30 s while the burst is being
    stored and published; the relay retries until it is back and goes on from its checkpoint."""
    with PrivateKafka() as kafka:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        topic = f"firings-{uuid.uuid4().hex[:8]}"
        await admin.create_topics([NewTopic(topic, 6, 1)])
        await admin.close()
        start = await EventStore(pool).head()
        burst = FiringBurst(pool, TICKETS)
        firing = asyncio.create_task(burst.run())
        relay = RelayProcess(pg_database, kafka.bootstrap, {TICKET_EVENTS: topic}, start=start, batch_size=500,
                             commit_delay_s=0.5)  # fmt: skip
        relay.start()
        try:
            await relay.wait_published(500)  # mid-burst
            await asyncio.to_thread(kafka.stop)
            down_from = asyncio.get_running_loop().time()
            published_while_up = relay.published
            assert published_while_up < burst.expected  # the rest waits for the broker
            await asyncio.sleep(30)
            assert relay.published == published_while_up  # nothing committed while it was away
            await asyncio.to_thread(kafka.start)
            assert asyncio.get_running_loop().time() - down_from >= 30
            await firing
            assert burst.engines == 1  # the store never failed: only publishing waited
            await published_once_in_order(pool, burst, kafka.bootstrap, topic)
        finally:
            relay.stop()
            firing.cancel()


async def test_postgresql_restarted_during_a_burst_loses_and_repeats_no_firing(
    kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    """A private PostgreSQL cluster restarts while the burst's second wave is being appended (held on a
    table lock meanwhile, so the restart surely cuts appends in flight): the engine's append fails and a
    fresh engine decides the firings again (the store keeps each id once); the relay's database session
    ends and it resumes from its checkpoint in Kafka."""
    topic = await kafka_topic_factory(partitions=6)
    with private_postgres() as pg:
        dsn = pg.dsn
        pool = await migrated_pool(dsn)
        burst = FiringBurst(pool, TICKETS)
        firing = asyncio.create_task(burst.run())
        relay = RelayProcess(dsn, kafka_bootstrap, {TICKET_EVENTS: topic}, batch_size=500).start()
        try:
            async with asyncio.timeout(120):  # the first wave stored
                while await burst.stored() < burst.first_wave:  # noqa: ASYNC110 - the store, polled
                    await asyncio.sleep(0.02)
            # Locked before the second wave falls due (5 s later), however slowly the relay starts on a
            # loaded machine: its appends surely wait. The relay's reads go on meanwhile.
            blocker = await asyncpg.connect(dsn)
            await blocker.execute("BEGIN; LOCK TABLE events IN SHARE MODE")
            async with asyncio.timeout(120):  # the relay publishing the first wave
                while not relay.published:  # noqa: ASYNC110 - shared memory, nothing to await
                    await asyncio.sleep(0.02)
            waiting = """SELECT count(*) FROM pg_stat_activity
                         WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'"""
            # Asked on a connection of its own: the waiting appends may hold every connection of the pool.
            watcher = await asyncpg.connect(dsn)
            async with asyncio.timeout(60):
                while not await watcher.fetchval(waiting):  # noqa: ASYNC110 - the second wave's appends, polled
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(pg.stop)  # "fast": ends every session, the waiting appends and the blocker
            await asyncio.to_thread(pg.start)
            blocker.terminate()
            watcher.terminate()
            await firing
            assert burst.engines >= 2  # the restart failed an append: a fresh engine decided again
            await published_once_in_order(pool, burst, kafka_bootstrap, topic)
        finally:
            relay.stop()
            firing.cancel()
            await pool.close()
