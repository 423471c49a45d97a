"""The ticket_summaries projection: loads the batch's rows, applies the pure logic, upserts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.domain.summary import COLUMNS, TicketSummary, apply

_UPSERT = f"""
INSERT INTO ticket_summaries ({", ".join(COLUMNS)})
SELECT * FROM unnest({
    ", ".join(
        f"${i + 1}::{kind}[]"
        for i, kind in enumerate(
            (
                "uuid",
                "text",
                "text",
                "text",
                "text",
                "text",
                "text",
                "timestamptz",
                "timestamptz",
                "bigint",
                "text",
                "text",
                "text",
                "int",
                "int",
                "int",
                "bool",
                "int",
                "int",
                "int",
                "uuid",
                "uuid",
                "uuid",
                "int",
            )
        )
    )
})
ON CONFLICT (ticket_id) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "ticket_id")}
"""


def _ticket_of(envelope: EventEnvelope) -> uuid.UUID | None:
    return getattr(envelope.event, "ticket_id", None)


class TicketSummaries:
    name = "ticket_summaries"

    async def reset(self, conn: Any) -> None:
        await conn.execute("TRUNCATE ticket_summaries")

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        ids = list({tid for e in events if (tid := _ticket_of(e)) is not None})
        if not ids:
            return
        rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM ticket_summaries WHERE ticket_id = ANY($1)", ids)
        summaries: dict[uuid.UUID, TicketSummary | None] = {
            r["ticket_id"]: msgspec.convert(dict(r), TicketSummary) for r in rows
        }
        for envelope in events:
            tid = _ticket_of(envelope)
            if tid is not None:
                summaries[tid] = apply(summaries.get(tid), envelope)
        changed = [s for s in summaries.values() if s is not None]
        if changed:
            columns = [[getattr(s, c) for s in changed] for c in COLUMNS]
            await conn.execute(_UPSERT, *columns)
