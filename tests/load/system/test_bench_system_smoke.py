"""The whole-pipeline benchmark runs end to end at toy size (so `make bench-system` does not rot): every
offered ticket gets its "registered" reply, and the tables name every process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_system.py")


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_benchmark_delivers_every_reply_and_prints_its_tables() -> None:
    run = subprocess.run([sys.executable, str(BENCH), "--rate", "4", "--seconds", "5", "--drain", "180"],
                         capture_output=True, text=True, timeout=580)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    accepted = re.search(r"webhooks answered 202\s+(\d+)", run.stdout)
    delivered = re.search(r"registered reply received in all\s+(\d+)", run.stdout)
    assert accepted and delivered, run.stdout
    assert int(accepted.group(1)) == 20 and int(delivered.group(1)) == 20, run.stdout
    for process in ("intake", "preflight", "routing", "sla", "notifications", "projector", "postgres (private)"):
        assert process in run.stdout
