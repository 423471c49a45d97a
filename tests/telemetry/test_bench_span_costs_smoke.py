"""The span-cost micro-benchmark runs at toy size (so `make bench-telemetry` does not rot), and the gate
it measures holds: outside sampled work a query costs about what a bare one does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "load" / "telemetry" / "bench_span_costs.py"
pytestmark = [pytest.mark.pg]


def test_span_cost_benchmark_prints_every_row(pg_dsn: str) -> None:
    run = subprocess.run([sys.executable, str(BENCH), "--operations", "300", "--rounds", "1", "--dsn", pg_dsn],
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for row in (
        "SDK span, not sampled",
        "SDK span, sampled (start + end)",
        "OTLP encoding of a span (export thread)",
        "asyncpg query, bare",
        "asyncpg query, instrumentation-asyncpg, not sampled",
        "asyncpg query, instrumentation-asyncpg, sampled (span recorded)",
        "asyncpg query, SampledQueries, not sampled",
        "asyncpg query, SampledQueries, sampled (span recorded)",
    ):
        assert row in run.stdout
