"""Business-calendar arithmetic: operations per second, fast calendar vs the naive minute-walking reference.

Run: make bench-calendar   (or: .venv/bin/python tests/load/calendar/bench_calendar.py [--ops N])
Workload: the Bitrix24 box calendar (Mon-Fri 10:00-19:00 MSK, RU holidays and moved days), random
starts over 2025, durations up to 3 business days (typical SLA targets). One core, one process.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from ticketflow.calendar import WEEKDAYS, BusinessCalendar, CalendarSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "calendar"))
from calendar_reference import ReferenceCalendar

YEAR_2025 = (1_735_678_800, 1_767_214_800)  # 2025-01-01 .. 2026-01-01 in MSK
MAX_DURATION = 3 * 9 * 3600


def measure(name: str, operation: Callable[[int, int], object], cases: list[tuple[int, int]]) -> list[object]:
    began = time.perf_counter()
    for start, seconds in cases:
        operation(start, seconds)
    elapsed = time.perf_counter() - began
    return [name, len(cases), f"{len(cases) / elapsed:,.0f}", f"{elapsed / len(cases) * 1e6:,.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=200_000, help="operations per fast measurement")
    parser.add_argument("--reference-ops", type=int, default=200, help="operations for the naive reference")
    args = parser.parse_args()

    spec = CalendarSpec.from_text("Europe/Moscow", {d: ["10:00-19:00"] for d in WEEKDAYS[:5]}, holiday_country="RU")
    calendar = BusinessCalendar(spec)
    reference = ReferenceCalendar(BusinessCalendar(spec))
    rng = random.Random(7)
    cases = [(rng.randrange(*YEAR_2025), rng.randrange(0, MAX_DURATION)) for _ in range(args.ops)]
    spans = [(start, start + rng.randrange(0, 7 * 86_400)) for start, _ in cases]

    began = time.perf_counter()
    calendar.is_open_ts(YEAR_2025[0])  # first expansion also loads the `holidays` data
    first_ms = (time.perf_counter() - began) * 1e3
    began = time.perf_counter()
    calendar.is_open_ts(YEAR_2025[1])  # one more year: the cost paid once per calendar and year
    next_year_ms = (time.perf_counter() - began) * 1e3

    rows = [
        measure("add_business_seconds_ts", calendar.add_business_seconds_ts, cases),
        measure("business_seconds_between_ts", calendar.business_seconds_between_ts, spans),
        measure("is_open_ts", lambda ts, _: calendar.is_open_ts(ts), cases),
        measure("consumed_at_ts (0.75 of target)", lambda ts, s: calendar.consumed_at_ts(ts, s, 0.75), cases),
        measure("add_business_seconds (datetime)", _datetime_add(calendar), cases),
        measure("reference add (baseline)", reference.add_business_seconds, cases[: args.reference_ops]),
        measure("reference between (baseline)", reference.business_seconds_between, spans[: args.reference_ops]),
    ]
    fast, naive = (float(str(rows[i][2]).replace(",", "")) for i in (0, 5))
    print(tabulate(rows, headers=["operation", "ops", "ops/s", "us/op"], colalign=("left", "right", "right", "right")))
    print(f"\nexpansion: first year {first_ms:.1f} ms (loads holiday data), next year {next_year_ms:.1f} ms")
    print(f"add_business_seconds_ts is {fast / naive:,.0f}x the naive reference")
    mismatches = sum(
        calendar.add_business_seconds_ts(s, d) != reference.add_business_seconds(s, d)
        for s, d in cases[: args.reference_ops]
    )
    print(f"agreement check on {args.reference_ops} cases: {mismatches} mismatches")


def _datetime_add(calendar: BusinessCalendar) -> Callable[[int, int], object]:
    from datetime import datetime

    def add(start: int, seconds: int) -> object:
        return calendar.add_business_seconds(datetime.fromtimestamp(start, calendar.zone), seconds)

    return add


if __name__ == "__main__":
    main()
