"""Append-only PostgreSQL event store, transactional outbox relay, idempotent consumers, projections."""

from ticketflow.eventstore.connection import create_pool, dsn_from_env
from ticketflow.eventstore.errors import (
    ConcurrencyError,
    EventIdReused,
    EventStoreError,
    RetryableStoreError,
    UnstorableEvent,
)
from ticketflow.eventstore.store import (
    EXPECT_NEW_STREAM,
    AppendRequest,
    AppendResult,
    Checkpoint,
    EventStore,
    StoredEvent,
    new_event,
)

__all__ = [
    "EXPECT_NEW_STREAM",
    "AppendRequest",
    "AppendResult",
    "Checkpoint",
    "ConcurrencyError",
    "EventIdReused",
    "EventStore",
    "EventStoreError",
    "RetryableStoreError",
    "StoredEvent",
    "UnstorableEvent",
    "create_pool",
    "dsn_from_env",
    "new_event",
]
