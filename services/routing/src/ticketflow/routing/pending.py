"""Decisions made (and applied in memory) but not stored yet, in decision order.

A segment holds each ticket at most once, so it is one `append_many`; a ticket decided again after
other tickets starts a new segment, so the log keeps the order decisions were made in (round-robin
cursors are rebuilt from that order)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore.errors import ConcurrencyError, EventIdReused
from ticketflow.eventstore.store import AppendRequest

log = logging.getLogger("ticketflow.routing")
Segment = dict[uuid.UUID, tuple[int, list[NewEvent]]]  # ticket -> (expected version, events)


class AppendResult(Protocol):
    @property
    def already_stored(self) -> bool: ...


class TicketStreams(Protocol):
    """What routing needs of `ticketflow.eventstore.EventStore` (an in-memory one for tests)."""

    async def append_many(self, requests: Sequence[AppendRequest]) -> Sequence[AppendResult]: ...

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult: ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]: ...


class PendingDecisions:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self._last: uuid.UUID | None = None

    def add(self, ticket_id: uuid.UUID, expected_version: int, events: list[NewEvent]) -> None:
        if not self.segments or (ticket_id in self.segments[-1] and ticket_id != self._last):
            self.segments.append({})
        segment = self.segments[-1]
        expected, buffered = segment.get(ticket_id, (expected_version, []))
        segment[ticket_id] = (expected, [*buffered, *events])
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


async def store_segment(streams: TicketStreams, segment: Segment) -> set[uuid.UUID]:
    """Append one segment; returns the tickets whose decision is not stored as decided."""
    if not segment:
        return set()
    requests = [AppendRequest(ticket_stream(t), v, evs) for t, (v, evs) in segment.items()]
    try:
        results = await streams.append_many(requests)
    except (ConcurrencyError, EventIdReused):
        return await _one_by_one(streams, segment)  # all or nothing failed: find who conflicted
    return {t for t, r in zip(segment, results, strict=True) if r.already_stored}


async def _one_by_one(streams: TicketStreams, segment: Segment) -> set[uuid.UUID]:
    failed = set()
    for ticket_id, (version, events) in segment.items():
        try:
            result = await streams.append(ticket_stream(ticket_id), version, events)
        except ConcurrencyError as conflict:
            log.info("ticket %s changed while routing decided (%s); deciding again", ticket_id, conflict)
            failed.add(ticket_id)
        else:
            if result.already_stored:
                failed.add(ticket_id)
    return failed
