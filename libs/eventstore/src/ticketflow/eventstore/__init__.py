"""Storage: the append-only PostgreSQL event store (and an in-memory one with the same contract),
`execute` (load, decide, append, retry), tracking (processed events, checkpoints), projections,
leadership and migrations. Everything Kafka is in `ticketflow.messaging`."""

from ticketflow.eventstore.connection import create_pool, dsn_from_env
from ticketflow.eventstore.errors import (
    ConcurrencyError,
    EventIdReused,
    EventStoreError,
    RetryableStoreError,
    UnstorableEvent,
)
from ticketflow.eventstore.memory import InMemoryEventStore
from ticketflow.eventstore.store import (
    AppendRequest,
    AppendResult,
    Checkpoint,
    EventStore,
    Store,
    StoredEvent,
    new_event,
)

__all__ = [
    "AppendRequest",
    "AppendResult",
    "Checkpoint",
    "ConcurrencyError",
    "EventIdReused",
    "EventStore",
    "EventStoreError",
    "InMemoryEventStore",
    "RetryableStoreError",
    "Store",
    "StoredEvent",
    "UnstorableEvent",
    "create_pool",
    "dsn_from_env",
    "new_event",
]
