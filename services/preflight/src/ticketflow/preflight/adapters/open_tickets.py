"""Open tickets in PostgreSQL and their pg_trgm candidates for duplicate checks (table: migration 0001)."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from ticketflow.preflight.domain.duplicates import DEFAULT_THRESHOLD, DuplicateMatch, TicketText, likely_duplicates

# set_config(..., true) is transaction-local: the threshold of `%` for this query only.
CANDIDATES_SQL = """
SELECT ticket_id, organisation_id, kind, title, body, merge_scope, similarity(search_text, lower($3)) AS similarity
FROM preflight_open_tickets
WHERE organisation_id = $1 AND kind = $2 AND search_text % lower($3)
ORDER BY similarity DESC
LIMIT $4
"""
UPSERT_SQL = """
INSERT INTO preflight_open_tickets (ticket_id, organisation_id, kind, title, body, merge_scope)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (ticket_id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, merge_scope = EXCLUDED.merge_scope
"""


class Connection(Protocol):
    """The part of asyncpg.Connection used here."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    def transaction(self) -> Any: ...


async def record_open_ticket(
    conn: Connection, ticket_id: uuid.UUID, organisation_id: str, kind: str, title: str, body: str, merge_scope: str
) -> None:
    await conn.execute(UPSERT_SQL, ticket_id, organisation_id, kind, title, body, merge_scope)


async def forget_ticket(conn: Connection, ticket_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM preflight_open_tickets WHERE ticket_id = $1", ticket_id)


async def trigram_candidates(
    conn: Connection, organisation_id: str, kind: str, text: str, *, min_similarity: float = 0.1, limit: int = 20
) -> list[tuple[TicketText, float]]:
    """Open tickets of the organisation whose pg_trgm similarity to `text` is at least `min_similarity`."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('pg_trgm.similarity_threshold', $1, true)", str(min_similarity))
        rows = await conn.fetch(CANDIDATES_SQL, organisation_id, kind, text, limit)
    return [
        (
            TicketText(
                ticket_id=str(r["ticket_id"]),
                organisation_id=r["organisation_id"],
                kind=r["kind"],
                text=f"{r['title']}. {r['body']}",
                merge_scope=r["merge_scope"],
            ),
            float(r["similarity"]),
        )
        for r in rows
    ]


async def find_duplicates(
    conn: Connection, new: TicketText, *, threshold: float = DEFAULT_THRESHOLD
) -> list[DuplicateMatch]:
    """pg_trgm narrows the open tickets to candidates; the pure score decides."""
    candidates = await trigram_candidates(conn, new.organisation_id, new.kind, new.text)
    return likely_duplicates(new, [ticket for ticket, _ in candidates], threshold)
