"""The `organisation_register` read model: every ticket of each customer organisation (`register_entries`)
and each organisation's counters (`register_organisations`), kept by adding what a batch changed, so the
register's summary never counts a desk's tickets when asked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.adapters.rows import RowTable
from ticketflow.projector.domain import register
from ticketflow.projector.domain.lifecycle import is_ticket_event
from ticketflow.projector.domain.register import COUNTED, RegisterEntry

_ADD = f"""
INSERT INTO register_organisations AS o (desk_id, organisation_id, {", ".join(COUNTED)})
SELECT * FROM unnest($1::text[], $2::text[], {", ".join(f"${i + 3}::bigint[]" for i in range(len(COUNTED)))})
ON CONFLICT (desk_id, organisation_id) DO UPDATE SET {", ".join(f"{c} = o.{c} + excluded.{c}" for c in COUNTED)}
"""


class RegisterProjection:
    name = "organisation_register"
    tables: tuple[str, ...] = ("register_entries", "register_organisations")

    def __init__(self) -> None:
        self.entries = RowTable("register_entries", RegisterEntry, ("ticket_id",))

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        relevant = [e for e in events if is_ticket_event(e.event)]
        if not relevant:
            return
        keys = list(dict.fromkeys(e.event.ticket_id for e in relevant))  # type: ignore[union-attr]
        entries: dict[Any, RegisterEntry | None] = {r.ticket_id: r for r in await self.entries.load(conn, keys)}
        before = {key: register.counts(entry) for key, entry in entries.items()}
        places = {key: (entry.desk_id, entry.organisation_id) for key, entry in entries.items() if entry}
        for envelope in relevant:
            key = envelope.event.ticket_id  # type: ignore[union-attr]
            entries[key] = register.apply(entries.get(key), envelope)
        deltas: dict[tuple[str, str], list[int]] = {}
        for key, entry in entries.items():
            if entry is None:
                continue
            places.setdefault(key, (entry.desk_id, entry.organisation_id))
            old = before.get(key, register.counts(None))
            change = [a - b for a, b in zip(register.counts(entry), old, strict=True)]
            if any(change):
                total = deltas.setdefault(places[key], [0] * len(COUNTED))
                total[:] = [a + b for a, b in zip(total, change, strict=True)]
        await self.entries.upsert(conn, [e for e in entries.values() if e is not None])
        if deltas:
            places_, sums = list(deltas), list(deltas.values())
            await conn.execute(
                _ADD,
                [p[0] for p in places_],
                [p[1] for p in places_],
                *([s[i] for s in sums] for i in range(len(COUNTED))),
            )
