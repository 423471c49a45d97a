"""The SLA benchmarks run end to end at toy size (so `make bench-sla-service`, `make bench-sla-burst` and
`make bench-sla-restore` do not rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "load" / "sla" / "bench_service.py"
TOY = ["--resident", "2000", "--events", "4000", "--fire", "500", "--checkpoint-seconds", "1", "--warm-broker", "4000"]


@pytest.mark.pg
@pytest.mark.kafka
def test_service_benchmark_prints_its_table() -> None:
    run = subprocess.run([sys.executable, str(BENCH), *TOY], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr
    for row in (
        "broker warmed with 4,000 records",
        "## SLA service through the real broker",
        "events/s (service)",
        "firings/s",
        "baseline",
        "published on Kafka",
        "PostgreSQL checkpoints during the restore",
    ):
        assert row in run.stdout
    assert "dead letter" not in run.stderr


@pytest.mark.pg
@pytest.mark.kafka
def test_firing_burst_benchmark_prints_its_table() -> None:
    burst = BENCH.with_name("bench_fire_burst.py")
    run = subprocess.run([sys.executable, str(burst), "--fire", "500", "--rounds", "1"], capture_output=True,
                         text=True, timeout=280)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "## SLA firing burst: 500 due" in run.stdout and "firings/s stored" in run.stdout
    assert "published ÷ stored (target >= 0.9)" in run.stdout and "PostgreSQL checkpoints in the round" in run.stdout


@pytest.mark.pg
@pytest.mark.kafka
def test_firing_burst_benchmark_runs_split_instances() -> None:
    burst = BENCH.with_name("bench_fire_burst.py")
    args = ["--fire", "600", "--rounds", "1", "--instances", "2"]
    run = subprocess.run([sys.executable, str(burst), *args], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr
    assert "2 instance(s)), stored then published by the relay" in run.stdout


@pytest.mark.pg
@pytest.mark.kafka
def test_restore_benchmark_prints_the_baseline_and_the_stored_timers_path() -> None:
    restore = BENCH.with_name("bench_restore.py")
    run = subprocess.run([sys.executable, str(restore), "--resident", "2000", "--rounds", "1"], capture_output=True,
                         text=True, timeout=280)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "## SLA cold restore: 2,000 tickets" in run.stdout
    assert "| derived " in run.stdout and "| stored " in run.stdout and "4,000" in run.stdout
