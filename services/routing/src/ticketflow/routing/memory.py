"""An in-memory `TicketStreams` with the event store's semantics (optimistic concurrency, idempotent
event ids, a global log): for domain tests, the fairness test and the benchmark's ceiling run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.events import event_type_name, schema_version_of
from ticketflow.eventstore.errors import ConcurrencyError
from ticketflow.eventstore.store import AppendRequest


@dataclass(frozen=True)
class Appended:
    stream_version: int
    already_stored: bool = False


class MemoryStreams:
    def __init__(self) -> None:
        self.streams: dict[str, list[EventEnvelope]] = {}
        self.log: list[EventEnvelope] = []  # every event in append order (the global log)
        self._ids: dict[uuid.UUID, str] = {}

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> Appended:
        return self.append_now(stream_id, expected_version, events)

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        """All or nothing, like the store's: every conflict is found before anything is written."""
        for r in requests:
            stored = len(self.streams.get(r.stream_id, []))
            mine = r.events and all(self._ids.get(n.event_id) == r.stream_id for n in r.events)
            if not mine and stored != r.expected_version:
                raise ConcurrencyError(r.stream_id, r.expected_version, stored)
        return [self.append_now(r.stream_id, r.expected_version, r.events) for r in requests]

    def append_now(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> Appended:
        stream = self.streams.setdefault(stream_id, [])
        if events and all(self._ids.get(n.event_id) == stream_id for n in events):
            return Appended(len(stream), already_stored=True)
        if len(stream) != expected_version:
            raise ConcurrencyError(stream_id, expected_version, len(stream))
        for offset, new in enumerate(events, start=1):
            envelope = EventEnvelope(
                event_id=new.event_id,
                stream_id=stream_id,
                stream_version=expected_version + offset,
                occurred_at=new.occurred_at,
                schema_version=schema_version_of(event_type_name(new.event)),
                event=new.event,
                metadata=new.metadata,
                position=len(self.log) + 1,
            )
            stream.append(envelope)
            self.log.append(envelope)
            self._ids[new.event_id] = stream_id
        return Appended(len(stream))

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]:
        return self.streams.get(stream_id, [])[from_version - 1 :]
