"""The SLA timer benchmark runs end to end at toy sizes (so `make bench-sla` does not rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_sla_timers.py")
TOY = ["--timers", "20000", "--singles", "2000", "--baseline-timers", "5000", "--aps-timers", "1000",
       "--pg-timers", "2000", "--pg-singles", "20", "--burst", "2000", "--aps-burst", "500",
       "--spread-ms", "200", "--lead-ms", "1500"]  # fmt: skip


@pytest.mark.pg
def test_benchmark_prints_every_table() -> None:
    run = subprocess.run([sys.executable, str(BENCH), *TOY], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr
    for heading in ("## Schedule / cancel", "## Burst", "## Targets", "PG SKIP LOCKED", "APScheduler"):
        assert heading in run.stdout
    assert "(scheduling overran" not in run.stdout
