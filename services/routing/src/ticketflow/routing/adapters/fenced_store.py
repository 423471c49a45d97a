"""The event store as the leader writes to it: every append checks, in its own transaction, that this
process still holds the leader's epoch (`ticketflow.eventstore.leadership`). A leader that lost the lock
without knowing (a network partition, a long pause) cannot store a decision after a new leader took
over; `on_lost` tells the leader loop to step down."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.eventstore import AppendRequest, AppendResult, EventStore
from ticketflow.eventstore.leadership import Leadership, LeadershipLost


class FencedStore:
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
