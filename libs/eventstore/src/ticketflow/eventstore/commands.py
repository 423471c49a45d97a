"""`execute`, the one application-service primitive: load the stream, fold, decide, append; on a
concurrency conflict, reload and decide again. Every service that writes a stream one command at a
time goes through it (batch writers that earn their own path say so and point at the benchmark)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import deterministic_event_id, new_event_id
from ticketflow.eventstore.errors import ConcurrencyError
from ticketflow.eventstore.store import AppendResult, Store

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


@dataclass(frozen=True)
class Decided(Generic[S]):
    events: Sequence[NewEvent]
    state: S  # the state after the new events
    result: AppendResult | None  # None when the decision was "nothing to do"


async def execute(
    store: Store,
    stream_id: str,
    command: C,
    decide: Callable[[C, S], Sequence[E]],
    evolve: Callable[[S, E], S],
    initial: S,
    *,
    metadata: EventMetadata | None = None,
    command_id: uuid.UUID | None = None,
    conn: Any = None,
    max_attempts: int = 5,
) -> Decided[S]:
    """With `command_id`, event ids derive from it, so a redelivered command that decides the same
    events again is a no-op in the store instead of a second effect."""
    for attempt in range(1, max_attempts + 1):
        history = await store.read_stream(stream_id, conn=conn)
        state = initial
        for envelope in history:
            state = evolve(state, envelope.event)  # type: ignore[arg-type]
        events = decide(command, state)
        if not events:
            return Decided((), state, None)
        now = datetime.now(UTC)
        new = [
            NewEvent(
                deterministic_event_id(command_id, i) if command_id else new_event_id(),
                event,  # type: ignore[arg-type]
                now,
                metadata or EventMetadata(),
            )
            for i, event in enumerate(events)
        ]
        try:
            result = await store.append(stream_id, len(history), new, conn=conn)
        except ConcurrencyError:
            if attempt == max_attempts or conn is not None:
                raise  # inside a caller's transaction, the caller decides how to retry
            continue
        for event in events:
            state = evolve(state, event)
        return Decided(new, state, result)
    raise AssertionError("unreachable")
