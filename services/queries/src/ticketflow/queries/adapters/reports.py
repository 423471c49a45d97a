"""The desk's reports: daily metrics (desk_metric_tickets) and the per-organisation register
(register_organisations, register_entries)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

_COUNTED = "excluded IS NULL"
_METRICS = f"""
SELECT day,
       count(*) FILTER (WHERE {_COUNTED}) AS opened,
       count(*) FILTER (WHERE excluded IS NOT NULL) AS excluded,
       count(*) FILTER (WHERE {_COUNTED} AND resolved) AS resolved,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_s) FILTER (WHERE {_COUNTED}) AS fr50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_s) FILTER (WHERE {_COUNTED}) AS fr90,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_s) FILTER (WHERE {_COUNTED}) AS res50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_s) FILTER (WHERE {_COUNTED}) AS res90,
       coalesce(sum(targets_attained) FILTER (WHERE {_COUNTED}), 0)::bigint AS attained,
       coalesce(sum(targets_missed) FILTER (WHERE {_COUNTED}), 0)::bigint AS missed,
       coalesce(sum(breaches) FILTER (WHERE {_COUNTED}), 0)::bigint AS breaches,
       count(*) FILTER (WHERE {_COUNTED} AND reopened) AS reopened,
       count(*) FILTER (WHERE {_COUNTED} AND (resolved OR reopened)) AS ever_resolved
FROM desk_metric_tickets
WHERE desk_id = $1 AND day BETWEEN $2 AND $3
GROUP BY day ORDER BY day
"""


async def metrics(pool: asyncpg.Pool, desk_id: str, first: date, last: date) -> list[asyncpg.Record]:
    return list(await pool.fetch(_METRICS, desk_id, first, last))


_ORGANISATIONS = """
SELECT organisation_id, tickets, open, resolved, feature_requests, in_sprint, planned, declined
FROM register_organisations WHERE desk_id = $1 ORDER BY organisation_id
"""


async def organisations(pool: asyncpg.Pool, desk_id: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(_ORGANISATIONS, desk_id))


async def has_organisation(pool: asyncpg.Pool, desk_id: str, organisation_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM register_organisations WHERE desk_id = $1 AND organisation_id = $2", desk_id, organisation_id
    )
    return bool(found)


REGISTER_COLUMNS = (
    "ticket_id",
    "requester_id",
    "requester_name",
    "subject",
    "category",
    "status",
    "priority",
    "assignee",
    "opened_at",
    "updated_at",
    "feature_outcome",
    "feature_reason",
    "outcome_by",
    "outcome_at",
)
_REGISTER = f"""
SELECT {", ".join(REGISTER_COLUMNS)} FROM register_entries
WHERE desk_id = $1 AND organisation_id = $2
  AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
  AND (cardinality($4::text[]) = 0 OR coalesce(feature_outcome, 'none') = ANY($4::text[]))
  AND (cardinality($5::text[]) = 0 OR category = ANY($5::text[]))
  AND ($6::timestamptz IS NULL OR (opened_at, ticket_id) < ($6::timestamptz, $7::uuid))
ORDER BY opened_at DESC, ticket_id DESC
LIMIT $8
"""


async def register(
    pool: asyncpg.Pool,
    desk_id: str,
    organisation_id: str,
    filters: tuple[Sequence[str], Sequence[str], Sequence[str]],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """One page of an organisation's register, newest first (`limit` rows)."""
    statuses, outcomes, categories = (list(f) for f in filters)
    at: Any = after[0] if after else None
    last: Any = after[1] if after else None
    return list(await pool.fetch(_REGISTER, desk_id, organisation_id, statuses, outcomes, categories, at, last, limit))


# Business seconds where a first-response bucket starts: 5, 15, 30 min, 1, 2, 4, 8, 16, 40 h.
RESPONSE_BOUNDS = (0, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 57_600, 144_000)
_FIRST_RESPONSES = f"""
SELECT width_bucket(first_response_s, $4::bigint[]) AS bucket, count(*) AS tickets
FROM desk_metric_tickets
WHERE desk_id = $1 AND day BETWEEN $2 AND $3 AND {_COUNTED}
GROUP BY 1
"""


async def first_responses(pool: asyncpg.Pool, desk_id: str, first: date, last: date) -> dict[int | None, int]:
    """Counted tickets opened in the days, by first-response bucket (1: the first bound; None: no reply yet)."""
    rows = await pool.fetch(_FIRST_RESPONSES, desk_id, first, last, list(RESPONSE_BOUNDS))
    return {r["bucket"]: r["tickets"] for r in rows}
