"""SLA timer engine vs asyncio call_later, heapq+tombstones, APScheduler 3 and a PostgreSQL SKIP LOCKED poller.

Run: make bench-sla   (or: .venv/bin/python tests/load/sla/bench_sla_timers.py [--timers N] ...)
Every measurement runs in its own fresh process (spawned), one after another, so RSS deltas are
clean and phases do not share a heap. Baselines that would take too long at the engine's N run at a
smaller N (the N column says which); rates are per second so they compare. Needs PostgreSQL at
TICKETFLOW_PG_DSN and fails if it is unreachable.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timer_bench_burst as burst
import timer_bench_pg as pg
import timer_bench_throughput as throughput

Result = dict[str, Any]


# glibc returns freed big arrays to the OS unless its (self-raising) thresholds were lifted by an
# earlier big free; a fresh small process then page-faults on every burst's temporaries. A service
# holding millions of timers lifts them by itself; this env var pins them for the labelled row.
RAISED_MALLOC_THRESHOLDS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


def isolated(function: Callable[..., Result], *args: Any, env: dict[str, str] | None = None) -> Result:
    """Run one phase in a fresh spawned process (with extra environment) and return its result dict."""
    context = multiprocessing.get_context("spawn")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(function, *args).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def ratio(engine: float, baseline: float | None) -> str:
    return "-" if not baseline else f"{engine / baseline:,.1f}x"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timers", type=int, default=5_000_000, help="engine live timers (5 days spread)")
    p.add_argument("--batch", type=int, default=10_000, help="timers per schedule_many/cancel_many call")
    p.add_argument("--singles", type=int, default=200_000, help="one-call-per-timer measurements")
    p.add_argument("--baseline-timers", type=int, default=1_000_000, help="N for heapq and call_later")
    p.add_argument("--aps-timers", type=int, default=100_000, help="N for APScheduler")
    p.add_argument("--pg-timers", type=int, default=500_000, help="N for PostgreSQL (COPY / DELETE ANY)")
    p.add_argument("--pg-singles", type=int, default=2_000, help="one-statement-per-timer PG operations")
    p.add_argument("--burst", type=int, default=200_000, help="timers in the burst")
    p.add_argument("--aps-burst", type=int, default=20_000, help="burst size for APScheduler")
    p.add_argument("--spread-ms", type=int, default=2_000, help="burst deadlines spread over this window")
    p.add_argument("--lead-ms", type=int, default=3_000, help="time from scheduling to the first deadline")
    p.add_argument("--aps-lead-ms", type=int, default=15_000, help="lead time for APScheduler (slow add_job)")
    p.add_argument("--pg-claim-batch", type=int, default=1_000)
    p.add_argument("--pg-poll-ms", type=int, default=10)
    return p.parse_args()


def cpu_rates(result: Result, prefix: str = "") -> str:
    """Rates per CPU-second of this process (wall rates fall when other work shares the cores)."""
    schedule, cancel = result.get(f"{prefix}schedule_per_cpu_s"), result.get(f"{prefix}cancel_per_cpu_s")
    return "-" if schedule is None else f"{rate(schedule)} / {rate(cancel)}"


def throughput_table(args: argparse.Namespace) -> tuple[list[list[object]], Result]:
    wheel = isolated(throughput.engine, args.timers, args.batch, args.singles)
    heap = isolated(throughput.heap_baseline, args.baseline_timers)
    call_later = isolated(throughput.call_later_baseline, args.baseline_timers)
    aps = isolated(throughput.apscheduler_baseline, args.aps_timers)
    postgres = isolated(pg.pg_throughput, args.pg_timers, args.pg_singles)
    single = {key.removeprefix("single_"): value for key, value in wheel.items() if key.startswith("single_")}
    pg_single = {key.removeprefix("single_"): value for key, value in postgres.items() if key.startswith("single_")}
    memory = f"{wheel['rss_per_timer']:.0f} RSS ({wheel['nbytes_per_timer']:.0f} arrays)"
    systems: list[tuple[str, str, Result, str]] = [
        ("wheel", f"batch of {args.batch:,}", wheel, memory),
        ("wheel", "one call per timer", single, ""),
        ("heapq + tombstones", "one call per timer", heap, f"{heap['rss_per_timer']:.0f} RSS"),
        ("asyncio call_later", "one call per timer", call_later, f"{call_later['rss_per_timer']:.0f} RSS"),
        ("APScheduler 3 MemoryJobStore", "one call per timer", aps, f"{aps['rss_per_timer']:.0f} RSS"),
        ("PG SKIP LOCKED table", f"COPY {pg.COPY_CHUNK:,} / DELETE ANY {pg.DELETE_CHUNK:,}", postgres,
         f"{postgres['disk_per_timer']:.0f} on disk"),
        ("PG SKIP LOCKED table", "one statement per timer (autocommit)", pg_single, ""),
    ]  # fmt: skip
    rows: list[list[object]] = []
    for name, mode, result, memory_label in systems:
        if result is wheel or result is single:
            rows.append([name, mode, result["n"], rate(result["schedule_per_s"]), rate(result["cancel_per_s"]),
                         cpu_rates(result), memory_label, "", ""])  # fmt: skip
            continue
        versus_batch = f"{ratio(wheel['schedule_per_s'], result['schedule_per_s'])} / " + ratio(
            wheel["cancel_per_s"], result["cancel_per_s"]
        )
        versus_single = f"{ratio(single['schedule_per_s'], result['schedule_per_s'])} / " + ratio(
            single["cancel_per_s"], result["cancel_per_s"]
        )
        rows.append([name, mode, result["n"], rate(result["schedule_per_s"]), rate(result["cancel_per_s"]),
                     cpu_rates(result), memory_label, versus_batch, versus_single])  # fmt: skip
    return rows, wheel


def burst_table(args: argparse.Namespace) -> tuple[list[list[object]], list[Result]]:
    rows: list[list[object]] = []
    headline: list[Result] = []
    for spread in (args.spread_ms, 0):
        n, lead = args.burst, args.lead_ms
        raised = RAISED_MALLOC_THRESHOLDS
        runs: list[tuple[str, Callable[..., Result], tuple[Any, ...], dict[str, str] | None]] = [
            (f"wheel + {args.timers:,} live far timers", burst.wheel_burst, (n, spread, lead, args.timers), None),
            ("wheel alone", burst.wheel_burst, (n, spread, lead, 0), None),
            ("wheel alone, glibc malloc thresholds raised", burst.wheel_burst, (n, spread, lead, 0), raised),
            ("heapq + tombstones (same TimerLoop)", burst.heap_burst, (n, spread, lead), None),
            ("asyncio call_later (callback per timer)", burst.call_later_burst, (n, spread, lead), None),
            ("APScheduler 3 (job per timer)", burst.apscheduler_burst,
             (args.aps_burst, spread, args.aps_lead_ms), None),
            (f"PG SKIP LOCKED, 1 poller, batch {args.pg_claim_batch}, poll {args.pg_poll_ms} ms",
             pg.pg_burst, (n, spread, lead, args.pg_claim_batch, args.pg_poll_ms), None),
        ]  # fmt: skip
        results = [(name, isolated(function, *params, env=env)) for name, function, params, env in runs]
        engine = results[0][1]
        headline.append(engine)
        for name, result in results:
            fired = f"{result['fired']:,}/{result['expected']:,}"
            late = "" if result["scheduled_in_time"] else " (scheduling overran the lead time)"
            rows.append([
                f"{spread} ms", name + late, fired, rate(result.get("rate_per_s")),
                result.get("p50_ms"), result.get("p99_ms"), result.get("max_ms"), result["batches"],
                ratio(engine.get("rate_per_s", 0), result.get("rate_per_s")),
                ratio(result.get("p99_ms") or 0, engine.get("p99_ms")),
            ])  # fmt: skip
    return rows, headline


def main() -> None:
    args = parse()
    began = time.perf_counter()
    print(f"# SLA timer engine benchmark: {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f} (the machine is shared)")  # fmt: skip
    rows, wheel = throughput_table(args)
    print("\n## Schedule / cancel throughput and memory (deadlines over 5 days, cancels in random order)")
    headers = ["system", "mode", "N", "schedule/s", "cancel/s", "per CPU-s (sched / cancel)", "bytes/timer",
               "wheel batch ÷ this (sched / cancel)", "wheel single ÷ this"]  # fmt: skip
    print(tabulate(rows, headers, tablefmt="github"))

    burst_rows, headline = burst_table(args)
    print(f"\n## Burst: {args.burst:,} timers due within the window (APScheduler: {args.aps_burst:,}); "
          "lateness = handoff to the sink - deadline")  # fmt: skip
    headers = ["window", "system", "fired", "fired/s", "p50 ms", "p99 ms", "max ms", "handoffs",
               "wheel rate ÷ this", "this p99 ÷ wheel p99"]  # fmt: skip
    print(tabulate(burst_rows, headers, tablefmt="github"))

    spread, instant = headline
    window = f"{args.burst:,} due within {args.spread_ms} ms, {args.timers:,} background"
    targets = [
        ["schedule >= 1,000,000/s (batch)", rate(wheel["schedule_per_s"]), wheel["schedule_per_s"] >= 1e6],
        ["cancel >= 2,000,000/s (batch)", rate(wheel["cancel_per_s"]), wheel["cancel_per_s"] >= 2e6],
        ["<= 200 bytes RSS per timer", f"{wheel['rss_per_timer']:.0f}", wheel["rss_per_timer"] <= 200],
        [
            f"fires >= 100,000/s ({args.burst:,} due at once: capacity)",
            rate(instant.get("rate_per_s")),
            instant.get("rate_per_s", 0) >= 1e5,
        ],
        [
            f"fired/s with {window} (offered {args.burst / max(args.spread_ms, 1) * 1000:,.0f}/s)",
            rate(spread.get("rate_per_s")),
            "(arrival-bound)",
        ],
        [f"p99 lateness <= 20 ms ({window})", spread.get("p99_ms"), (spread.get("p99_ms") or 1e9) <= 20],
        [
            f"p99 lateness <= 20 ms ({args.burst:,} due at once)",
            instant.get("p99_ms"),
            (instant.get("p99_ms") or 1e9) <= 20,
        ],
    ]
    print(f"\n## Targets (engine at {args.timers:,} timers; bursts with that many live background timers)")
    print(tabulate(targets, ["target", "measured", "met"], tablefmt="github"))
    print(f"\ntook {time.perf_counter() - began:.0f} s; load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
