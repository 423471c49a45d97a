"""OpenTelemetry tracing: one provider per process, W3C trace context in and out of Kafka headers
and event metadata, so a ticket's path through every service is one trace."""

from __future__ import annotations

import logging

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from ticketflow.contracts.envelope import EventMetadata


def setup_tracing(service: str, *, console: bool = False) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"ticketflow-{service}"}))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def current_trace_metadata(**causality: object) -> EventMetadata:
    """EventMetadata carrying the active span's W3C context (traceparent/tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return EventMetadata(
        traceparent=carrier.get("traceparent"),
        tracestate=carrier.get("tracestate"),
        **causality,  # type: ignore[arg-type]
    )


def configure_logging(level: str, service: str) -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
