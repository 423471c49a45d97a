"""The `sla_board` read model: unfinished tickets with their clocks (to follow the SLA events), and one
row per pending clock that the board's queries read (rewritten for every ticket a batch touches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ticketflow.contracts import sla_events as s
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.adapters.keyed import KeyedRows
from ticketflow.projector.adapters.rows import RowTable
from ticketflow.projector.domain import sla_board
from ticketflow.projector.domain.lifecycle import is_ticket_event
from ticketflow.projector.domain.sla_board import BoardClock, BoardTicket, QueueTrack


def _ticket_or_sla(envelope: EventEnvelope) -> Any:
    event = envelope.event
    if is_ticket_event(event) or isinstance(event, s.SlaEvent.__args__):  # type: ignore[attr-defined]
        return event.ticket_id  # type: ignore[union-attr]
    return None


class SlaBoardProjection:
    name = "sla_board"
    tables: tuple[str, ...] = ("sla_board_tickets", "sla_board_clocks")

    def __init__(self, queue_track: QueueTrack) -> None:
        self.tickets = KeyedRows(
            RowTable("sla_board_tickets", BoardTicket, ("ticket_id",)),
            _ticket_or_sla,
            lambda ticket, envelope: sla_board.apply(ticket, envelope, queue_track),
        )
        self.clocks = RowTable("sla_board_clocks", BoardClock, ("ticket_id", "target"))

    async def apply(self, conn: Any, events: Sequence[EventEnvelope]) -> None:
        touched = await self.tickets.apply_batch(conn, events)
        if touched:
            await self.clocks.delete(conn, list(touched))
            pending = [row for ticket in touched.values() if ticket is not None for row in sla_board.board_rows(ticket)]
            await self.clocks.insert(conn, pending)
