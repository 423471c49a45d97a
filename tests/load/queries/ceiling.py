"""The ceiling of the query benchmark: the same SQL the queries service sends for each request (its own
adapter functions, the same arguments), straight to PostgreSQL at the same constant rate, open loop (latency
from each request's due time), over a pool of connections. No HTTP, no tokens, no JSON.

Usage: python ceiling.py --dsn DSN --workload FILE --scenario list|detail|board --rate 1000 --duration 30
Prints one JSON line like openloop_get.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvloop

from ticketflow.deskconfig import load_desks
from ticketflow.queries.adapters import boards, tickets
from ticketflow.queries.domain import risk


def call(spec: dict[str, Any], pool: asyncpg.Pool, desks: Any) -> Any:
    """The adapter call the service makes for this request."""
    if spec["kind"] == "list":
        where = tickets.TicketFilter(tuple(spec["desks"]), **{k: tuple(v) for k, v in spec["filter"].items()})
        return tickets.ticket_page(pool, where, "-opened_at", None, spec["limit"])
    if spec["kind"] == "detail":
        return tickets.ticket_document(pool, uuid.UUID(spec["ticket_id"]), spec["desks"])
    cutoffs = risk.cutoffs(desks, spec["desk"], datetime.now(UTC), 60)
    return boards.sla_board(pool, spec["desk"], spec["limit"], cutoffs, (), (), ())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.workload) as source:  # noqa: ASYNC230 - read before the load starts
        specs = json.load(source)[args.scenario]
    desks = load_desks()
    pool = await asyncpg.create_pool(args.dsn, min_size=args.connections, max_size=args.connections)
    assert pool is not None
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter
    total = int(args.rate * args.duration)

    async def one(n: int, due: float) -> None:
        nonlocal errors
        try:
            await call(specs[n % len(specs)], pool, desks)
            latencies.append(clock() - due)
        except Exception:
            errors += 1

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks: list[asyncio.Task[None]] = []
    start = clock() + 0.05
    sent = 0
    while sent < total:
        now = clock()
        due_count = min(total, int((now - start) * args.rate) + 1) if now >= start else 0
        while sent < due_count:
            tasks.append(asyncio.create_task(one(sent, start + sent / args.rate)))
            sent += 1
        await asyncio.sleep(max(0.001, start + sent / args.rate - clock()))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    await pool.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * q))], 2) if latencies else 0.0

    return {
        "offered_rate": args.rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "requests": total,
        "answered": len(latencies),
        "statuses": {"ok": len(latencies), "errors": errors},
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else 0.0,
        "generator_cpu_s": round((usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--scenario", required=True, choices=("list", "detail", "board"))
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    print("OPENLOOP " + json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
