"""The outbox, seen from outside the relay: how many stored events wait to be published
(`ticketflow_outbox_backlog`) and how long the oldest has waited (`ticketflow_relay_lag_seconds`).
Measured apart from the relay (`relay.py`), so a relay that is stuck or not running still shows its
backlog growing. Run by the service that runs the relay (the projector)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ticketflow.messaging.metrics import OUTBOX_BACKLOG, RELAY_LAG_SECONDS
from ticketflow.messaging.subscriptions import sleep_or_stop

log = logging.getLogger(__name__)
_MEASURE = """
SELECT (SELECT count(*) FROM outbox) AS backlog,
       coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox ORDER BY position LIMIT 1)), 0) AS lag
"""


class OutboxMetrics:
    def __init__(self, pool: asyncpg.Pool, *, every_s: float = 15.0) -> None:
        self.pool = pool
        self.every_s = every_s

    async def measure(self) -> tuple[int, float]:
        row = await self.pool.fetchrow(_MEASURE)
        backlog, lag = int(row["backlog"]), float(row["lag"])
        OUTBOX_BACKLOG.set(backlog)
        RELAY_LAG_SECONDS.set(lag)
        return backlog, lag

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.measure()
            except (asyncpg.PostgresError, OSError) as exc:  # readiness reports the database; try again
                log.warning("outbox metrics: %r", exc)
            await sleep_or_stop(stop, self.every_s)
