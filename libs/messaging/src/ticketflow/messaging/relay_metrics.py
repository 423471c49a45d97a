"""The relay, seen from outside it: how many stored events lie past its checkpoint, not yet published
(`ticketflow_relay_backlog`), and how long the oldest of them has been stored (`recorded_at`,
`ticketflow_relay_lag_seconds`). Measured apart from the relay's term (`relay.py`), from the checkpoint
it committed in Kafka, so a relay that is stuck or not running still shows its backlog growing. Run by
the service that runs the relay (the projector)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka.errors import KafkaError

from ticketflow.eventstore.store import Checkpoint
from ticketflow.messaging.metrics import RELAY_BACKLOG, RELAY_LAG_SECONDS
from ticketflow.messaging.relay import Relay
from ticketflow.messaging.subscriptions import sleep_or_stop

log = logging.getLogger(__name__)
# Committed events after the checkpoint, in the log's order (`relay._LOG_AFTER` without its limit).
_MEASURE = """
SELECT count(*) AS backlog, coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8 AS lag
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2::bigint)
"""


class RelayMetrics:
    def __init__(self, relay: Relay, *, every_s: float = 15.0) -> None:
        """`relay`: the relay measured (its name, store and checkpoint); it need not run in this process."""
        self.relay = relay
        self.every_s = every_s

    async def measure(self) -> tuple[int, float]:
        checkpoint: Checkpoint = await self.relay.checkpoint()
        row = await self.relay.store.pool.fetchrow(_MEASURE, str(checkpoint.transaction_id), checkpoint.position)
        backlog, lag = int(row["backlog"]), float(row["lag"])
        RELAY_BACKLOG.set(backlog)
        RELAY_LAG_SECONDS.set(lag)
        return backlog, lag

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.measure()
            except (KafkaError, asyncpg.PostgresError, OSError) as exc:  # readiness reports both; try again
                log.warning("relay metrics: %r", exc)
            await sleep_or_stop(stop, self.every_s)
