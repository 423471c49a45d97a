"""asyncpg's query spans (`ticketflow.runtime.query_spans.SampledQueries`) on a real PostgreSQL: inside sampled
work a query is a client span, a child of the work's span, the same span opentelemetry-instrumentation-asyncpg
makes (name, kind, attributes, scope, status, parent); outside it (no context, or an unsampled one) the
query never reaches the instrumentation: the sampler is not even asked, and no span exists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from ticketflow.runtime.query_spans import SampledQueries

pytestmark = [pytest.mark.pg]
TRACE_ID, PARENT_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


class CountingSampler(Sampler):
    """The runtime's sampler for instrumented libraries (parent-based, no roots), counting its calls."""

    def __init__(self) -> None:
        self.inner = ParentBased(ALWAYS_OFF)
        self.calls = 0

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.calls += 1
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "counting"


@contextmanager
def current(flags: int) -> Iterator[None]:
    parent = SpanContext(TRACE_ID, PARENT_ID, is_remote=True, trace_flags=TraceFlags(flags))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        yield
    finally:
        otel_context.detach(token)


@pytest_asyncio.fixture(loop_scope="session")
async def traced(pg_dsn: str) -> AsyncIterator[tuple[asyncpg.Connection, CountingSampler, InMemorySpanExporter]]:
    sampler, exporter = CountingSampler(), InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor: Any = SampledQueries()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, processors=[SimpleSpanProcessor(exporter)])
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn, sampler, exporter
    finally:
        await conn.close()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_query_outside_sampled_work_never_reaches_the_instrumentation(
    traced: tuple[asyncpg.Connection, CountingSampler, InMemorySpanExporter],
) -> None:
    conn, sampler, exporter = traced
    assert await conn.fetchval("SELECT 1") == 1  # no context at all (a relay's poll)
    with current(TraceFlags.DEFAULT):  # a forwarded, unsampled context
        assert await conn.fetchval("SELECT $1::int", 2) == 2
        assert await conn.fetch("SELECT 3 AS n") == [(3,)]
        async with conn.transaction():
            assert [row["n"] async for row in conn.cursor("SELECT generate_series(1, 3) AS n")] == [1, 2, 3]
        assert await (await conn.prepare("SELECT 4")).fetchval() == 4
    assert sampler.calls == 0
    assert exporter.get_finished_spans() == ()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_query_inside_sampled_work_is_a_child_span_with_its_statement(
    traced: tuple[asyncpg.Connection, CountingSampler, InMemorySpanExporter],
) -> None:
    conn, _, exporter = traced
    await sampled_queries(conn)
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["SELECT", "SELECT", "SELECT", "SELECT"]
    for span, statement in zip(spans, ["SELECT $1::int", "/* why */ SELECT 6", "SELECT 7", "SELECT 1/0"], strict=True):
        assert span.kind is SpanKind.CLIENT
        assert span.context is not None and span.context.trace_id == TRACE_ID and span.context.trace_flags.sampled
        assert span.parent is not None and span.parent.span_id == PARENT_ID
        assert span.attributes is not None and span.attributes.get("db.statement") == statement
    assert [span.status.status_code for span in spans][-1] is StatusCode.ERROR


async def sampled_queries(conn: asyncpg.Connection) -> None:
    with current(TraceFlags.SAMPLED):
        assert await conn.fetchval("SELECT $1::int", 5) == 5
        await conn.execute("/* why */ SELECT 6")
        assert await (await conn.prepare("SELECT 7")).fetchval() == 7
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.fetchval("SELECT 1/0")


def described(span: ReadableSpan) -> tuple[Any, ...]:
    scope = span.instrumentation_scope
    assert span.parent is not None and scope is not None
    return (span.name, span.kind, dict(span.attributes or {}), span.status.status_code, span.parent.span_id,
            scope.name, scope.version, scope.schema_url)  # fmt: skip


@pytest.mark.asyncio(loop_scope="session")
async def test_the_spans_are_those_the_instrumentation_package_makes(
    traced: tuple[asyncpg.Connection, CountingSampler, InMemorySpanExporter],
) -> None:
    conn, sampler, ours = traced
    await sampled_queries(conn)
    SampledQueries().uninstrument()  # type: ignore[no-untyped-call]
    theirs = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    package: Any = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    package.instrument(tracer_provider=provider)
    try:
        await sampled_queries(conn)
    finally:
        package.uninstrument()
    assert [described(s) for s in ours.get_finished_spans()] == [described(s) for s in theirs.get_finished_spans()]
