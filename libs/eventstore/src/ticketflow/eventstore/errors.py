"""Errors the store raises, typed so callers can tell a conflict from a retryable outage."""

from __future__ import annotations

import asyncpg


class EventStoreError(Exception):
    pass


class ConcurrencyError(EventStoreError):
    """Someone appended to the stream first: reload, decide again, retry."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream_id}: expected version {expected}, actual {actual}")


class RetryableStoreError(EventStoreError):
    """The connection or server failed mid-operation. The transaction did not commit (or, for a
    commit whose answer was lost, committed entirely): retrying the same append is safe because
    event ids make it idempotent."""


class EventIdReused(EventStoreError):
    """An event id already stored belongs to a different stream or position: a caller bug."""


class UnstorableEvent(EventStoreError, ValueError):
    """PostgreSQL refuses a value of the append as such (a NUL character: `jsonb` and `text` cannot hold
    U+0000). Retrying cannot help: the caller must drop or fix the event (a batch writer records the
    rest without it). Nothing of the append was written."""


# SQLSTATE 22P05 (jsonb: "unsupported Unicode escape sequence") and 22021 (text: "invalid byte sequence
# for encoding \"UTF8\": 0x00"): the data, not the server, is at fault.
UNSTORABLE_CHARACTER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.UntranslatableCharacterError,
    asyncpg.CharacterNotInRepertoireError,
)
