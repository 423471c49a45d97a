"""The OpenAPI 3.1 document of the query API, built from the same declarations the routes validate with
(`Endpoint.params`) and the answers' msgspec Structs (their JSON Schemas), so it cannot drift from the code.
Served at /v1/openapi.json; `python -m ticketflow.queries openapi` prints it."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ticketflow.queries.domain import answers as a
from ticketflow.queries.http import Endpoint

_REFUSALS = {
    "400": "a parameter, cursor or path value the route cannot take (the reason names it)",
    "401": "no bearer token, or one that is not configured",
    "403": "a desk this token does not read",
    "404": "no such desk, ticket or organisation among the desks this token reads",
    "503": "the read models are unreachable for now; try again",
}
_PATH_PARAMS = {
    "ticket_id": ("the ticket's id", {"type": "string", "format": "uuid"}),
    "desk_id": ("a desk id (the desk configuration's)", {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"}),
    "organisation_id": (
        "platform:tenant, as the register names it",
        {"type": "string", "pattern": "^[a-z0-9]{1,20}:[A-Za-z0-9_.@-]{1,200}$"},
    ),
}


def document(endpoints: list[Endpoint], version: str = "1") -> dict[str, Any]:
    answers = sorted({e.answer for e in endpoints} | {a.Error}, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(answers, ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {}
    for endpoint, ref in zip(endpoints, (refs[answers.index(e.answer)] for e in endpoints), strict=True):
        paths[endpoint.path] = {"get": _operation(endpoint, ref)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ticketflow query API",
            "version": version,
            "description": "Read models of the ticket engine for dashboards (docs/queries.md). Every answer says "
            "up to which global position of the event log it is current (`position`); `min_position` "
            "waits, at most `wait_ms`, until the read models include a given event.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a configured token"}},
        },
    }


def _operation(endpoint: Endpoint, answer: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name in re.findall(r"{(\w+)}", endpoint.path):
        description, schema = _PATH_PARAMS[name]
        parameters.append({"name": name, "in": "path", "required": True, "description": description, "schema": schema})
    for param in endpoint.params.params:
        entry: dict[str, Any] = {
            "name": param.name,
            "in": "query",
            "required": False,
            "description": param.description,
            "schema": param.schema,
        }
        if not param.explode:
            entry.update(style="form", explode=False)
        parameters.append(entry)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "the answer",
            "headers": {"X-Position": {"description": "the answer's position", "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": answer}},
        }
    }
    responses.update({status: {"description": why, **error} for status, why in _REFUSALS.items()})
    return {
        "operationId": endpoint.operation,
        "summary": endpoint.summary,
        "parameters": parameters,
        "responses": responses,
    }


def encoded(endpoints: list[Endpoint]) -> bytes:
    return msgspec.json.format(msgspec.json.encode(document(endpoints)), indent=2) + b"\n"
