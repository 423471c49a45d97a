"""OpenAPI 3.1 documents of the services' HTTP APIs, from what each `http.py` declares next to its
routes (`Operation`s) and the msgspec types of the bodies. The runtime's own routes (`/health/live`,
`/health/ready`) are in every document. `make openapi` writes docs/openapi/<service>.json; a test fails
when a committed document differs from the code, or when a service serves a route its document lacks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import BaseRoute, Route

REF = "#/components/schemas/{name}"


class Live(msgspec.Struct, frozen=True):
    service: str
    status: str


class Readiness(msgspec.Struct, frozen=True):
    """`checks`: "ok", or why not, per dependency (kafka, postgres, each consumer, each background task)."""

    service: str
    ready: bool
    checks: dict[str, str]


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    detail: str | None = None


@dataclass(frozen=True)
class Text:
    """A response body that is not JSON: its media type (the schema is a string)."""

    media_type: str


@dataclass(frozen=True)
class Operation:
    """One route and method: what it takes and what it answers (status -> description and body type)."""

    method: str
    path: str
    summary: str
    responses: dict[int, tuple[str, Any]]
    request: Any = None  # a msgspec type (JSON), or a content type string for a body that is not JSON
    parameters: Sequence[dict[str, Any]] = ()
    security: Sequence[str] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # request bodies documented elsewhere (a platform's)


HEALTH = (
    Operation("get", "/health/live", "the process serves HTTP", {200: ("live", Live)}),
    Operation("get", "/health/ready", "ready: the broker, the database, every consumer and background task",
              {200: ("ready", Readiness), 503: ("not ready: `checks` says why", Readiness)}),
)  # fmt: skip


# The operations port (runtime.operations), the same in every service: the health routes and the scrape.
METRICS = Operation(
    "get",
    "/metrics",
    "Prometheus metrics of this process (docs/operations.md lists each)",
    {200: ("the exposition format", Text(CONTENT_TYPE_LATEST)),
     404: ("metrics are off (TICKETFLOW_METRICS=false)", ErrorBody)},
)  # fmt: skip


def operations_document() -> dict[str, Any]:
    return document(
        "operations",
        "Every service's operations port (TICKETFLOW_<SERVICE>_OPS_PORT, default its HTTP port + 100): "
        "Prometheus metrics, liveness and readiness, apart from the public port.",
        [METRICS],
    )


def document(
    service: str, description: str, operations: Iterable[Operation], security_schemes: dict[str, Any] | None = None
) -> dict[str, Any]:
    ops = [*HEALTH, *operations]
    types = [t for op in ops for t in (op.request, *(body for _, body in op.responses.values())) if _is_type(t)]
    _, components = msgspec.json.schema_components(sorted(set(types), key=lambda t: t.__name__), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(ops, key=lambda o: (o.path, o.method)):
        paths.setdefault(op.path, {})[op.method] = _operation(service, op)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"ticketflow {service}", "version": "1.0.0", "description": description},
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items()))},
    }
    if security_schemes:
        doc["components"]["securitySchemes"] = security_schemes
    return doc


def _is_type(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, msgspec.Struct)


def _operation(service: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": f"{service}{_camel(op.method, op.path)}", "summary": op.summary}
    if op.parameters:
        out["parameters"] = list(op.parameters)
    if op.security:
        out["security"] = [{name: []} for name in op.security]
    if op.request is not None:
        content = (
            {"application/json": {"schema": {"$ref": REF.format(name=op.request.__name__)}}}
            if _is_type(op.request)
            else {str(op.request): {"schema": {"type": "object"}}}
        )
        out["requestBody"] = {"required": True, "content": content}
    out["responses"] = {
        str(status): {"description": text} | _content(body) for status, (text, body) in sorted(op.responses.items())
    }
    out.update(op.extra)
    return out


def _content(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, Text):
        return {"content": {body.media_type: {"schema": {"type": "string"}}}}
    return {"content": {"application/json": {"schema": _schema(body)}}}


def _schema(body: Any) -> dict[str, Any]:
    return {"$ref": REF.format(name=body.__name__)} if _is_type(body) else dict(body)


def _camel(method: str, path: str) -> str:
    words = [w for w in path.replace("{", "").replace("}", "").replace("-", "/").replace("_", "/").split("/") if w]
    return method.capitalize() + "".join(w.capitalize() for w in words)


def served(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path, method) of every route a service serves (HEAD, which Starlette adds to GET, left out)."""
    found = set()
    for route in routes:
        if isinstance(route, Route):
            found |= {(route.path, m.lower()) for m in (route.methods or {"GET"}) if m != "HEAD"}
    return found


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, methods in doc["paths"].items() for method in methods}
