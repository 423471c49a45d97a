"""The `backlog_history` read model: each ticket's place (`backlog_history_tickets`, to see it move) and, per
desk, queue and UTC hour, the tickets that entered and exited the backlog (`backlog_hours`, added to, never
recounted). Both in the projection runner's transaction, so each event's moves are added exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.adapters.rows import RowTable
from ticketflow.projector.domain import backlog_history
from ticketflow.projector.domain.backlog_history import HistoryTicket
from ticketflow.projector.domain.lifecycle import is_ticket_event

_ADD = """
INSERT INTO backlog_hours AS h (desk_id, queue_id, hour, entered, exited)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
ON CONFLICT (desk_id, queue_id, hour) DO UPDATE
SET entered = h.entered + excluded.entered, exited = h.exited + excluded.exited
"""


class BacklogHistoryProjection:
    name = "backlog_history"
    tables: tuple[str, ...] = ("backlog_history_tickets", "backlog_hours")

    def __init__(self) -> None:
        self.tickets = RowTable("backlog_history_tickets", HistoryTicket, ("ticket_id",))

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        relevant = [e for e in events if is_ticket_event(e.event)]
        if not relevant:
            return
        keys = list(dict.fromkeys(e.event.ticket_id for e in relevant))  # type: ignore[union-attr]
        rows: dict[Any, HistoryTicket | None] = {r.ticket_id: r for r in await self.tickets.load(conn, keys)}
        hours: dict[tuple[str, str, datetime], list[int]] = {}
        for envelope in relevant:
            key = envelope.event.ticket_id  # type: ignore[union-attr]
            rows[key], moves = backlog_history.apply(rows.get(key), envelope)
            for move in moves:
                hour = hours.setdefault((move.desk_id, move.queue_id, move.hour), [0, 0])
                hour[0 if move.change > 0 else 1] += 1
        await self.tickets.delete(conn, [key for key in keys if rows.get(key) is None])
        await self.tickets.upsert(conn, [row for key in keys if (row := rows.get(key)) is not None])
        if hours:
            places, counts = list(hours), list(hours.values())
            await conn.execute(
                _ADD,
                [p[0] for p in places],
                [p[1] for p in places],
                [p[2] for p in places],
                [c[0] for c in counts],
                [c[1] for c in counts],
            )
