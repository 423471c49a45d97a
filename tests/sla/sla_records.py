"""Kafka-record-shaped inputs for the SLA engine (lifecycle events as published envelopes), a store that
is down, and counts of what the store holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.envelope import EventEnvelope, envelope_encoder
from ticketflow.contracts.ids import deterministic_event_id
from ticketflow.eventstore import RetryableStoreError
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.domain.state import TicketSla


@dataclass
class Ticket:
    """Publishes one ticket's lifecycle as envelopes with consecutive stream versions."""

    ticket_id: uuid.UUID = field(default_factory=uuid.uuid4)
    version: int = 0

    def envelope(self, event: te.TicketEvent, at: int) -> bytes:
        self.version += 1
        envelope = EventEnvelope(
            event_id=deterministic_event_id("test", self.ticket_id, self.version),
            stream_id=f"ticket-{self.ticket_id}",
            stream_version=self.version,
            occurred_at=datetime.fromtimestamp(at, UTC),
            schema_version=1,
            event=event,
        )
        return envelope_encoder.encode(envelope)

    @property
    def key(self) -> bytes:
        return str(self.ticket_id).encode()


async def firing_counts(pool: asyncpg.Pool, tickets: list[Ticket]) -> dict[tuple[str, str, str], int]:
    """(stream, target, level or 'breach') -> how many firing events the store holds for these tickets."""
    rows = await pool.fetch(
        """SELECT stream_id, data->>'target' AS target, coalesce(data->>'level', 'breach') AS level, count(*) AS n
           FROM events WHERE event_type IN ('SlaWarning', 'SlaBreached') AND stream_id = ANY($1::text[])
           GROUP BY 1, 2, 3""",
        [f"sla-{t.ticket_id}" for t in tickets],
    )
    return {(r["stream_id"], r["target"], r["level"]): int(r["n"]) for r in rows}


async def count_of(pool: asyncpg.Pool, event_type: str, ticket: Ticket) -> int:
    query = "SELECT count(*) FROM events WHERE event_type = $1 AND stream_id = $2"
    return int(await pool.fetchval(query, event_type, f"sla-{ticket.ticket_id}"))


class DownStore(SlaWriter):
    """The store is unreachable: every append fails as the real one does."""

    async def write(self, states: object, pending: object) -> dict[uuid.UUID, TicketSla]:
        raise RetryableStoreError("append interrupted: connection refused")
