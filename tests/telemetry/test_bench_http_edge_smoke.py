"""The HTTP telemetry micro-benchmark runs at toy size (so `make bench-telemetry` does not rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "load" / "telemetry" / "bench_http_edge.py"


def test_http_edge_benchmark_prints_every_variant() -> None:
    run = subprocess.run([sys.executable, str(BENCH), "--requests", "300", "--rounds", "1"], capture_output=True,
                         text=True, timeout=240)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for variant in (
        "no middleware",
        "ticketflow: metrics only",
        "ticketflow: metrics + tracing 0%",
        "ticketflow: metrics + tracing 10%",
        "ticketflow: metrics + tracing 100%",
        "instrumentation-asgi: tracing 0%",
        "instrumentation-asgi: tracing 10%",
    ):
        assert variant in run.stdout
