"""One writer at a time for a service whose decisions are serial (routing): a leader lock with a
fencing epoch, both in PostgreSQL, where the events go.

- The lock is a session advisory lock held by one dedicated connection (not the pool's) for as long
  as the process leads. A process that dies (even `kill -9`) closes its connection, PostgreSQL releases the lock,
  and a stand-by polling `pg_try_advisory_lock` takes over within one poll interval.
- Each new leader bumps an epoch in `service_leaders`. A writer checks its epoch inside every write
  transaction (`fence`, `SELECT ... FOR SHARE`): a leader that lost the lock without noticing (a
  network partition, a long pause) cannot store anything any more, and a new leader's bump waits
  until writes already checked have committed. Fencing, not only a lock.

    leadership = Leadership(pool, "routing", dsn)
    await leadership.acquire(stop)              # returns once this process leads
    async with pool.acquire() as conn, conn.transaction():
        await leadership.fence(conn)            # raises LeadershipLost once someone else leads
        ...                                     # the writes
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# The table `service_leaders` is created by the event store's migration 0004.
BUMP = """
INSERT INTO service_leaders (name, epoch, holder) VALUES ($1, 1, $2)
ON CONFLICT (name) DO UPDATE SET epoch = service_leaders.epoch + 1, holder = $2, since = now()
RETURNING epoch
"""
CURRENT = "SELECT epoch FROM service_leaders WHERE name = $1 FOR SHARE"


class LeadershipLost(Exception):
    """Another process leads now (or this one's lock connection is gone): stop writing."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(
        hashlib.blake2b(f"ticketflow-leader:{name}".encode(), digest_size=8).digest(), "big", signed=True
    )


class Leadership:
    def __init__(self, pool: asyncpg.Pool, name: str, dsn: str, holder: str | None = None) -> None:
        self.pool = pool  # for `fence` only: writers fence on their own connections
        self.name = name
        self.dsn = dsn
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.epoch: int | None = None
        self._conn: Any = None  # our own session: holds the lock while we lead

    @property
    def leading(self) -> bool:
        return self.epoch is not None and self._conn is not None and not self._conn.is_closed()

    async def try_acquire(self) -> bool:
        """Take the lock if free (then bump the epoch); False when another process holds it."""
        if self.epoch is not None:
            raise RuntimeError(f"{self.name}: already leading (epoch {self.epoch})")
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn)  # kept between polls while standing by
        conn = self._conn
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(self.name)):
                return False
            self.epoch = int(await conn.fetchval(BUMP, self.name, self.holder))
        except BaseException:
            await self.release()  # closing the session releases its advisory locks too
            raise
        log.info("%s: %s leads (epoch %d)", self.name, self.holder, self.epoch)
        return True

    async def acquire(self, stop: asyncio.Event | None = None, poll: float = 1.0) -> bool:
        """Wait until this process leads (True), or until `stop` is set (False)."""
        while not await self.try_acquire():
            if stop is None:
                await asyncio.sleep(poll)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
            if stop.is_set():
                return False
        return True

    async def fence(self, conn: Any) -> None:
        """Inside the caller's write transaction: raise `LeadershipLost` unless we still lead."""
        current = await conn.fetchval(CURRENT, self.name)
        if self.epoch is None or current != self.epoch:
            raise LeadershipLost(f"{self.name}: epoch {current} leads now, not ours ({self.epoch})")

    async def still_leading(self) -> bool:
        """Ping the lock's connection: False once it is gone (the lock went with it)."""
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), 5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError):
            # InternalClientError: a session the server terminated can leave asyncpg's protocol mid-state
            # ("another operation is in progress"; seen without TLS). Any doubt means "not leading".
            return False
        return True

    async def release(self) -> None:
        """Stop leading (or standing by): close our session, which frees the lock."""
        conn, self._conn, self.epoch = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
            if not conn.is_closed():
                conn.terminate()
