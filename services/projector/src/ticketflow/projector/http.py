"""The dashboard query API over the read models (JSON). Thin: validate the query, select, answer."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ticketflow.projector.domain.summary import COLUMNS

FILTERS = ("desk_id", "status", "queue_id", "assignee", "priority", "track_id")


def _json(row: Any) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, uuid.UUID) else v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in dict(row).items()
    }


def routes(pool: Any) -> list[Route]:
    def db() -> asyncpg.Pool:
        return pool() if callable(pool) else pool

    async def list_tickets(request: Request) -> Response:
        params = request.query_params
        unknown = set(params) - {*FILTERS, "limit"}
        if unknown:
            return JSONResponse({"error": f"unknown query parameter(s): {sorted(unknown)}", "allowed": FILTERS}, 400)
        try:
            limit = min(int(params.get("limit", "100")), 1000)
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, 400)
        where = [f"{name} = ${i + 1}" for i, name in enumerate(n for n in FILTERS if n in params)]
        values = [params[n] for n in FILTERS if n in params]
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM ticket_summaries"
            f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY opened_at DESC LIMIT {limit}"
        )
        rows = await db().fetch(sql, *values)
        return JSONResponse({"tickets": [_json(r) for r in rows]})

    async def get_ticket(request: Request) -> Response:
        try:
            ticket_id = uuid.UUID(request.path_params["ticket_id"])
        except ValueError:
            return JSONResponse({"error": "ticket id must be a UUID"}, 400)
        row = await db().fetchrow(f"SELECT {', '.join(COLUMNS)} FROM ticket_summaries WHERE ticket_id = $1", ticket_id)
        if row is None:
            return JSONResponse({"error": f"no ticket {ticket_id}"}, 404)
        return JSONResponse(_json(row))

    async def stats(_: Request) -> Response:
        rows = await db().fetch(
            """SELECT desk_id, status, count(*) AS tickets,
                      sum(sla_breaches) FILTER (WHERE NOT sla_excluded) AS sla_breaches,
                      sum(sla_warnings) FILTER (WHERE NOT sla_excluded) AS sla_warnings
               FROM ticket_summaries GROUP BY desk_id, status ORDER BY desk_id, status"""
        )
        return JSONResponse({"by_desk_and_status": [_json(r) for r in rows]})

    return [
        Route("/v1/tickets", list_tickets),
        Route("/v1/tickets/{ticket_id}", get_ticket),
        Route("/v1/stats", stats),
    ]
