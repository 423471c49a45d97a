"""The desk's boards: the queue backlog, the SLA board and agent load (queue_backlog, sla_board_clocks,
agent_load, agent_load_tickets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

_WAITING = "('ready', 'routed', 'assigned', 'in_progress', 'waiting_on_customer')"  # the partial index's
_HOLDING = "('assigned', 'in_progress', 'waiting_on_customer')"

_AGES = (  # (name, opened after now minus, opened at or before now minus)
    ("under_1h", "1 hour", None),
    ("h1_4", "4 hours", "1 hour"),
    ("h4_24", "1 day", "4 hours"),
    ("d1_3", "3 days", "1 day"),
    ("d3_7", "7 days", "3 days"),
    ("over_7d", None, "7 days"),
)
_NOW = "$2::timestamptz"
_BUCKETS = ",\n".join(
    "count(*) FILTER (WHERE "
    + " AND ".join(
        ([f"opened_at > {_NOW} - interval '{newer}'"] if newer else [])
        + ([f"opened_at <= {_NOW} - interval '{older}'"] if older else [])
    )
    + f") AS {name}"
    for name, newer, older in _AGES
)
_BACKLOG = f"""
SELECT queue_id, priority, count(*) AS tickets, count(*) FILTER (WHERE assignee IS NULL) AS unassigned,
       min(opened_at) AS oldest,
       {_BUCKETS}
FROM queue_backlog
WHERE desk_id = $1 AND status IN {_WAITING}
  AND (cardinality($3::text[]) = 0 OR queue_id = ANY($3::text[]))
  AND (cardinality($4::text[]) = 0 OR priority = ANY($4::text[]))
GROUP BY queue_id, priority
ORDER BY queue_id NULLS FIRST, array_position(ARRAY['urgent', 'high', 'normal', 'low'], priority)
"""


async def backlog(
    pool: asyncpg.Pool, desk_id: str, now: datetime, queues: Sequence[str], priorities: Sequence[str]
) -> list[asyncpg.Record]:
    return list(await pool.fetch(_BACKLOG, desk_id, now, list(queues), list(priorities)))


CLOCK_COLUMNS = (
    "ticket_id",
    "target",
    "priority",
    "queue_id",
    "assignee",
    "state",
    "deadline",
    "breached",
    "warning_level",
    "started_at",
    "paused_at",
    "policy_id",
    "target_seconds",
)


def board_query(
    cutoffs: Mapping[str, datetime], queues: Sequence[str], assignees: Sequence[str], priorities: Sequence[str]
) -> tuple[str, list[Any]]:
    """One statement: each section's first $2 clocks, most urgent first, every row carrying the three
    sections' counts (computed once). $1 desk, $2 limit; the cutoff of each calendar track follows."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args) + 2}"

    filters = "".join(
        f" AND {column} = ANY({arg(list(values))}::text[])"
        for column, values in (("queue_id", queues), ("assignee", assignees), ("priority", priorities))
        if values
    )
    cases = " ".join(f"WHEN {arg(track)}::text THEN {arg(at)}::timestamptz" for track, at in cutoffs.items())
    cutoff = f"CASE calendar_track {cases} END" if cases else "NULL::timestamptz"
    at_risk = f"desk_id = $1 AND state = 'running' AND NOT breached AND deadline <= {cutoff}{filters}"
    breached = f"desk_id = $1 AND breached{filters}"
    paused = f"desk_id = $1 AND state = 'paused'{filters}"
    columns = ", ".join(CLOCK_COLUMNS)
    counts = ", ".join(
        f"(SELECT count(*) FROM sla_board_clocks WHERE {where}) AS {name}"
        for name, where in (("at_risk_count", at_risk), ("breached_count", breached), ("paused_count", paused))
    )
    sections = " UNION ALL ".join(
        f"(SELECT '{name}' AS section, {columns} FROM sla_board_clocks WHERE {where} ORDER BY {order} LIMIT $2)"
        for name, where, order in (
            ("at_risk", at_risk, "deadline, ticket_id, target"),
            ("breached", breached, "deadline NULLS LAST, ticket_id, target"),
            ("paused", paused, "paused_at, ticket_id, target"),
        )
    )
    return f"SELECT s.*, {counts} FROM ({sections}) AS s", args


async def sla_board(
    pool: asyncpg.Pool,
    desk_id: str,
    limit: int,
    cutoffs: Mapping[str, datetime],
    queues: Sequence[str],
    assignees: Sequence[str],
    priorities: Sequence[str],
) -> tuple[dict[str, list[asyncpg.Record]], dict[str, int]]:
    """The sections' clocks and counts."""
    sql, args = board_query(cutoffs, queues, assignees, priorities)
    rows = await pool.fetch(sql, desk_id, limit, *args)
    sections: dict[str, list[asyncpg.Record]] = {"at_risk": [], "breached": [], "paused": []}
    for row in rows:
        sections[row["section"]].append(row)
    counts = {name: rows[0][f"{name}_count"] if rows else 0 for name in sections}
    return sections, counts


_AGENTS = f"""
SELECT a.agent_id, a.status, a.capacity, coalesce(h.held, 0) AS assigned, a.queues::text, a.skills::text,
       a.languages::text, a.updated_at
FROM agent_load a
LEFT JOIN (
    SELECT assignee, count(*) AS held FROM agent_load_tickets
    WHERE desk_id = $1 AND status IN {_HOLDING} GROUP BY assignee
) h ON h.assignee = a.agent_id
WHERE (a.queues ?| $2::text[] OR h.held IS NOT NULL)
  AND (cardinality($3::text[]) = 0 OR a.status = ANY($3::text[]))
  AND a.agent_id > $4
ORDER BY a.agent_id
LIMIT $5
"""


async def agents(
    pool: asyncpg.Pool, desk_id: str, queues: Sequence[str], statuses: Sequence[str], after: str, limit: int
) -> list[asyncpg.Record]:
    """Agents of the desk's queues, or holding its tickets, after `after` by id (`limit` rows)."""
    return list(await pool.fetch(_AGENTS, desk_id, list(queues), list(statuses), after, limit))


_HOURS_BEFORE = """
SELECT queue_id, sum(entered - exited)::bigint AS backlog FROM backlog_hours
WHERE desk_id = $1 AND hour < $2 AND (cardinality($3::text[]) = 0 OR queue_id = ANY($3::text[]))
GROUP BY queue_id
"""
_HOURS = """
SELECT queue_id, hour, entered, exited FROM backlog_hours
WHERE desk_id = $1 AND hour BETWEEN $2 AND $4 AND (cardinality($3::text[]) = 0 OR queue_id = ANY($3::text[]))
"""


async def backlog_hours(
    pool: asyncpg.Pool, desk_id: str, first: datetime, last: datetime, queues: Sequence[str]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The backlog before `first` per queue (queue '' : waiting for routing), and each hour's moves from `first`
    to `last` (UTC hour starts), read in one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        before = await conn.fetch(_HOURS_BEFORE, desk_id, first, list(queues))
        moves = await conn.fetch(_HOURS, desk_id, first, list(queues), last)
    return list(before), list(moves)
