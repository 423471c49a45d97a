"""Composition: the query API over the projector's read models (docs/queries.md).

Run: `python -m ticketflow.queries` (TICKETFLOW_QUERIES_PORT, default 8007). It reads the read models and
the checkpoints and writes nothing, so any number of instances may serve side by side."""

from __future__ import annotations

import logging
from pathlib import Path

from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.queries.adapters.checkpoints import Checkpoints
from ticketflow.queries.app import READ_MODELS, Queries
from ticketflow.queries.domain.routes import route_params
from ticketflow.queries.domain.tokens import Grants, TokenConfigError, grants, parse_grants
from ticketflow.queries.http import api, endpoints
from ticketflow.queries.openapi import encoded
from ticketflow.queries.settings import QueriesSettings
from ticketflow.runtime.service import Runtime, Service

log = logging.getLogger("ticketflow.queries")


def load_grants(settings: QueriesSettings, desks: DeskRegistry) -> Grants:
    """The configured tokens (file and environment); raises `TokenConfigError` naming each problem."""
    path = settings.tokens_path()
    try:
        text = Path(path).read_text(encoding="utf-8") if path else None
    except OSError as error:
        raise TokenConfigError(f"{settings.variable('tokens_file')}: cannot read {path}: {error}") from None
    return grants(parse_grants(text, settings.tokens), desks.desks)


def build(settings: QueriesSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks(settings.desk_folder())
    tokens = load_grants(settings, desks)
    params = route_params(sorted(desks.desks), max_limit=settings.max_limit, max_wait_ms=settings.max_wait_ms)

    async def start(rt: Runtime) -> None:
        if not len(tokens):
            log.warning(
                "no tokens configured (%s, %s): every request will be refused",
                settings.variable("tokens_file"),
                settings.variable("tokens"),
            )
        # One log line per request would be most of a busy API's CPU: uvicorn's access log is off.
        access = logging.getLogger("uvicorn.access")
        access.handlers, access.propagate = [], False
        checkpoints = Checkpoints(rt.pool, READ_MODELS)
        await checkpoints.refresh()
        routes = endpoints(params)
        rt.serve(*api(routes, Queries(rt.pool, desks, checkpoints), tokens, encoded(routes)))
        rt.background("checkpoint notices", checkpoints.run)
        rt.readiness("checkpoint notices", checkpoints.ready)

    return Service("queries", settings, start)
