"""What one span and one traced query cost the process, in-process: the figures docs/operations.md
"Tracing" quotes. Each variant runs N times per round, the variants interleaved, `--rounds` rounds; the
median per variant is printed as µs of CPU (`time.process_time`) per operation.

- SDK span, not sampled / sampled: `Tracer.start_span` + `end` under `parentbased_traceidratio` at 0 % and
  100 %, ended into a BatchSpanProcessor whose exporter drops the spans (the work of the thread that
  makes the span; the export is the next row);
- OTLP encoding: what the OTLP exporter's thread does per span before sending (`encode_spans` and
  protobuf serialisation of asyncpg-like spans, 512 per batch as the batch span processor sends them);
- asyncpg `fetchval` on loopback PostgreSQL (`--dsn`, default TICKETFLOW_PG_DSN): bare; with
  opentelemetry-instrumentation-asyncpg outside sampled work (its span is dropped by the parent-based
  sampler) and inside it; with `ticketflow.runtime.query_spans.SampledQueries` outside sampled work and
  inside it (the same span, recorded finished; exporter as above). The difference to the bare query is the
  telemetry's.

Usage: python tests/load/telemetry/bench_span_costs.py [--operations 5000] [--rounds 3] [--dsn ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from tabulate import tabulate

from ticketflow.runtime.query_spans import SampledQueries

QUERY_ATTRIBUTES: dict[str, str | int] = {
    "db.system": "postgresql", "db.name": "ticketflow", "db.user": "ticketflow", "net.peer.name": "127.0.0.1",
    "net.peer.port": 5432, "net.transport": "ip_tcp",
    "db.statement": "SELECT key, ticket_id, state FROM intake_conversations WHERE key = ANY($1)",
}  # fmt: skip
SAMPLED_PARENT = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                             trace_flags=TraceFlags(TraceFlags.SAMPLED))  # fmt: skip


class Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def provider(sampler: object, processor: BatchSpanProcessor | None = None) -> TracerProvider:
    made = TracerProvider(sampler=sampler)  # type: ignore[arg-type]
    made.add_span_processor(processor or BatchSpanProcessor(Dropped()))
    return made


def span_variants() -> dict[str, Callable[[int], None]]:
    unsampled = provider(ParentBased(TraceIdRatioBased(0.0))).get_tracer("bench")
    sampled = provider(ParentBased(TraceIdRatioBased(1.0))).get_tracer("bench")

    def spans(tracer: trace.Tracer) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=QUERY_ATTRIBUTES).end()

        return run

    keep: list[ReadableSpan] = []
    collector = TracerProvider()
    collector.add_span_processor(_Keep(keep))
    for _ in range(512):
        collector.get_tracer("bench").start_span("SELECT", kind=SpanKind.CLIENT, attributes=QUERY_ATTRIBUTES).end()

    def encode(n: int) -> None:
        for _ in range(max(1, n // len(keep))):
            encode_spans(keep).SerializeToString()

    return {"SDK span, not sampled": spans(unsampled), "SDK span, sampled (start + end)": spans(sampled),
            "OTLP encoding of a span (export thread)": encode}  # fmt: skip


class _Keep(BatchSpanProcessor):
    def __init__(self, into: list[ReadableSpan]) -> None:
        super().__init__(Dropped())
        self.into = into

    def on_end(self, span: ReadableSpan) -> None:
        self.into.append(span)


async def query_variants(dsn: str, operations: int, rounds: int) -> dict[str, list[float]]:
    """asyncpg with each instrumentation in turn (one at a time: they patch the same methods)."""
    conn = await asyncpg.connect(dsn)
    results: dict[str, list[float]] = {}
    exporting = BatchSpanProcessor(Dropped())
    instrumented = provider(ParentBased(ALWAYS_OFF), exporting)  # as the runtime's: never a root of its own

    async def queries(n: int) -> None:
        for _ in range(n):
            await conn.fetchval("SELECT $1::int", 1)

    async def measure(label: str, run: Callable[[int], Awaitable[None]]) -> None:
        await run(max(100, operations // 10))  # warm: the prepared statement cache
        for _ in range(rounds):
            start = time.process_time()
            await run(operations)
            results.setdefault(label, []).append((time.process_time() - start) / operations * 1e6)

    try:
        await measure("asyncpg query, bare", queries)
        package = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        package.instrument(tracer_provider=instrumented)
        await measure("asyncpg query, instrumentation-asyncpg, not sampled", queries)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(SAMPLED_PARENT)))
        try:
            await measure("asyncpg query, instrumentation-asyncpg, sampled (span recorded)", queries)
        finally:
            otel_context.detach(token)
        package.uninstrument()
        gated = SampledQueries()  # type: ignore[no-untyped-call]
        gated.instrument(tracer_provider=instrumented, processors=[exporting], resource=instrumented.resource)
        await measure("asyncpg query, SampledQueries, not sampled", queries)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(SAMPLED_PARENT)))
        try:
            await measure("asyncpg query, SampledQueries, sampled (span recorded)", queries)
        finally:
            otel_context.detach(token)
        gated.uninstrument()
    finally:
        await conn.close()
    return results


def main(args: argparse.Namespace) -> None:
    results: dict[str, list[float]] = {}
    spans = span_variants()
    for _ in range(args.rounds):
        for label, run in spans.items():
            run(args.operations // 10)
            start = time.process_time()
            run(args.operations)
            results.setdefault(label, []).append((time.process_time() - start) / args.operations * 1e6)
    if args.dsn:
        results.update(asyncio.run(query_variants(args.dsn, args.operations, args.rounds)))
    bare = statistics.median(results.get("asyncpg query, bare", [0.0]))
    rows = []
    for label, values in results.items():
        median = statistics.median(values)
        added = f"+{median - bare:.1f}" if label.startswith("asyncpg query,") and "bare" not in label else ""
        rows.append([label, f"{median:.1f}", added])
    print(tabulate(rows, headers=["operation", "CPU µs (median)", "added to the bare query"]))
    print(f"{args.operations} operations x {args.rounds} rounds; load average {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", ""), help="PostgreSQL for the query rows")
    main(parser.parse_args())
