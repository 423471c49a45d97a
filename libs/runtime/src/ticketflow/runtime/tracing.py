"""The OpenTelemetry SDK of a process, configured by the standard `OTEL_*` variables.

- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf: `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...), `console` (development),
  both (`otlp,console`), or unset / `none`: no SDK at all, so spans cost nothing (OpenTelemetry's no-op
  API). This one default differs from the specification's (`otlp`): a process without a collector to
  send to must not retry exports forever. `OTEL_SDK_DISABLED=true` also turns it off.
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: the SDK's own (default `parentbased_always_on`;
  production: `parentbased_traceidratio` with `0.1`), `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`
  (default service name `ticketflow-<service>`), `OTEL_BSP_*` for the batch span processor.

Instrumented libraries (the OpenTelemetry packages): asyncpg (queries), httpx (pybotx's eXpress calls)
and aiohttp (Bitrix24 and webhook calls, portal checks). Their spans come from a second tracer provider
whose sampler is parent-based with no roots: a query or an outbound call is traced inside a traced piece
of work (a request, a record) and never starts a trace of its own (the relay's and the projections'
polling would otherwise be most of the traces). Outside sampled work a query goes straight to asyncpg
(`query_spans.SampledQueries`); an outbound HTTP call still passes an unsampled context on. HTTP server
spans are `http_telemetry`'s, consumer spans `ticketflow.messaging.tracing`'s.

`RootDecisions` makes a dropped root cheap, `EdgeSpans` a sampled HTTP span (their docstrings, and
docs/operations.md "Tracing")."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ticketflow.messaging import tracing

EXPORTERS = frozenset({"otlp", "console", "none"})
_EMPTY = tracing.EMPTY


class TracingSettingsError(ValueError):
    """An OTEL_* variable this process cannot run with (the message names it)."""


class PresetTraceIds(RandomIdGenerator):
    """Random ids, except that the next trace id can be chosen beforehand (by `RootDecisions`)."""

    def __init__(self) -> None:
        self._next = threading.local()

    def preset(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        chosen: int = getattr(self._next, "trace_id", 0)
        if chosen:
            self._next.trace_id = 0
            return chosen
        return super().generate_trace_id()


class RootDecisions:
    """A new trace (a webhook without `traceparent`, a record without one): the configured sampler decides
    on a trace id drawn here, and only a sampled root goes through the SDK (which draws the same id, and
    decides again). A dropped root is then two random numbers and one decision instead of an SDK span
    (~10 µs), per webhook request. For the standard `parentbased_traceidratio` sampler the decision is its
    own rule read off the trace id (TraceIdRatioBased: the id's low 64 bits below `bound`); any other
    sampler is asked (~2 µs)."""

    def __init__(self, provider: TracerProvider, ids: PresetTraceIds) -> None:
        self.sampler: Sampler = provider.sampler
        self.ids = ids
        self.tracer = provider.get_tracer("ticketflow.runtime")
        self.flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else 0)
        root = getattr(self.sampler, "_root", None) if isinstance(self.sampler, ParentBased) else None
        self.bound: int | None = root.bound if isinstance(root, TraceIdRatioBased) else None

    def sampled(self, trace_id: int, name: str, kind: SpanKind, attributes: dict[str, str | int]) -> bool:
        if self.bound is not None:
            return (trace_id & TraceIdRatioBased.TRACE_ID_LIMIT) < self.bound
        return (
            self.sampler.should_sample(_EMPTY, trace_id, name, kind, attributes).decision is Decision.RECORD_AND_SAMPLE
        )

    def start(self, name: str, kind: SpanKind, attributes: dict[str, str | int]) -> tuple[Span | None, SpanContext]:
        trace_id = random.getrandbits(128) or 1
        if not self.sampled(trace_id, name, kind, attributes):
            return None, SpanContext(trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=self.flags)
        self.ids.preset(trace_id)
        span = self.tracer.start_span(name, _EMPTY, kind=kind, attributes=attributes)
        return (span if span.is_recording() else None), span.get_span_context()


@dataclass
class EdgeSpan:
    """A sampled HTTP server span in progress: its context is current while the route runs (what the route
    publishes or calls is its child); `finish` records it."""

    spans: EdgeSpans
    context: SpanContext
    parent: SpanContext | None
    started_ns: int

    def finish(self, name: str, attributes: dict[str, str | int], error: bool) -> None:
        status = Status(StatusCode.ERROR) if error else Status(StatusCode.UNSET)
        finished = ReadableSpan(name=name, context=self.context, parent=self.parent, resource=self.spans.resource,
                                attributes=attributes, kind=SpanKind.SERVER, status=status,
                                start_time=self.started_ns, end_time=time.time_ns(),
                                instrumentation_scope=self.spans.scope)  # fmt: skip
        for processor in self.spans.processors:
            processor.on_end(finished)


class EdgeSpans:
    """The HTTP server spans of the public port. A sampled one is recorded as a finished `ReadableSpan`
    handed to the same span processors (export), without the SDK's live span object: ~2 µs instead of
    ~30 µs of the request's own CPU (the OTLP encoding, ~26 µs, happens in the export thread either way;
    measured with 20,000 spans on this machine, docs/operations.md "Tracing"). Used only where the
    sampler is parent-based (the decision for a child is its parent's); otherwise the SDK makes the span."""

    def __init__(self, provider: TracerProvider, processors: list[SpanProcessor], roots: RootDecisions) -> None:
        self.resource = provider.resource
        self.processors = processors
        self.roots = roots
        self.scope = InstrumentationScope("ticketflow.runtime.http_telemetry")
        self.flags = roots.flags

    def start(self, parent: SpanContext | None, name: str) -> tuple[EdgeSpan | None, Context]:
        """Continue `parent` or start a trace; the span to finish (None: not sampled) and the context."""
        if parent is None:
            trace_id = random.getrandbits(128) or 1
            sampled = self.roots.sampled(trace_id, name, SpanKind.SERVER, {})
        else:
            trace_id, sampled = parent.trace_id, parent.trace_flags.sampled
        if not sampled and parent is not None:
            return None, _context_of(parent)  # forwarded as it came
        flags = TraceFlags(self.flags | TraceFlags.SAMPLED) if sampled else self.flags
        context = SpanContext(trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=flags)
        span = EdgeSpan(self, context, parent, time.time_ns()) if sampled else None
        return span, _context_of(context)


def _context_of(span_context: SpanContext) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(span_context), _EMPTY)


