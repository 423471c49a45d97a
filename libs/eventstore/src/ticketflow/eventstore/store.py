"""The event store: append with optimistic concurrency and idempotency, read a stream, read the log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import msgspec

from ticketflow.contracts.codec import EventCodec, default_codec
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.text import NUL, has_escaped_nul
from ticketflow.eventstore import sql
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.eventstore.errors import (
    UNSTORABLE_CHARACTER_ERRORS,
    ConcurrencyError,
    EventIdReused,
    RetryableStoreError,
    UnstorableEvent,
)

_metadata_encoder = msgspec.json.Encoder()
_metadata_decoder = msgspec.json.Decoder(EventMetadata)


class AppendRequest(msgspec.Struct, frozen=True, gc=False):
    """One stream's events to append after `expected_version` (a msgspec Struct, not a frozen
    dataclass: batch writers build one per stream, and a frozen dataclass's __init__ costs 4x)."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True)
class AppendResult:
    stream_id: str
    stream_version: int
    positions: tuple[int, ...]
    already_stored: bool = False  # the same event ids were appended before: nothing new written


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A place in the global log: (transaction id, position) of the last event read."""

    transaction_id: int = 0
    position: int = 0


@dataclass(frozen=True)
class StoredEvent:
    envelope: EventEnvelope
    checkpoint: Checkpoint


class Store(Protocol):
    """What applications need of an event store: `EventStore` (PostgreSQL) and `InMemoryEventStore`."""

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[NewEvent], *, conn: Any = None
    ) -> AppendResult: ...

    async def append_many(self, requests: Sequence[AppendRequest], *, conn: Any = None) -> list[AppendResult]: ...

    async def read_stream(self, stream_id: str, from_version: int = 1, *, conn: Any = None) -> list[EventEnvelope]: ...

    async def read_all(self, after: Checkpoint = ..., limit: int = 1000, *, conn: Any = None) -> list[StoredEvent]: ...

    async def head(self) -> Checkpoint: ...

    async def count(self) -> int: ...


class EventStore:
    def __init__(self, pool: asyncpg.Pool, codec: EventCodec | None = None) -> None:
        self.pool = pool
        self.codec = codec or default_codec()
        self._kinds: dict[type, tuple[str, int]] = {}  # event class -> (type name, schema version)

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[NewEvent], *, conn: Any = None
    ) -> AppendResult:
        [result] = await self.append_many([AppendRequest(stream_id, expected_version, events)], conn=conn)
        return result

    async def append_many(self, requests: Sequence[AppendRequest], *, conn: Any = None) -> list[AppendResult]:
        """Append to several streams atomically (all or nothing), in one round trip.
        With `conn`, runs inside the caller's transaction (as a savepoint) so the caller's own rows
        commit together with the events."""
        if len({r.stream_id for r in requests}) != len(requests):
            raise ValueError("append_many takes each stream at most once")
        args = self._encode(requests)
        try:
            if conn is not None:
                return await self._append_on(conn, requests, args)
            async with self.pool.acquire() as own:
                return await self._append_on(own, requests, args)
        except (*retryable_errors(), asyncpg.InterfaceError) as exc:
            if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" not in str(exc):
                raise  # a programming error, not an outage
            raise RetryableStoreError(f"append interrupted: {exc!r}") from exc
        except UNSTORABLE_CHARACTER_ERRORS as exc:  # in a savepoint (or our own transaction): rolled back
            raise unstorable(requests, self.codec, exc) from exc

    async def _append_on(self, conn: Any, requests: Sequence[AppendRequest], args: list[Any]) -> list[AppendResult]:
        try:
            async with conn.transaction():
                rows = await conn.fetch(sql.APPEND, *args)
                if len(rows) != len(args[0]):
                    appended = {r["event_id"] for r in rows}
                    lost = next(r for r in requests if r.events and r.events[0].event_id not in appended)
                    raise _Conflict(lost.stream_id)
        except (asyncpg.UniqueViolationError, _Conflict):
            return await self._explain_conflict(conn, requests)
        positions = {r["event_id"]: r["position"] for r in rows}
        return [
            AppendResult(
                r.stream_id,
                r.expected_version + len(r.events),
                tuple(positions[e.event_id] for e in r.events),
            )
            for r in requests
        ]

    async def _explain_conflict(self, conn: Any, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """After a failed append: a retry of an append that already committed is a no-op;
        anything else is a concurrency conflict (or a reused event id, a caller bug)."""
        ids = [e.event_id for r in requests for e in r.events]
        stored = {row["event_id"]: row for row in await conn.fetch(sql.EVENTS_BY_ID, ids)}
        results = []
        for r in requests:
            mine = [stored.get(e.event_id) for e in r.events]
            if mine and all(row is not None and row["stream_id"] == r.stream_id for row in mine):
                versions = [row["stream_version"] for row in mine if row is not None]
                positions = tuple(row["position"] for row in mine if row is not None)
                results.append(AppendResult(r.stream_id, max(versions), positions, already_stored=True))
                continue
            if any(row is not None for row in mine):
                raise EventIdReused(f"stream {r.stream_id}: an event id is already stored elsewhere")
            actual = await conn.fetchval(sql.STREAM_HEAD, r.stream_id)
            raise ConcurrencyError(r.stream_id, r.expected_version, actual)
        return results

    def _encode(self, requests: Sequence[AppendRequest]) -> list[Any]:
        """Column arrays for the APPEND statement (one row per event, transposed once at the end)."""
        rows: list[tuple[Any, ...]] = []
        encode, encode_metadata, kinds = self.codec.encode, _metadata_encoder.encode, self._kinds
        for r in requests:
            for offset, new in enumerate(r.events, start=1):
                kind = kinds.get(type(new.event))
                if kind is None:
                    name = event_type_name(new.event)
                    kind = kinds[type(new.event)] = (name, self.codec.current_version(name))
                rows.append(
                    (
                        r.stream_id,
                        r.expected_version,
                        r.expected_version + offset,
                        new.event_id,
                        kind[0],
                        kind[1],
                        encode(new.event).decode(),
                        encode_metadata(new.metadata).decode(),
                        new.occurred_at,
                    )
                )
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(9)]

    async def read_stream(self, stream_id: str, from_version: int = 1, *, conn: Any = None) -> list[EventEnvelope]:
        if conn is not None:
            rows = await conn.fetch(sql.READ_STREAM, stream_id, from_version)
        else:
            try:
                rows = await self.pool.fetch(sql.READ_STREAM, stream_id, from_version)
            except retryable_errors() as exc:
                raise RetryableStoreError(f"read interrupted: {exc!r}") from exc
        return [self.envelope(row) for row in rows]

    async def read_all(
        self, after: Checkpoint = Checkpoint(), limit: int = 1000, *, conn: Any = None
    ) -> list[StoredEvent]:
        runner = conn if conn is not None else self.pool
        rows = await runner.fetch(sql.READ_ALL, str(after.transaction_id), after.position, limit)
        return [
            StoredEvent(self.envelope(row), Checkpoint(int(row["transaction_id"]), row["position"])) for row in rows
        ]

    async def head(self) -> Checkpoint:
        """The checkpoint of the newest committed event: a reader that reaches it has read everything
        committed before this call (later it may have to wait for older transactions still open)."""
        row = await self.pool.fetchrow(sql.HEAD)
        return Checkpoint(int(row["transaction_id"]), row["position"]) if row else Checkpoint()

    async def count(self) -> int:
        return int(await self.pool.fetchval(sql.COUNT_ALL))

    def envelope(self, row: Any) -> EventEnvelope:
        return EventEnvelope(
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            stream_version=row["stream_version"],
            occurred_at=row["occurred_at"],
            schema_version=self.codec.current_version(row["event_type"]),
            event=self.codec.decode(row["event_type"], row["schema_version"], row["data"]),  # type: ignore[arg-type]
            metadata=_metadata_decoder.decode(row["metadata"]),
            position=row["position"],
        )


def nul_in(requests: Sequence[AppendRequest], codec: EventCodec) -> str | None:
    """Where the first NUL character of `requests` is (a stream id, or an event's data or metadata), or None."""
    for r in requests:
        if NUL in r.stream_id:
            return f"stream id {r.stream_id!r} has a NUL character (U+0000)"
        for new in r.events:
            for part, encoded in (
                ("data", codec.encode(new.event)),
                ("metadata", _metadata_encoder.encode(new.metadata)),
            ):
                if has_escaped_nul(encoded):
                    kind = event_type_name(new.event)
                    return f"stream {r.stream_id}: {kind} {new.event_id} has a NUL character (U+0000) in its {part}"
    return None


def unstorable(requests: Sequence[AppendRequest], codec: EventCodec, cause: BaseException) -> UnstorableEvent:
    """The error for an append PostgreSQL refused (`cause`), naming the value at fault if it can be found."""
    where = nul_in(requests, codec)
    if where is None:
        return UnstorableEvent(f"PostgreSQL cannot store this append: {cause!r}")
    return UnstorableEvent(f"{where}, which PostgreSQL cannot store ({cause!r})")


class _Conflict(Exception):
    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id


def new_event(event: Any, occurred_at: Any, metadata: EventMetadata | None = None) -> NewEvent:
    from ticketflow.contracts.ids import new_event_id

    return NewEvent(new_event_id(), event, occurred_at, metadata or EventMetadata())


__all__ = ["AppendRequest", "AppendResult", "Checkpoint", "EventStore", "Store", "StoredEvent", "new_event", "uuid"]
