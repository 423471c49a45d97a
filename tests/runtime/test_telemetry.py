"""Tracing, request metrics and logs, in one process (no broker, no database): the SDK with an in-memory
exporter stands in for OTLP.

- a record or request whose `traceparent` is sampled gets a span, a child of it; an unsampled one is
  forwarded unchanged without a span; one without context starts a trace as the sampler decides, and a
  sampled root keeps the trace id the decision was made on;
- per-key batches make each record's context current while it is handled (what it appends and calls
  carries it); a batch of the ordered pipeline gets one span, under its first sampled record, linked to
  the others, and none when nothing in it is sampled;
- the HTTP middleware continues the request's context and counts requests by route template and status;
- log lines are JSON with the trace, ticket and event ids, and secrets never reach them."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.records import FakeRecord, RecordingProducer

from ticketflow.contracts.envelope import EventMetadata
from ticketflow.messaging import tracing
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.log_context import about
from ticketflow.messaging.per_key import PerKeyBatches
from ticketflow.runtime.http_telemetry import HttpTelemetry
from ticketflow.runtime.logs import Redactor, configure_logging
from ticketflow.runtime.tracing import EdgeSpans, PresetTraceIds, RootDecisions, drops_unsampled_children

TRACE = "0af7651916cd43dd8448eb211c80319c"
SAMPLED = f"00-{TRACE}-b7ad6b7169203331-01"
UNSAMPLED = f"00-{TRACE}-b7ad6b7169203331-00"


class Sdk:
    def __init__(self, sampler: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.ids = PresetTraceIds()
        self.provider = TracerProvider(sampler=sampler, id_generator=self.ids)
        self.processor = SimpleSpanProcessor(self.exporter)
        self.provider.add_span_processor(self.processor)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sdk]:
    """The SDK as the runtime installs it (parent-based, always on at the root), for this test only."""
    installed = Sdk(ParentBased(ALWAYS_ON))
    monkeypatch.setattr(tracing, "_tracer", installed.provider.get_tracer("test"))
    tracing.configure(enabled=True, forwards_unsampled=drops_unsampled_children(installed.provider.sampler),
                      start_root=RootDecisions(installed.provider, installed.ids).start)  # fmt: skip
    yield installed
    tracing.configure(enabled=False, forwards_unsampled=True)


def record(offset: int, traceparent: str | None = None, value: bytes = b'{"n": 1}') -> FakeRecord:
    headers = [(tracing.TRACEPARENT, traceparent.encode())] if traceparent else []
    return FakeRecord("ticket.events", 0, offset, b"k", value, headers=headers)


def test_the_w3c_header_is_read_strictly() -> None:
    context = tracing.parse(SAMPLED)
    assert context is not None and format(context.trace_id, "032x") == TRACE and context.trace_flags.sampled
    assert tracing.format_traceparent(context) == SAMPLED
    assert tracing.parse(f"00-{'0' * 32}-b7ad6b7169203331-01") is None  # an all-zero trace id is invalid
    assert tracing.parse("00-xyz-b7ad6b7169203331-01") is None and tracing.parse("junk") is None
    assert tracing.sampled(SAMPLED) and not tracing.sampled(UNSAMPLED)


def test_only_a_parent_based_sampler_lets_unsampled_contexts_pass_without_a_span() -> None:
    assert drops_unsampled_children(ParentBased(TraceIdRatioBased(0.1)))
    assert drops_unsampled_children(ParentBased(ALWAYS_ON))
    assert not drops_unsampled_children(ALWAYS_ON)  # it would sample below an unsampled parent: full SDK path


async def test_per_key_batches_handle_each_record_in_its_own_trace_context(sdk: Sdk) -> None:
    seen: dict[int, tuple[str | None, str | None]] = {}

    async def handle(item: Any, rec: Any) -> None:
        seen[rec.offset] = tracing.current()

    worker = PerKeyBatches("preflight", msgspec.json.decode, handle, DeadLetterWriter(RecordingProducer(), "t"))  # type: ignore[arg-type]
    await worker.process([record(0, SAMPLED), record(1, UNSAMPLED), record(2)])
    [child, root] = sorted(sdk.spans, key=lambda s: int(str((s.attributes or {})["messaging.kafka.offset"])))
    assert child.parent is not None and child.parent.span_id == 0xB7AD6B7169203331  # a child of the header
    assert format(child.context.trace_id, "032x") == TRACE and child.kind is SpanKind.CONSUMER
    assert seen[0][0] == tracing.format_traceparent(child.context)  # current while it was handled
    assert seen[1] == (UNSAMPLED, None)  # not sampled: forwarded as it came, no span made
    assert root.parent is None and seen[2][0] == tracing.format_traceparent(root.context)  # a new trace
    assert tracing.current() == (None, None)  # nothing leaks past the record


async def test_an_ordered_batch_has_one_span_only_when_a_record_of_it_is_sampled(sdk: Sdk) -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    batch = tracing.BatchTrace.start([record(0, UNSAMPLED), record(1, SAMPLED), record(2), record(3, other)], "intake")
    assert batch.span is not None
    batch.end()
    [span] = sdk.spans
    assert span.parent is not None and format(span.context.trace_id, "032x") == TRACE  # under the first sampled
    assert [format(link.context.trace_id, "032x") for link in span.links] == ["1" * 32]  # linked to the others
    assert span.attributes is not None and span.attributes["messaging.batch.message_count"] == 4
    nothing = tracing.BatchTrace.start([record(0, UNSAMPLED), record(1)], "intake")
    assert nothing.span is None and nothing.context is None  # no sampled record: no SDK work at all


def test_a_dropped_root_costs_no_span_and_a_sampled_one_keeps_its_decided_trace_id() -> None:
    installed = Sdk(ParentBased(TraceIdRatioBased(0.5)))
    roots = RootDecisions(installed.provider, installed.ids)
    random.seed(7)
    outcomes = [roots.start("POST /command", SpanKind.SERVER, {}) for _ in range(400)]
    sampled = [(span, context) for span, context in outcomes if span is not None]
    dropped = [context for span, context in outcomes if span is None]
    assert 120 < len(sampled) < 280 and len(installed.spans) == 0  # none ended yet
    for span, context in sampled:
        assert span.get_span_context() == context and context.trace_flags.sampled
        span.end()
    assert len(installed.spans) == len(sampled)
    assert all(not context.trace_flags.sampled and context.is_valid for context in dropped)
    ratio = TraceIdRatioBased(0.5)
    assert all(ratio.should_sample(None, c.trace_id, "x").decision.is_sampled() for _, c in sampled)  # type: ignore[no-untyped-call]


def test_traced_metadata_takes_the_current_context_and_keeps_one_given() -> None:
    assert tracing.traced(EventMetadata()) == EventMetadata()  # nothing traced: unchanged
    given = EventMetadata(traceparent=SAMPLED)
    assert tracing.traced(given) is given


@pytest.mark.parametrize("recorded_by", ["edge spans", "the sdk"])
async def test_the_http_middleware_continues_the_request_and_counts_it_by_route_template(
    sdk: Sdk, recorded_by: str
) -> None:
    async def ticket(request: Request) -> JSONResponse:
        return JSONResponse({"seen": tracing.current()[0]}, 202)

    edge = None
    if recorded_by == "edge spans":  # the runtime's way where the sampler is parent-based
        edge = EdgeSpans(sdk.provider, [sdk.processor], RootDecisions(sdk.provider, sdk.ids))
    app = Starlette(routes=[Route("/v1/tickets/{ticket_id}", ticket, methods=["POST"])])
    app.add_middleware(HttpTelemetry, routes=app.router.routes, traced=True, metered=True, edge=edge)

    def counted(route: str, status: str) -> float:
        labels = {"route": route, "method": "POST", "status": status}
        return REGISTRY.get_sample_value("ticketflow_http_requests_total", labels) or 0.0

    before = counted("/v1/tickets/{ticket_id}", "202"), counted("unmatched", "404")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post("/v1/tickets/42", headers={"traceparent": SAMPLED})
        unsampled = await client.post("/v1/tickets/43", headers={"traceparent": UNSAMPLED})
        assert (await client.post("/nowhere")).status_code == 404
    [span] = [s for s in sdk.spans if s.kind is SpanKind.SERVER and s.parent is not None]
    assert span.name == "POST /v1/tickets/{ticket_id}" and format(span.context.trace_id, "032x") == TRACE
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 202
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert answer.json()["seen"] == tracing.format_traceparent(span.context)
    assert unsampled.json()["seen"] == UNSAMPLED  # forwarded, no span
    assert counted("/v1/tickets/{ticket_id}", "202") == before[0] + 2  # one label per template, not per id
    assert counted("unmatched", "404") == before[1] + 1


def test_log_lines_are_json_with_trace_ticket_and_event_ids_and_no_secret(sdk: Sdk) -> None:
    stream = io.StringIO()
    environ = {
        "TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET": "s3cr3t-bot-key",
        "TICKETFLOW_PG_DSN": "postgresql://u:pw-123@h/db",
    }
    configure_logging("INFO", "preflight", environ=environ)
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        span = tracing._tracer.start_span("work")
        with about("ticket-1", "event-1"), trace.use_span(span, end_on_exit=True):
            logging.getLogger("ticketflow.preflight").warning(
                "portal said %s to postgresql://u:pw-123@h/db with s3cr3t-bot-key", "no"
            )
        try:
            raise RuntimeError("key s3cr3t-bot-key rejected")
        except RuntimeError:
            logging.getLogger("x").exception("failed")
    finally:
        logging.getLogger().handlers = []
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["service"], first["level"], first["ticket_id"], first["event_id"]) == (
        "preflight", "WARNING", "ticket-1", "event-1",
    )  # fmt: skip
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x") and first["span_id"]
    assert first["message"] == "portal said no to postgresql://u:***@h/db with ***"
    assert "s3cr3t-bot-key" not in stream.getvalue() and "pw-123" not in stream.getvalue()
    assert second["ticket_id"] is None and "RuntimeError" in second["exc_info"]


def test_the_redactor_hides_dsn_passwords_and_secret_variables_only() -> None:
    redact = Redactor.from_environment(
        {"TICKETFLOW_B24_BOX_BOT_TOKEN": "tok-998877", "TICKETFLOW_LOG_LEVEL": "INFO", "X_API_KEY": "k-1234"}
    )
    text = redact("tok-998877 k-1234 INFO postgresql://a:b@c/d?sslmode=disable&password=zz")
    assert text == "*** *** INFO postgresql://a:***@c/d?sslmode=disable&password=***"
    assert Redactor([])("nothing to hide") == "nothing to hide"
    assert Redactor(["ab"])("ab") == "ab"  # too short to be a secret worth masking words for
