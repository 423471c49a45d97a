"""The notifications benchmarks run end to end at toy sizes, so `make bench-notifications` and
`make bench-notifications-e2e` do not rot: the engine against a local webhook receiver, and the whole
service as a process (`python -m ticketflow.notifications`: its settings from the environment, the real
broker and PostgreSQL) against the bench's Bitrix24 portal, every message received."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TOY_E2E = ["--rate", "100", "--seconds", "1", "--backlog", "200", "--down", "0", "--scale-out", "1",
           "--partitions", "2"]  # fmt: skip


@pytest.mark.pg
def test_the_delivery_benchmark_prints_its_table() -> None:
    run = subprocess.run([sys.executable, str(HERE / "bench_delivery.py"), "--n", "30", "--concurrency", "8"],
                         capture_output=True, text=True, timeout=280)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for path in ("bare webhook POST", "engine: claim+render+send+record", "engine: redelivered events"):
        assert path in run.stdout, run.stdout


@pytest.mark.pg
@pytest.mark.kafka
@pytest.mark.e2e
def test_the_end_to_end_benchmark_runs_the_service_process_and_every_message_arrives() -> None:
    run = subprocess.run([sys.executable, str(HERE / "bench_e2e.py"), *TOY_E2E], capture_output=True, text=True,
                         timeout=280)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [
        re.split(r"\s{2,}", line.strip()) for line in run.stdout.splitlines() if line.startswith(("ceiling", "service"))
    ]
    assert [row[0].split(":")[0] for row in rows] == ["ceiling", "ceiling", "service x1", "service x1"], run.stdout
    assert all(row[1] == row[2] for row in rows), run.stdout  # tickets == messages received
