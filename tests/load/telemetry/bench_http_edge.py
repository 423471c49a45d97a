"""What the HTTP span and request metrics cost a request, in-process: one Starlette route called directly
through ASGI (no server, no sockets) N times per variant, minus the same route without middleware.

Variants: ticketflow's middleware (`ticketflow.runtime.http_telemetry`) with metrics only, and with
tracing at 0 %, 10 % and 100 % (parent-based ratio sampler; sampled spans go to the export processor as
`EdgeSpans` makes them); opentelemetry-instrumentation-asgi's middleware at 0 % and 10 % with the same
SDK. Spans are handed to a BatchSpanProcessor whose exporter drops them, so the OTLP encoding (done in the
export thread in production) is not in the figures. The variants run interleaved, `--rounds` times; the
median per variant is printed, as µs of CPU (`time.process_time`) and of wall time per request.

Usage: python tests/load/telemetry/bench_http_edge.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message
from tabulate import tabulate

from ticketflow.runtime.http_telemetry import HttpTelemetry
from ticketflow.runtime.tracing import EdgeSpans, PresetTraceIds, RootDecisions

BODY = b'{"text": "hello"}'


class Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def accepted(request: Request) -> Response:
    await request.body()
    return Response(b'{"result":"accepted"}', 202, media_type="application/json")


def provider(ratio: float) -> tuple[TracerProvider, BatchSpanProcessor]:
    made = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)), id_generator=PresetTraceIds())
    processor = BatchSpanProcessor(Dropped())
    made.add_span_processor(processor)
    return made, processor


def variants() -> dict[str, ASGIApp]:
    routes: list[BaseRoute] = [Route("/command", accepted, methods=["POST"])]
    found: dict[str, ASGIApp] = {"no middleware": Starlette(routes=routes)}
    found["ticketflow: metrics only"] = HttpTelemetry(Starlette(routes=routes), routes, traced=False, metered=True)
    for ratio in (0.0, 0.1, 1.0):
        made, processor = provider(ratio)
        edge = EdgeSpans(made, [processor], RootDecisions(made, made.id_generator))  # type: ignore[arg-type]
        app = HttpTelemetry(Starlette(routes=routes), routes, traced=True, metered=True, edge=edge)
        found[f"ticketflow: metrics + tracing {ratio:.0%}"] = app
    for ratio in (0.0, 0.1):
        made, _ = provider(ratio)
        found[f"instrumentation-asgi: tracing {ratio:.0%}"] = OpenTelemetryMiddleware(
            Starlette(routes=routes), tracer_provider=made
        )
    return found


async def drive(app: ASGIApp, requests: int) -> tuple[float, float]:
    """CPU and wall seconds for `requests` POSTs to the app."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/command", "raw_path": b"/command", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8001),
        }  # fmt: skip

    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        await app(scope(), receive, send)
    return time.process_time() - cpu, time.perf_counter() - wall


async def main(args: argparse.Namespace) -> None:
    apps = variants()
    for app in apps.values():
        await drive(app, 2000)  # warm-up: imports, caches, the route templates
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            samples[name].append(await drive(app, args.requests))
    per_request: Callable[[list[float]], float] = lambda values: statistics.median(values) / args.requests * 1e6  # noqa: E731
    bare_cpu = per_request([cpu for cpu, _ in samples["no middleware"]])
    bare_wall = per_request([wall for _, wall in samples["no middleware"]])
    rows = []
    for name, runs in samples.items():
        cpu, wall = per_request([c for c, _ in runs]), per_request([w for _, w in runs])
        rows.append([name, f"{cpu:.1f}", f"{cpu - bare_cpu:+.1f}", f"{wall:.1f}", f"{wall - bare_wall:+.1f}"])
    print(tabulate(rows, headers=["variant", "CPU µs/req", "vs none", "wall µs/req", "vs none"]))
    print(f"{args.requests:,} requests × {args.rounds} rounds per variant (median); load average {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
