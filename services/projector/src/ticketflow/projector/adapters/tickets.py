"""The `tickets` read model: each ticket's document (`ticket_details.doc`, served as it is) and its list
row (`ticket_list`, what list queries filter and sort on, with the conversation's words for text search)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.views import TicketDetail, ticket_detail_decoder
from ticketflow.projector.domain import tickets
from ticketflow.projector.domain.tickets import ListRow

_LIST_COLUMNS = ListRow.__struct_fields__
_LIST_TYPES = (
    "uuid", "text", "text", "text", "text", "text", "text", "smallint", "text", "text", "text", "text",
    "timestamptz", "timestamptz", "text", "timestamptz", "text", "bool", "bigint",
)  # fmt: skip
_SEARCH_CHARS = 100_000  # a tsvector holds at most 1 MB; the start of a very long conversation is enough
_LOAD = "SELECT doc::text FROM ticket_details WHERE ticket_id = ANY($1)"
_SAVE_DETAILS = """
INSERT INTO ticket_details (ticket_id, desk_id, doc)
SELECT u.ticket_id, u.desk_id, u.doc::jsonb
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(ticket_id, desk_id, doc)
ON CONFLICT (ticket_id) DO UPDATE SET doc = excluded.doc
"""
_SAVE_LIST = f"""
INSERT INTO ticket_list ({", ".join(_LIST_COLUMNS)}, search)
SELECT {", ".join(f"u.{c}" for c in _LIST_COLUMNS)},
       CASE WHEN s.text IS NULL THEN NULL ELSE to_tsvector('simple', s.text) END
FROM unnest({", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(_LIST_TYPES))}) WITH ORDINALITY
     AS u({", ".join(_LIST_COLUMNS)}, n)
JOIN unnest(${len(_LIST_TYPES) + 1}::text[]) WITH ORDINALITY AS s(text, n) USING (n)
ON CONFLICT (ticket_id) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in _LIST_COLUMNS if c != "ticket_id")},
    search = coalesce(excluded.search, ticket_list.search)
"""
_encode = msgspec.json.Encoder().encode


def ticket_of(envelope: EventEnvelope) -> uuid.UUID | None:
    """The ticket of a ticket, SLA or notification event (agent events concern no ticket)."""
    return getattr(envelope.event, "ticket_id", None)


class TicketsProjection:
    name = "tickets"
    tables: tuple[str, ...] = ("ticket_list", "ticket_details")

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        ids = list(dict.fromkeys(tid for e in events if (tid := ticket_of(e)) is not None))
        if not ids:
            return
        views: dict[uuid.UUID, TicketDetail | None] = {}
        messages: dict[uuid.UUID, int] = {}
        for record in await conn.fetch(_LOAD, ids):
            view = ticket_detail_decoder.decode(record[0])
            views[view.ticket_id], messages[view.ticket_id] = view, len(view.conversation)
        for envelope in events:
            tid = ticket_of(envelope)
            if tid is not None:
                views[tid] = tickets.apply(views.get(tid), envelope)
        changed = [v for v in views.values() if v is not None]
        if not changed:
            return
        await conn.execute(
            _SAVE_DETAILS, [v.ticket_id for v in changed], [v.desk_id for v in changed],
            [_encode(v).decode() for v in changed],
        )  # fmt: skip
        rows = [msgspec.structs.astuple(tickets.list_row(v)) for v in changed]
        searches = [
            tickets.search_text(v)[:_SEARCH_CHARS] if len(v.conversation) != messages.get(v.ticket_id) else None
            for v in changed
        ]
        await conn.execute(_SAVE_LIST, *(list(column) for column in zip(*rows, strict=True)), searches)
