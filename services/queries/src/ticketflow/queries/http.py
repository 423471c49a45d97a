"""The query API's routes: authenticate the bearer token, read the path and query parameters, ask the app,
encode the answer. Every refusal is JSON with a reason (`{"error": ..., "parameter": ...}`): 400 for a bad
parameter or cursor, 401 for a missing or unknown token, 403 for a desk the token does not read, 404 for
what is not there (or not the token's to see), 503 while the database is unreachable."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from ticketflow.eventstore.connection import retryable_errors
from ticketflow.queries.app import Forbidden, NotFound, Queries
from ticketflow.queries.domain import answers as a
from ticketflow.queries.domain.params import BadRequest, Params
from ticketflow.queries.domain.routes import RouteParams
from ticketflow.queries.domain.tokens import Grants, Principal

Handler = Callable[[Queries, Principal, dict[str, str], dict[str, Any]], Awaitable[msgspec.Struct]]
_encode = msgspec.json.Encoder().encode
PREFIX = "/v1"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ticketflow"'}


class Unauthorized(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    """One GET route: what it takes (path and query parameters), what it answers, how."""

    path: str
    operation: str
    summary: str
    params: Params
    answer: type[msgspec.Struct]
    handler: Handler


def endpoints(params: RouteParams) -> list[Endpoint]:
    return [
        Endpoint(
            "/v1/me",
            "me",
            "Who this token is: its name, the desks it reads, the agent it acts as",
            params.plain,
            a.Me,
            lambda q, who, path, p: _ready(q.me(who)),
        ),
        Endpoint(
            "/v1/positions",
            "positions",
            "How far each read model has followed the global log",
            params.plain,
            a.Positions,
            lambda q, who, path, p: _ready(q.positions()),
        ),
        Endpoint(
            "/v1/tickets",
            "listTickets",
            "Tickets of the desks this token reads: filters, sort, cursor pages",
            params.tickets,
            a.TicketPage,
            lambda q, who, path, p: q.tickets(who, p),
        ),
        Endpoint(
            "/v1/tickets/{ticket_id}",
            "getTicket",
            "One ticket: state, conversation, SLA clocks, deliveries and the timeline of every event",
            params.ticket,
            a.TicketAnswer,
            lambda q, who, path, p: q.ticket(who, _ticket_id(path), p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/backlog",
            "backlog",
            "Waiting tickets per queue and priority, by age",
            params.backlog,
            a.Backlog,
            lambda q, who, path, p: q.backlog(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/sla-board",
            "slaBoard",
            "SLA clocks at risk within N business minutes, breached, and paused",
            params.sla_board,
            a.SlaBoard,
            lambda q, who, path, p: q.sla_board(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/agents",
            "agents",
            "Agents of the desk: status, capacity, tickets held",
            params.agents,
            a.AgentPage,
            lambda q, who, path, p: q.agents(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/metrics",
            "metrics",
            "Per day: first response and resolution (business time, p50/p90), SLA attainment, breaches, "
            "reopen rate; referred and duplicate tickets excluded",
            params.metrics,
            a.Metrics,
            lambda q, who, path, p: q.metrics(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/backlog-history",
            "backlogHistory",
            "The backlog per queue at the end of each hour, with the tickets that entered and exited it (hours "
            "of the events' own times, UTC)",
            params.backlog_history,
            a.BacklogHistory,
            lambda q, who, path, p: q.backlog_history(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/first-responses",
            "firstResponses",
            "How long tickets opened in the days waited for their first reply, in business time, as a histogram; "
            "referred and duplicate tickets excluded",
            params.first_responses,
            a.FirstResponses,
            lambda q, who, path, p: q.first_responses(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/organisations",
            "organisations",
            "The register's customer organisations with their counts and feature-request outcomes",
            params.organisations,
            a.Organisations,
            lambda q, who, path, p: q.organisations(who, path["desk_id"], p),
        ),
        Endpoint(
            "/v1/desks/{desk_id}/organisations/{organisation_id}/tickets",
            "organisationRegister",
            "One organisation's register: its tickets, newest first, with feature-request outcomes",
            params.register,
            a.RegisterPage,
            lambda q, who, path, p: q.register(who, path["desk_id"], path["organisation_id"], p),
        ),
    ]


async def _ready(answer: msgspec.Struct) -> msgspec.Struct:
    return answer


def _ticket_id(path: dict[str, str]) -> uuid.UUID:
    try:
        return uuid.UUID(path["ticket_id"])
    except ValueError:
        raise BadRequest("the ticket id must be a UUID", "ticket_id") from None


def api(endpoints_: list[Endpoint], queries: Queries, grants: Grants, openapi: bytes) -> list[BaseRoute]:
    """Everything under /v1, as an application of its own (its refusals, no such route or method not allowed,
    are JSON like every other), then `Elsewhere` for any other path."""

    def authenticate(request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        principal = grants.principal(token.strip())
        if principal is None:
            raise Unauthorized("unknown token")
        if principal.expired(datetime.now(UTC)):
            raise Unauthorized(f"the token expired at {principal.expires_at:%Y-%m-%d %H:%M %Z}")
        return principal

    def serve(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        handler = endpoint.handler

        async def answer(request: Request) -> Response:
            try:
                principal = authenticate(request)
                for name, value in request.path_params.items():
                    if "\x00" in value:
                        raise BadRequest(f"{name}: contains a NUL character (U+0000)", name)
                params = endpoint.params.parse(request.query_params.multi_items())
                answered = await handler(queries, principal, request.path_params, params)
            except Unauthorized as problem:
                return _error(401, str(problem), headers=_CHALLENGE)
            except BadRequest as problem:
                return _error(400, problem.reason, problem.parameter)
            except Forbidden as problem:
                return _error(403, str(problem))
            except NotFound as problem:
                return _error(404, str(problem))
            except (*retryable_errors(), asyncpg.CannotConnectNowError) as problem:
                return _error(503, f"the read models are unreachable: {type(problem).__name__}")
            position = str(getattr(answered, "position", ""))
            return Response(_encode(answered), media_type="application/json", headers={"X-Position": position})

        return answer

    async def document(_: Request) -> Response:
        return Response(openapi, media_type="application/json")

    routes = [
        Route("/openapi.json", document, methods=["GET"]),
        *(Route(e.path.removeprefix(PREFIX), serve(e), methods=["GET"], name=e.operation) for e in endpoints_),
    ]
    return [Mount(PREFIX, app=Starlette(routes=routes, exception_handlers={HTTPException: http_error})), Elsewhere()]


class Elsewhere(BaseRoute):
    """After every other route: any other path (one with a newline matches no route pattern) is a JSON 404."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error(404, "no such route (the API is under /v1; /v1/openapi.json describes it)")(scope, receive, send)


def _error(status: int, reason: str, parameter: str | None = None, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(a.Error(reason, parameter)), status, headers=headers, media_type="application/json")


async def http_error(_: Request, problem: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) as JSON too."""
    assert isinstance(problem, HTTPException)
    return _error(problem.status_code, str(problem.detail), headers=dict(problem.headers or {}))
