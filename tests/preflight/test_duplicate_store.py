"""pg_trgm candidates against the real PostgreSQL (migration 0001_open_tickets.sql)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from duplicates_eval import Figures, figures, load

import ticketflow.preflight
from ticketflow.preflight.adapters.open_tickets import (
    find_duplicates,
    forget_ticket,
    record_open_ticket,
    trigram_candidates,
)

pytestmark = pytest.mark.pg
MIGRATIONS = sorted((Path(ticketflow.preflight.__file__).parent / "migrations").glob("*.sql"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def conn(pg_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_database)
    for migration in MIGRATIONS:
        await connection.execute(migration.read_text(encoding="utf-8"))
    tickets, _ = load()
    for t in tickets:
        await record_open_ticket(connection, t.uuid, t.organisation_id, t.kind, t.title, t.body, t.organisation_id)
    yield connection
    await connection.close()


async def test_the_trigram_index_exists_and_the_query_can_use_it(conn: asyncpg.Connection) -> None:
    indexes = {
        r["indexname"]
        for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", "preflight_open_tickets")
    }
    assert "preflight_open_tickets_trgm" in indexes
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch("EXPLAIN SELECT 1 FROM preflight_open_tickets WHERE search_text % 'push ios'")
        )
    assert "preflight_open_tickets_trgm" in plan


async def test_candidates_stay_inside_the_organisation(conn: asyncpg.Connection) -> None:
    candidates = await trigram_candidates(conn, "globex", "bug", "Не приходят push-уведомления на iOS")
    assert candidates and {t.organisation_id for t, _ in candidates} == {"globex"}
    assert candidates[0][1] == max(similarity for _, similarity in candidates)


async def test_a_closed_ticket_is_no_longer_a_candidate(conn: asyncpg.Connection) -> None:
    tickets, _ = load()
    ticket = next(t for t in tickets if t.ticket_id == "g5")
    text = "Календарь не синхронизируется с Exchange"
    assert [t.ticket_id for t, _ in await trigram_candidates(conn, "globex", "bug", text)][:1] == [str(ticket.uuid)]
    await forget_ticket(conn, ticket.uuid)
    try:
        assert str(ticket.uuid) not in {t.ticket_id for t, _ in await trigram_candidates(conn, "globex", "bug", text)}
    finally:
        await record_open_ticket(
            conn, ticket.uuid, ticket.organisation_id, ticket.kind, ticket.title, ticket.body, ticket.organisation_id
        )


async def _measure(conn: asyncpg.Connection, sql_only_threshold: float | None) -> tuple[Figures, Figures]:
    tickets, queries = load()
    found: dict[str, set[str]] = {}
    for query in queries:
        if sql_only_threshold is None:
            matches = await find_duplicates(conn, query.as_text())
            found[query.query_id] = {m.ticket_id for m in matches}
        else:
            candidates = await trigram_candidates(
                conn, query.organisation_id, query.kind, query.text, min_similarity=sql_only_threshold
            )
            found[query.query_id] = {t.ticket_id for t, _ in candidates}
    split = {s: [q for q in queries if q.split == s] for s in ("dev", "heldout")}
    return (
        figures(tickets, split["dev"], lambda q: found[q.query_id]),
        figures(tickets, split["heldout"], lambda q: found[q.query_id]),
    )


async def test_precision_and_recall_through_postgres(conn: asyncpg.Connection) -> None:
    sql_dev, sql_heldout = await _measure(conn, sql_only_threshold=0.3)  # pg_trgm's default threshold
    dev, heldout = await _measure(conn, sql_only_threshold=None)
    print(f"\nsql-only(0.3) dev {sql_dev} heldout {sql_heldout}\nsql+score dev {dev} heldout {heldout}")
    assert dev.precision >= 0.85 and dev.recall >= 0.5
    assert heldout.precision >= 0.65 and heldout.recall >= 0.5
