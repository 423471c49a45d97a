"""The HTTP server span and request metrics of a service's public port: one ASGI middleware.

Per request: the W3C `traceparent` of the request is continued (or a trace starts: the sampler decides)
and is current while the route runs, so what the route publishes or stores carries it (intake writes it
on `chat.inbound`); `ticketflow_http_requests_total` counts the request by route template, method and
status, `ticketflow_http_request_seconds` times it.

Why not opentelemetry-instrumentation-asgi: measured on this machine (an empty Starlette route called
in-process, 20,000 times), it added 60-170 µs per request with sampling at 0 % and 10 %, against
~170 µs of CPU for intake's whole BotX webhook. This middleware's unsampled path is a header lookup, a
root decision and two counters (~5 µs); a sampled request is recorded by `tracing.EdgeSpans` (~2 µs
here, the OTLP encoding in the export thread) instead of a live SDK span (~30 µs), wherever the sampler
is parent-based (docs/operations.md "Tracing")."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketflow.messaging import tracing
from ticketflow.messaging.metrics import LATENCY_BUCKETS
from ticketflow.runtime.tracing import EdgeSpan, EdgeSpans

HTTP_REQUESTS = Counter(
    "ticketflow_http_requests", "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "ticketflow_http_request_seconds", "HTTP request duration, by route template", ["route"], buckets=LATENCY_BUCKETS
)
UNMATCHED = "unmatched"  # no route: one label for every unknown path (bounded cardinality)


class HttpTelemetry:
    def __init__(
        self, app: ASGIApp, routes: list[BaseRoute], *, traced: bool, metered: bool, edge: EdgeSpans | None = None
    ) -> None:
        self.app = app
        self.routes = routes  # the router's own list: routes added at start-up are found too
        self.traced = traced
        self.edge = edge
        self.metered = metered
        self._templates: dict[Any, str] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labels() costs more than inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.traced or self.metered):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def answered(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method: str = scope["method"]
        span: Any = None
        edge: EdgeSpan | None = None
        token = None
        if self.edge is not None:
            edge, context = self.edge.start(_remote_parent(scope), method)
            token = otel_context.attach(context)
        elif self.traced:
            span, sdk_context = tracing.start(method, _remote_parent(scope), SpanKind.SERVER,
                                              {"http.request.method": method})  # fmt: skip
            token = otel_context.attach(sdk_context) if sdk_context is not None else None
        try:
            await self.app(scope, receive, answered)
        finally:
            if token is not None:
                otel_context.detach(token)
            route = self._route(scope)
            if edge is not None:
                attributes: dict[str, str | int] = {
                    "http.request.method": method, "http.route": route, "http.response.status_code": status,
                }  # fmt: skip
                edge.finish(f"{method} {route}", attributes, status >= 500)
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status})
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                span.end()
            if self.metered:
                children = self._children.get((route, method, status))
                if children is None:
                    children = (HTTP_REQUESTS.labels(route, method, str(status)), HTTP_SECONDS.labels(route))
                    self._children[(route, method, status)] = children
                children[0].inc()
                children[1].observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        template = self._templates.get(endpoint)
        if template is None:
            for route in self.routes:
                if isinstance(route, Route):
                    self._templates[route.endpoint] = route.path
            template = self._templates.setdefault(endpoint, UNMATCHED)
        return template


def _remote_parent(scope: Scope) -> trace.SpanContext | None:
    traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    return tracing.parse(traceparent, tracestate) if traceparent else None
