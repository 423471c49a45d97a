"""The ticket list and a ticket's document, read from the `tickets` read model (ticket_list, ticket_details).

List queries are keyset-paginated on (sort column, ticket_id), the order of the list's indexes, each of which
leads with desk_id. A list over several desks asks each desk for its first page and merges them (UNION ALL
of per-desk queries, each an index scan in order), instead of sorting every matching ticket."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ticketflow.queries.domain.routes import TICKET_SORTS, UNASSIGNED

LIST_COLUMNS = (
    "ticket_id",
    "desk_id",
    "track_id",
    "organisation_id",
    "requester_id",
    "status",
    "priority",
    "category",
    "queue_id",
    "assignee",
    "subject",
    "opened_at",
    "updated_at",
    "sla_state",
    "sla_due_at",
    "feature_outcome",
    "excluded",
)
_DETAIL = "SELECT doc::text FROM ticket_details WHERE ticket_id = $1 AND desk_id = ANY($2::text[])"


@dataclass(frozen=True)
class TicketFilter:
    desks: tuple[str, ...]  # already narrowed to what the token reads
    statuses: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    sla_states: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


class _Sql:
    def __init__(self) -> None:
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def list_query(
    where: TicketFilter, sort: str, after: tuple[Any, uuid.UUID] | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL (and its arguments) of one page, `limit + 1` rows (one more tells whether a next page exists),
    each with the sort column's value as `sort_key` (for the next cursor)."""
    column, descending, _ = TICKET_SORTS[sort]
    sql = _Sql()
    conditions = []
    for name, values in (
        ("status", where.statuses),
        ("queue_id", where.queues),
        ("priority", where.priorities),
        ("sla_state", where.sla_states),
        ("category", where.categories),
        ("organisation_id", where.organisations),
    ):
        if values:
            conditions.append(f"{name} = ANY({sql.arg(list(values))}::text[])")
    if where.assignees:
        named = [a for a in where.assignees if a != UNASSIGNED]
        either = [f"assignee = ANY({sql.arg(named)}::text[])"] if named else []
        if UNASSIGNED in where.assignees:
            either.append("assignee IS NULL")
        conditions.append("(" + " OR ".join(either) + ")")
    if where.words:
        conditions.append(f"search @@ to_tsquery('simple', {sql.arg(' & '.join(w + ':*' for w in where.words))})")
    if after is not None:
        conditions.append(
            f"({column}, ticket_id) {'<' if descending else '>'} ({sql.arg(after[0])}, {sql.arg(after[1])})"
        )
    direction = "DESC" if descending else "ASC"
    order = f"{column} {direction}, ticket_id {direction}"
    rows = sql.arg(limit + 1)
    selected = ", ".join((*LIST_COLUMNS, f"{column} AS sort_key"))
    shared = "".join(f" AND {c}" for c in conditions)
    parts = [
        f"SELECT {selected} FROM ticket_list WHERE desk_id = {sql.arg(desk)}{shared} ORDER BY {order} LIMIT {rows}"
        for desk in where.desks
    ]
    if len(parts) == 1:
        return parts[0], sql.args
    merged = " UNION ALL ".join(f"({part})" for part in parts)
    return (
        f"SELECT * FROM ({merged}) AS page ORDER BY sort_key {direction}, ticket_id {direction} LIMIT {rows}",
        sql.args,
    )


async def ticket_page(
    pool: asyncpg.Pool, where: TicketFilter, sort: str, after: tuple[Any, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    if not where.desks:
        return []
    sql, args = list_query(where, sort, after, limit)
    return list(await pool.fetch(sql, *args))


async def ticket_document(pool: asyncpg.Pool, ticket_id: uuid.UUID, desks: Sequence[str]) -> bytes | None:
    """The ticket's document as stored (JSON), if it belongs to one of `desks`."""
    text = await pool.fetchval(_DETAIL, ticket_id, list(desks))
    return None if text is None else text.encode()