_edge: list[EdgeSpans] = []  # the process's, once `setup_tracing` installed the SDK


def edge_spans() -> EdgeSpans | None:
    """The HTTP edge's spans, when the SDK is installed with a parent-based sampler (else None: the SDK's)."""
    return _edge[0] if _edge else None


def exporters_from_env() -> set[str]:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return set()
    names = {n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if n.strip()}
    unknown = names - EXPORTERS
    if unknown:
        raise TracingSettingsError(
            f"OTEL_TRACES_EXPORTER: unknown exporter(s) {sorted(unknown)}; use otlp, console or none"
        )
    return names - {"none"}


def setup_tracing(service: str) -> TracerProvider | None:
    """Install the SDK as the environment says (None: tracing is off, only context forwarding remains)."""
    exporters = exporters_from_env()
    if not exporters:
        tracing.configure(enabled=False, forwards_unsampled=True)
        return None
    resource = Resource.create({"service.name": f"ticketflow-{service}"})  # OTEL_SERVICE_NAME wins
    ids = PresetTraceIds()
    provider = TracerProvider(resource=resource, id_generator=ids)  # the sampler from OTEL_TRACES_SAMPLER
    instrumented = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    processors = _processors(exporters)
    for processor in processors:
        provider.add_span_processor(processor)
        instrumented.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _instrument_libraries(instrumented, processors)
    roots, parent_based = RootDecisions(provider, ids), drops_unsampled_children(provider.sampler)
    tracing.configure(enabled=True, forwards_unsampled=parent_based, start_root=roots.start)
    _edge[:] = [EdgeSpans(provider, processors, roots)] if parent_based else []
    return provider


def drops_unsampled_children(sampler: Sampler, probes: int = 16) -> bool:
    """Whether the sampler never samples below an unsampled remote parent (any parent-based one): then a
    record or request with an unsampled `traceparent` is forwarded without a span of its own."""
    for _ in range(probes):
        parent = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, is_remote=True)
        context = trace.set_span_in_context(NonRecordingSpan(parent), _EMPTY)
        if sampler.should_sample(context, parent.trace_id, "probe").decision is Decision.RECORD_AND_SAMPLE:
            return False
    return True


def _processors(exporters: set[str]) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers: OTEL_EXPORTER_OTLP_*
    if "console" in exporters:
        processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
    return processors


def _instrument_libraries(provider: TracerProvider, processors: list[SpanProcessor]) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from ticketflow.runtime.query_spans import SampledQueries

    queries = SampledQueries()  # type: ignore[no-untyped-call]
    if not queries.is_instrumented_by_opentelemetry:
        queries.instrument(tracer_provider=provider, processors=processors, resource=provider.resource)
    for instrumentor in (HTTPXClientInstrumentor(), AioHttpClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
