"""An OTLP/HTTP trace receiver on loopback for tests: services export to it (`OTEL_EXPORTER_OTLP_ENDPOINT`)
and tests read the spans it decoded (`opentelemetry-proto`'s `ExportTraceServiceRequest`)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fakes.asgi import serve
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 hex digits
    span_id: str
    parent_span_id: str  # "" for a root
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    attributes: dict[str, Any]
    links: tuple[str, ...]  # the linked spans' trace ids


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "bool_value", "double_value") else str(value)


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    base_url: str = ""

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.receive(ExportTraceServiceRequest.FromString(body))
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def receive(self, export: ExportTraceServiceRequest) -> None:
        self.requests += 1
        for resource_spans in export.resource_spans:
            attributes = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(attributes.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            links=tuple(link.trace_id.hex() for link in span.links),
                        )
                    )

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id or trace_id in s.links]

    async def wait_for(self, found: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 60) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not found(self.spans):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    @asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[OtlpReceiver]:
        async with serve(self.app(), port) as base_url:
            self.base_url = base_url
            yield self


@dataclass
class OtlpSink:
    """An OTLP/HTTP endpoint that answers and counts, without decoding: for benchmarks, where a real
    collector runs elsewhere and decoding here would take CPU from the measurement."""

    requests: int = 0
    spans_bytes: int = 0
    base_url: str = ""

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            self.requests += 1
            self.spans_bytes += len(await request.body())
            return Response(b"", media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    @asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[OtlpSink]:
        async with serve(self.app(), port) as base_url:
            self.base_url = base_url
            yield self
