"""An event store in memory with the interface of `EventStore`, for fast application tests.

It keeps the same promises, and passes the same contract tests (tests/eventstore/test_store_contract.py):
optimistic concurrency on (stream, version), idempotent on event ids (the same append again is a
no-op; an id reused elsewhere is an error), `append_many` all or nothing, one global log in append
order. It has no transactions: `conn` arguments are accepted and ignored (a caller's transaction is a
PostgreSQL matter, tested against PostgreSQL). Events are kept as they were given (no encoding round
trip), so a test that needs the JSON (upcasting, NUL characters) uses the PostgreSQL store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ticketflow.contracts.codec import default_codec
from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.events import event_type_name
from ticketflow.eventstore.errors import ConcurrencyError, EventIdReused
from ticketflow.eventstore.store import AppendRequest, AppendResult, Checkpoint, StoredEvent

_START = Checkpoint()


class InMemoryEventStore:
    def __init__(self) -> None:
        self._codec = default_codec()
        self._log: list[StoredEvent] = []
        self._streams: dict[str, list[EventEnvelope]] = {}
        self._by_id: dict[Any, tuple[str, int, int]] = {}  # event id -> (stream, version, position)

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[NewEvent], *, conn: Any = None
    ) -> AppendResult:
        [result] = await self.append_many([AppendRequest(stream_id, expected_version, events)], conn=conn)
        return result

    async def append_many(self, requests: Sequence[AppendRequest], *, conn: Any = None) -> list[AppendResult]:
        if len({r.stream_id for r in requests}) != len(requests):
            raise ValueError("append_many takes each stream at most once")
        results: list[AppendResult | None] = [self._already_stored(r) for r in requests]
        for request, result in zip(requests, results, strict=True):
            if result is None:
                head = len(self._streams.get(request.stream_id, ()))
                if head != request.expected_version:
                    raise ConcurrencyError(request.stream_id, request.expected_version, head)
        for i, request in enumerate(requests):  # every check passed: now write them all
            if results[i] is None:
                results[i] = self._write(request)
        return [r for r in results if r is not None]

    def _already_stored(self, request: AppendRequest) -> AppendResult | None:
        known = [self._by_id.get(new.event_id) for new in request.events]
        if not request.events or all(k is None for k in known):
            return None
        if all(k is not None and k[0] == request.stream_id for k in known):
            versions = [k[1] for k in known if k is not None]
            positions = tuple(k[2] for k in known if k is not None)
            return AppendResult(request.stream_id, max(versions), positions, already_stored=True)
        raise EventIdReused(f"stream {request.stream_id}: an event id is already stored elsewhere")

    def _write(self, request: AppendRequest) -> AppendResult:
        stream = self._streams.setdefault(request.stream_id, [])
        positions = []
        for new in request.events:
            position = len(self._log) + 1
            version = len(stream) + 1
            schema = self._codec.current_version(event_type_name(new.event))  # a non-event fails here
            envelope = EventEnvelope(new.event_id, request.stream_id, version, new.occurred_at, schema, new.event,
                                     new.metadata, position)  # fmt: skip
            stream.append(envelope)
            self._log.append(StoredEvent(envelope, Checkpoint(position, position)))
            self._by_id[new.event_id] = (request.stream_id, version, position)
            positions.append(position)
        return AppendResult(request.stream_id, len(stream), tuple(positions))

    async def read_stream(self, stream_id: str, from_version: int = 1, *, conn: Any = None) -> list[EventEnvelope]:
        return [e for e in self._streams.get(stream_id, ()) if e.stream_version >= from_version]

    async def read_all(self, after: Checkpoint = _START, limit: int = 1000, *, conn: Any = None) -> list[StoredEvent]:
        return [s for s in self._log if s.checkpoint > after][:limit]

    async def head(self) -> Checkpoint:
        return self._log[-1].checkpoint if self._log else Checkpoint()

    async def count(self) -> int:
        return len(self._log)
