"""Trace context across Kafka: read it from a record's headers, continue it, carry it into new events.

W3C trace context travels in a record's `traceparent`/`tracestate` headers: intake's webhooks write it on
`chat.inbound`, the relay copies an event's stored metadata into them (`event_records.record_headers`). A
consumer continues it, and the events it appends carry the context of the work that caused them
(`traced`), so one ticket action is one trace across processes.

What it costs decided how it is written (docs/operations.md "Tracing"; `tests/load/telemetry/bench_span_costs.py`):
a span the SDK makes and drops costs ~4 µs, a sampled one ~20-33 µs plus ~30-37 µs of OTLP encoding in the
export thread, against ~30 µs of intake's whole work per `chat.inbound` record.
- A record whose context is not sampled, under a sampler that never samples below an unsampled parent
  (parent-based, the default), gets no span: its context is passed on unchanged (W3C forwarding of an
  unsampled context). Cost: a header lookup.
- Per-key batches (`consume`) give each other record a consumer span, a child of the header's context; a
  record without one starts a trace (the sampler decides; `roots` makes a dropped root cheap).
- The ordered pipeline and owned partitions process a batch as one unit (one decision pass, one
  transaction): `BatchTrace` makes the batch's span only when a record of it is sampled, as a child of
  the first sampled record and linked to the others (OpenTelemetry's messaging conventions for batches);
  each record's events carry the record's own context. A record there without context is not traced.
The runtime installs the SDK and tells this module what its sampler does (`configure`); without it the
tracer is OpenTelemetry's no-op one and only forwarding happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ticketflow.contracts.envelope import EventMetadata
from ticketflow.messaging.records import Record

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
EMPTY = Context()
_W3C = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_SAMPLED_FLAGS = frozenset("13579bdf")  # the last hex digit of the flags: bit 0 is "sampled"
_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("ticketflow.messaging")
RootStarter = Callable[[str, SpanKind, dict[str, str | int]], tuple[Span | None, SpanContext]]


@dataclass
class _Policy:
    enabled: bool = False  # an SDK tracer provider is installed
    forwards_unsampled: bool = True  # the sampler never samples below an unsampled parent
    start_root: RootStarter | None = None  # the runtime's cheap root decision (None: the SDK's own)


_policy = _Policy()


def configure(*, enabled: bool, forwards_unsampled: bool, start_root: RootStarter | None = None) -> None:
    """Called once by the runtime after it installed (or did not install) the SDK."""
    _policy.enabled, _policy.forwards_unsampled, _policy.start_root = enabled, forwards_unsampled, start_root


def enabled() -> bool:
    """An SDK is installed: spans are made (else only contexts are forwarded)."""
    return _policy.enabled


def header(record: Record, name: str = TRACEPARENT) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def parse(traceparent: str, tracestate: str | None = None) -> SpanContext | None:
    """A remote span context, or None for an invalid header (then the record starts a new trace)."""
    match = _W3C.match(traceparent)
    if match is None:  # another version, or junk: the W3C propagator's own rules
        carrier = {TRACEPARENT: traceparent, **({TRACESTATE: tracestate} if tracestate else {})}
        found = trace.get_current_span(_propagator.extract(carrier, EMPTY)).get_span_context()
        return found if found.is_valid else None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match.group(3), 16)),
                       trace_state=state)  # fmt: skip


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def sampled(traceparent: str) -> bool:
    return traceparent[-1:] in _SAMPLED_FLAGS


def current() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) of the work under way, or (None, None) when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    state = context.trace_state.to_header() if context.trace_state else None
    return format_traceparent(context), state or None


def traced(metadata: EventMetadata) -> EventMetadata:
    """`metadata` with the current trace context, for the events this work appends (unchanged when
    nothing is traced, or when it already names one)."""
    if metadata.traceparent is not None:
        return metadata
    traceparent, tracestate = current()
    if traceparent is None:
        return metadata
    return msgspec.structs.replace(metadata, traceparent=traceparent, tracestate=tracestate)


def start(
    name: str, parent: SpanContext | None, kind: SpanKind, attributes: dict[str, str | int]
) -> tuple[Span | None, Context | None]:
    """Continue `parent` (None: start a trace). Returns the span to end (None when nothing records) and
    the context the work runs in (None: nothing to carry on)."""
    if parent is not None and (not _policy.enabled or (_policy.forwards_unsampled and not parent.trace_flags.sampled)):
        return None, trace.set_span_in_context(NonRecordingSpan(parent), EMPTY)  # forwarded as it came
    if not _policy.enabled:
        return None, None
    if parent is None and _policy.start_root is not None:
        span, context = _policy.start_root(name, kind, attributes)
        if span is None:
            return None, trace.set_span_in_context(NonRecordingSpan(context), EMPTY)
    else:
        base = EMPTY if parent is None else trace.set_span_in_context(NonRecordingSpan(parent), EMPTY)
        span = _tracer.start_span(name, base, kind=kind, attributes=attributes)
        if not span.is_recording():
            return None, trace.set_span_in_context(span, EMPTY)
    return span, trace.set_span_in_context(span, EMPTY)


def consume(record: Record, consumer: str) -> tuple[Span | None, Context | None]:
    """A record's consumer span (per-key batches): see `start`."""
    traceparent = header(record)
    parent = parse(traceparent, header(record, TRACESTATE)) if traceparent else None
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.consumer.group.name": consumer,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    return start(f"process {record.topic}", parent, SpanKind.CONSUMER, attributes)


class BatchTrace:
    """The span of a batch processed as one unit; None of it exists unless a record is sampled."""

    def __init__(self, span: Span | None) -> None:
        self.span = span
        self.context = trace.set_span_in_context(span, EMPTY) if span is not None else None

    @classmethod
    def start(cls, records: Sequence[Record], consumer: str) -> BatchTrace:
        if not _policy.enabled:
            return _UNTRACED
        contexts: list[SpanContext] = []
        for record in records:
            traceparent = header(record)
            if traceparent is not None and sampled(traceparent):
                context = parse(traceparent, header(record, TRACESTATE))
                if context is not None:
                    contexts.append(context)
        if not contexts:
            return _UNTRACED
        first = records[0].topic
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": first,
            "messaging.consumer.group.name": consumer,
            "messaging.batch.message_count": len(records),
        }
        parent = trace.set_span_in_context(NonRecordingSpan(contexts[0]), EMPTY)
        links = [Link(context) for context in contexts[1:]]
        return cls(_tracer.start_span(f"process {first}", parent, SpanKind.CONSUMER, attributes, links))

    def end(self, error: BaseException | None = None) -> None:
        if self.span is None:
            return
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(trace.StatusCode.ERROR, repr(error))
        self.span.end()


_UNTRACED = BatchTrace(None)
