"""The routing benchmark runs end to end at toy size (so `make bench-routing` does not rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "load" / "routing" / "bench_routing.py"
TOY = ["--tickets", "300", "--rate", "300", "--seconds", "1"]


@pytest.mark.pg
@pytest.mark.kafka
def test_routing_benchmark_prints_its_table() -> None:
    run = subprocess.run([sys.executable, str(BENCH), *TOY], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr
    for row in (
        "pure decide+apply (ceiling)",
        "service, in-memory streams",
        "kafka+memory (backlog)",
        "kafka+pg (backlog)",
        "kafka+pg paced 300/s",
        "of the pure ceiling",
    ):
        assert row in run.stdout
    assert "dead-lettered" not in run.stderr
