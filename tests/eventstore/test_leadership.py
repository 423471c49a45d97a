"""The leader lock with its fencing epoch (ticketflow.eventstore.leadership), on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ticketflow.eventstore.leadership import Leadership, LeadershipLost

pytestmark = pytest.mark.pg


async def fenced_write(pool: asyncpg.Pool, leadership: Leadership) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await leadership.fence(conn)


async def test_one_leader_at_a_time_and_the_next_one_fences_the_old(pool: asyncpg.Pool, pg_database: str) -> None:
    first = Leadership(pool, "lock-test", pg_database, "first")
    second = Leadership(pool, "lock-test", pg_database, "second")
    assert await first.try_acquire() and first.epoch == 1
    assert not await second.try_acquire() and second.epoch is None
    await fenced_write(pool, first)
    assert await first.still_leading()

    # The first leader's process dies: its session ends, PostgreSQL releases the lock.
    pid = first._conn.get_server_pid()
    await pool.execute("SELECT pg_terminate_backend($1)", pid)
    assert await asyncio.wait_for(second.acquire(poll=0.05), 10)
    assert second.epoch == 2
    assert not await first.still_leading()
    with pytest.raises(LeadershipLost):
        await fenced_write(pool, first)  # a leader that did not notice cannot write any more
    await fenced_write(pool, second)
    holder = await pool.fetchval("SELECT holder FROM service_leaders WHERE name = 'lock-test'")
    assert holder == "second"
    await first.release()
    await second.release()


async def test_a_new_leader_waits_for_writes_the_old_one_already_fenced(pool: asyncpg.Pool, pg_database: str) -> None:
    old, new = Leadership(pool, "fence-test", pg_database, "old"), Leadership(pool, "fence-test", pg_database, "new")
    assert await old.try_acquire()
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await old.fence(conn)  # a write in flight, checked while old still led
        await old.release()
        taking_over = asyncio.create_task(new.try_acquire())
        await asyncio.sleep(0.3)
        assert not taking_over.done()  # the epoch bump waits for the old leader's write to commit
        await transaction.commit()
    assert await asyncio.wait_for(taking_over, 10)
    assert new.epoch == 2
    await new.release()


async def test_stop_ends_the_wait_of_a_stand_by(pool: asyncpg.Pool, pg_database: str) -> None:
    leader, standing_by = Leadership(pool, "stop-test", pg_database), Leadership(pool, "stop-test", pg_database)
    assert await leader.try_acquire()
    stop = asyncio.Event()
    waiting = asyncio.create_task(standing_by.acquire(stop, poll=0.05))
    await asyncio.sleep(0.2)
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False
    await leader.release()
    assert await standing_by.try_acquire()  # released: the next one leads
    await standing_by.release()
