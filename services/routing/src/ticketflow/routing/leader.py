"""Two or more routing instances, one deciding: a leader lock with hot stand-bys.

Round-robin turns and loads are global, so decisions must be serial: partitioning tickets between
instances would break the strategies' promises (two instances would each think an agent has room).
So one instance leads and the others stand by:

- the leader holds `ticketflow.eventstore.leadership` (a PostgreSQL advisory lock on a connection it
  keeps) and is the only one that joins the Kafka consumer group and stores decisions;
- a stand-by does not consume Kafka; it follows the event store's global log (`LogFollower`), so its
  state is warm, and polls the lock. When the leader dies its connection closes, the lock is free,
  the stand-by takes it, reads the rest of the log up to the head, routes what was left undecided,
  and only then starts its Kafka subscribers (records from the last committed offsets come again and
  are skipped: their events are already in the state, their decisions already stored);
- every flush stores inside a transaction that checks the leader's epoch (`FencedStore`): a leader
  that lost the lock without knowing cannot store a decision after a new leader took over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.eventstore import Checkpoint, EventStore
from ticketflow.eventstore.leadership import Leadership, LeadershipLost
from ticketflow.eventstore.store import AppendRequest, AppendResult
from ticketflow.routing.config import Desks
from ticketflow.routing.state import RoutingState, apply_envelope

log = logging.getLogger("ticketflow.routing")


class LogFollower:
    """Routing state folded from the global log, read on from where it stopped."""

    def __init__(self, store: EventStore, desks: Desks) -> None:
        self.store = store
        self.state = RoutingState(desks)
        self.checkpoint = Checkpoint()
        self.applied = 0

    async def read_available(self, page: int = 5000) -> int:
        """Fold what the log shows now (a stand-by's step); returns how many events were read."""
        count = 0
        while True:
            batch = await self.store.read_all(self.checkpoint, page)
            for stored in batch:
                apply_envelope(self.state, stored.envelope)
            if batch:
                self.checkpoint = batch[-1].checkpoint
            count += len(batch)
            if len(batch) < page:
                self.applied += count
                return count

    async def catch_up(self, page: int = 5000, patience: float = 60.0) -> None:
        """Fold every event committed before this call. The log hides transactions newer than the
        oldest one still open on the server, so an empty page is not the end: wait for the head."""
        target = await self.store.head()
        deadline = asyncio.get_running_loop().time() + patience
        while self.checkpoint < target:
            if not await self.read_available(page):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"routing rebuild: the event log is still held back after {patience}s")
                await asyncio.sleep(0.05)


class FencedStore:
    """The event store as routing writes to it while leading: each append checks, in its own
    transaction, that this process still holds the leader's epoch."""

    def __init__(
        self, store: EventStore, leadership: Leadership, on_lost: Callable[[LeadershipLost], None] | None = None
    ) -> None:
        self.store = store
        self.leadership = leadership
        self.on_lost = on_lost

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        async with self.store.pool.acquire() as conn, conn.transaction():
            try:
                await self.leadership.fence(conn)
            except LeadershipLost as lost:
                if self.on_lost is not None:
                    self.on_lost(lost)
                raise
            return await self.store.append_many(requests, conn=conn)

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult:
        [result] = await self.append_many([AppendRequest(stream_id, expected_version, events)])
        return result

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]:
        return await self.store.read_stream(stream_id, from_version)


async def stand_by(leadership: Leadership, follower: LogFollower, stop: asyncio.Event, poll: float = 1.0) -> bool:
    """Follow the log until this process leads (True) or is stopped (False)."""
    reported = False
    while not await leadership.try_acquire():
        if not reported:
            log.info("routing stands by: another instance leads; following the event log")
            reported = True
        await follower.read_available()
        try:
            await asyncio.wait_for(stop.wait(), poll)
        except TimeoutError:
            continue
        return False
    return True
