"""Storing routing's decisions: what was decided (and applied in memory) but not stored yet, in
decision order, and how it is appended.

A segment holds each ticket at most once, so it is one `append_many`; a ticket decided again after
other tickets starts a new segment, so the log keeps the order decisions were made in.

What a restart rebuilds from that order is per queue: a round-robin cursor is the last agent its
queue gave a ticket, and a backlog's ties are broken by the order tickets were routed into it. So a
segment may be stored as several transactions at once, as long as every queue's decisions are in one
of them (in decision order): `chunks` splits a segment by queue (queues linked by a ticket whose
decisions name both stay together) into at most `parallel` parts. Segments are still stored one
after the other.

What it buys: several transactions in flight let PostgreSQL use more than one backend (and its group
commit), where one large transaction is serial (the kafka+pg rows of tests/load/routing/bench_routing.py,
docs/benchmarks.md). `tests/routing/test_routing_parallel_store.py` commits the parts in a random order
and checks a restart rebuilds the same state."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore import AppendRequest, AppendResult, ConcurrencyError, EventIdReused

log = logging.getLogger("ticketflow.routing")
# ticket -> (expected version, events, queues whose order they are part of)
Segment = dict[uuid.UUID, tuple[int, list[NewEvent], frozenset[str]]]


class TicketStreams(Protocol):
    """What routing needs of the event store: `EventStore`, `FencedStore` (the leader's writes) or,
    in tests, `InMemoryEventStore`."""

    async def append_many(self, requests: Sequence[AppendRequest]) -> Sequence[AppendResult]: ...

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult: ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]: ...


class PendingDecisions:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self._last: uuid.UUID | None = None

    def add(
        self, ticket_id: uuid.UUID, expected_version: int, events: list[NewEvent], queue: str | None = None
    ) -> None:
        """`queue`: the ticket's queue after these events (whose cursor and backlog order they touch)."""
        if not self.segments or (ticket_id in self.segments[-1] and ticket_id != self._last):
            self.segments.append({})
        segment = self.segments[-1]
        expected, buffered, queues = segment.get(ticket_id, (expected_version, [], frozenset()))
        segment[ticket_id] = (expected, [*buffered, *events], queues | {queue} if queue is not None else queues)
        self._last = ticket_id

    def take(self) -> list[Segment]:
        taken, self.segments, self._last = self.segments, [], None
        return taken

    def put_back(self, segments: list[Segment]) -> None:
        """Unstored segments go before anything decided since they were taken."""
        self.segments = segments + self.segments

    def drop(self, ticket_id: uuid.UUID) -> None:
        """A ticket refolded from the store: what was decided on its old state must not be stored."""
        for segment in self.segments:
            segment.pop(ticket_id, None)

    def tickets(self) -> set[uuid.UUID]:
        return {t for segment in self.segments for t in segment}


def chunks(segment: Segment, parallel: int) -> list[Segment]:
    """Split a segment into at most `parallel` parts, none sharing a queue, each in decision order."""
    if parallel <= 1 or len(segment) < 2 * parallel:
        return [segment]
    parent: dict[str, str] = {}

    def root(queue: str) -> str:
        while parent.setdefault(queue, queue) != queue:
            parent[queue] = parent[parent[queue]]
            queue = parent[queue]
        return queue

    sizes: dict[str, int] = {}
    for _, _, queues in segment.values():
        first, *others = sorted(queues) or [""]
        for other in others:  # a ticket moved between queues: their orders must stay together
            parent[root(other)] = root(first)
        sizes[first] = sizes.get(first, 0) + 1
    totals: dict[str, int] = {}
    for queue, size in sizes.items():
        totals[root(queue)] = totals.get(root(queue), 0) + size
    loads = [0] * parallel
    part_of: dict[str, int] = {}
    for component, size in sorted(totals.items(), key=lambda item: (-item[1], item[0])):  # largest first
        part = loads.index(min(loads))
        part_of[component] = part
        loads[part] += size
    parts: list[Segment] = [{} for _ in range(parallel)]
    for ticket_id, entry in segment.items():
        first = min(entry[2]) if entry[2] else ""
        parts[part_of[root(first)]][ticket_id] = entry
    return [part for part in parts if part]


async def store_segment(streams: TicketStreams, segment: Segment, parallel: int = 1) -> set[uuid.UUID]:
    """Append one segment (as up to `parallel` transactions at once); returns the tickets whose
    decision is not stored as decided. An outage in any part is raised once every part has ended
    (the caller refolds every ticket of the segment: what was stored is read back)."""
    parts = chunks(segment, parallel)
    if len(parts) == 1:
        return await _store_part(streams, parts[0])
    results = await asyncio.gather(*(_store_part(streams, part) for part in parts), return_exceptions=True)
    failed: set[uuid.UUID] = set()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        failed |= result
    return failed


async def _store_part(streams: TicketStreams, segment: Segment) -> set[uuid.UUID]:
    if not segment:
        return set()
    requests = [AppendRequest(ticket_stream(t), v, evs) for t, (v, evs, _) in segment.items()]
    try:
        results = await streams.append_many(requests)
    except (ConcurrencyError, EventIdReused):
        return await _one_by_one(streams, segment)  # all or nothing failed: find who conflicted
    return {t for t, r in zip(segment, results, strict=True) if r.already_stored}


async def _one_by_one(streams: TicketStreams, segment: Segment) -> set[uuid.UUID]:
    failed = set()
    for ticket_id, (version, events, _) in segment.items():
        try:
            result = await streams.append(ticket_stream(ticket_id), version, events)
        except ConcurrencyError as conflict:
            log.info("ticket %s changed while routing decided (%s); deciding again", ticket_id, conflict)
            failed.add(ticket_id)
        else:
            if result.already_stored:
                failed.add(ticket_id)
    return failed
