"""The ceiling of the query benchmark: the same SQL the queries service sends for each request (its own
adapter functions, the same arguments), straight to PostgreSQL at the same constant rate, open loop (latency
from each request's due time), over a pool of connections. No HTTP, no tokens, no JSON.

Open loop as `tests/support/open_loop.py` paces it (`paced`: each request a task at its due time).

Usage: python ceiling.py --dsn DSN --workload FILE --scenario list|detail|board --rate 1000 --duration 30
Prints one JSON line like openloop_get.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from ticketflow.deskconfig import load_desks
from ticketflow.queries.adapters import boards, tickets
from ticketflow.queries.domain import risk

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.open_loop
from support.open_loop import paced


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
    specs = json.loads(Path(args.workload).read_text())[args.scenario]  # noqa: ASYNC240 - before the load
    desks = load_desks()
    pool = await asyncpg.create_pool(args.dsn, min_size=args.connections, max_size=args.connections)
    assert pool is not None
    try:
        return await paced(args.rate, args.duration, lambda n: call(specs[n % len(specs)], pool, desks))
    finally:
        await pool.close()


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
