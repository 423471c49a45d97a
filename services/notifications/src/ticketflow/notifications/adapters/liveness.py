"""This worker's liveness, for the other workers: a killed process's claims are taken over at once.

A worker (the service, a redrive run) registers its claimant in `notification_workers` and holds the
session-level advisory lock `(7242005, hashtext(claimant))` on a connection of its own for as long as it
runs (migration 0002). When the process dies, PostgreSQL ends that session and the lock is free: the
ledger's claim and `stale()` then take the worker's claims over without waiting for their leases
(`notification_worker_gone`), so a notification service killed mid-burst and restarted finishes what the
dead one held at once, not minutes later.

After a database restart every session is gone, this one too: `keep` notices it within `check_every`
seconds and takes the lock again. Meanwhile another worker may take one of our claims over; that is
safe (every write is guarded by `claimed_by`, a send is bounded by its deadline, shorter than the lease,
and a claim taken over mid-send is in doubt, never sent again blindly), only less economical.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger("ticketflow.notifications")
LOCK_SPACE = 7_242_005  # the first key of the advisory lock; the second is hashtext(claimant)
Connect = Callable[[], Awaitable[asyncpg.Connection]]
AWAY = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

# Registrations of workers that are gone and hold no claim any more are of no use.
_FORGET_GONE = """
DELETE FROM notification_workers w
 WHERE notification_worker_gone(w.claimant)
   AND NOT EXISTS (SELECT FROM notification_deliveries d WHERE d.status = 'sending' AND d.claimed_by = w.claimant)
"""


class Liveness:
    def __init__(self, claimant: str, connect: Connect, *, check_every: float = 2.0) -> None:
        self.claimant = claimant
        self._connect = connect
        self.check_every = check_every
        self._session: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._session is not None and not self._session.is_closed()

    async def start(self) -> None:
        """Register and take the lock (start-up: before the first claim). Raises if the database is away."""
        session = await self._connect()
        try:
            await session.execute(_FORGET_GONE)
            await session.execute(
                "INSERT INTO notification_workers (claimant) VALUES ($1) ON CONFLICT DO NOTHING", self.claimant
            )
            if not await session.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SPACE, self.claimant):
                # Another live worker's claimant hashes the same: our claims look alive while it lives,
                # so they wait for their lease if we die. Harmless, and rare enough to only say so.
                log.warning("notifications: liveness lock of %s is held by another session", self.claimant)
        except BaseException:
            await session.close()
            raise
        self._session = session

    async def keep(self, stop: asyncio.Event) -> None:
        """Until stopped: check the session every `check_every` s; after a database restart, lock again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.check_every)
            if stop.is_set():
                return
            try:
                if self._session is not None and not self._session.is_closed():
                    await self._session.fetchval("SELECT 1")
                    continue
            except AWAY:
                pass
            await self._drop()
            try:
                await self.start()
                log.info("notifications: liveness lock of %s taken again", self.claimant)
            except AWAY as exc:
                log.warning("notifications: liveness lock not held (next try in %.0fs): %r", self.check_every, exc)

    async def close(self) -> None:
        """Stopping cleanly: forget the registration when no claim is left, and free the lock."""
        if self.held and self._session is not None:
            with contextlib.suppress(*AWAY):
                await self._session.execute(
                    "DELETE FROM notification_workers WHERE claimant = $1 AND NOT EXISTS (SELECT FROM"
                    " notification_deliveries d WHERE d.status = 'sending' AND d.claimed_by = $1)",
                    self.claimant,
                )
        await self._drop()

    async def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.is_closed():
            with contextlib.suppress(*AWAY):
                await session.close(timeout=2)
        elif session is not None:
            session.terminate()
