"""A read model of one row per key (a ticket, an agent): load the rows a batch touches, apply the pure
function to each event in log order, write the changed rows back and delete the ones that are gone, all in
the projection runner's transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.adapters.rows import RowTable

T = TypeVar("T", bound=msgspec.Struct)
Apply = Callable[[T | None, EventEnvelope], T | None]
KeyOf = Callable[[EventEnvelope], Any]  # the row an event concerns, or None when it concerns none


class KeyedRows(Generic[T]):
    def __init__(self, table: RowTable[T], key_of: KeyOf, apply: Apply[T]) -> None:
        self.table, self.key_of, self._apply = table, key_of, apply
        self._key = table.key[0]

    async def apply_batch(self, conn: Any, events: Sequence[EventEnvelope]) -> dict[Any, T | None]:
        """Apply `events`; returns every touched row by key (None: deleted)."""
        relevant = [(key, e) for e in events if (key := self.key_of(e)) is not None]
        if not relevant:
            return {}
        keys = list(dict.fromkeys(key for key, _ in relevant))
        rows: dict[Any, T | None] = {getattr(r, self._key): r for r in await self.table.load(conn, keys)}
        for key, envelope in relevant:
            rows[key] = self._apply(rows.get(key), envelope)
        touched = {key: rows.get(key) for key in keys}
        await self.table.delete(conn, [key for key, row in touched.items() if row is None])
        await self.table.upsert(conn, [row for row in touched.values() if row is not None])
        return touched


class KeyedProjection:
    """A projection made of one or more keyed tables, applied together under one checkpoint."""

    def __init__(self, name: str, *parts: KeyedRows[Any]) -> None:
        self.name = name
        self.parts = parts
        self.tables = tuple(part.table.table for part in parts)

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        for part in self.parts:
            await part.apply_batch(conn, events)
