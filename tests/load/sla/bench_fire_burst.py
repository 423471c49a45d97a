"""The SLA firing path alone: F tickets come due in the same second, fired by the real engine and
timer loop and stored in a scratch PostgreSQL database (no consumer, a small resident set), in rounds.

Run: make bench-sla-burst   (or: .venv/bin/python tests/load/sla/bench_fire_burst.py [--fire N] ...)

Faster and quieter than `bench_service.py`'s firing phase (which runs after 2.5 M tickets are
restored), so it is the one to compare firing-path changes with (`--tune`, several rounds); the
figure of record for "stored" is still the full service run. Prints, per round: firings stored per
second after the due second, when the last one was decided and stored, and CPU per firing of this
process and of PostgreSQL.

Produced, not only stored: SLA events reach Kafka only through the store's outbox, which the
projector's `OutboxRelay` publishes. The bench runs that relay in a process of its own (as the
projector does), publishing to the scratch topic, during the burst, and also reports when the last
firing was published (the outbox empty) and the relay process's CPU per firing (`--no-relay`: off).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_service as service

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.sla.engine import FULL_GC_EVERY, SlaEngine
from ticketflow.sla.partition import Partition
from ticketflow.sla.policies import DeskRules
from ticketflow.sla.writer import SlaWriter


async def bench(args: argparse.Namespace) -> None:
    service.tune(args.tune)
    dsn, topic = await service.scratch(args)
    relay: Any = None
    if args.relay:
        context = multiprocessing.get_context("spawn")
        relay_stop = context.Event()
        relay = context.Process(target=service.relay_process, args=(dsn, args.bootstrap, topic, relay_stop))
        relay.start()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)  # the service's pool size
    assert pool is not None
    rules = DeskRules(load_desks())
    rules.warm_calendars()
    engine = SlaEngine(rules, SlaWriter(EventStore(pool)), service._dead_letter)
    for number in range(service.PARTITIONS):
        engine.partitions[number] = Partition(number, {}, 0, 0, live=True)
    timers = asyncio.create_task(engine.loop.run())
    me, rows = psutil.Process(), []
    try:
        for round_ in range(1, args.rounds + 1):
            due = int(time.time()) + 2
            parts = list(engine.partitions.values())
            async with engine.lock:
                for n, state in enumerate(service.due_tickets(args.fire, due)):
                    part = parts[n % len(parts)]
                    part.tickets[state.ticket_id] = state
                    engine._sync(part, state.ticket_id, state)
            gc.collect()
            gc.freeze()  # as the engine does once a large partition is restored (engine.go_live)
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, FULL_GC_EVERY)
            await asyncio.sleep(max(0.0, due - time.time() - 0.2))
            relay_proc = psutil.Process(relay.pid) if relay is not None else None
            relay_before = sum(relay_proc.cpu_times()[:2]) if relay_proc is not None else 0.0
            roles_before, me_before = service.cpu_by_process(0), sum(me.cpu_times()[:2])
            stored_before, decided_before, decided_s = engine.queue.fired, engine.stats.fired, 0.0
            while engine.queue.fired - stored_before < args.fire:
                if not decided_s and engine.stats.fired - decided_before >= args.fire:
                    decided_s = time.time() - due
                await asyncio.sleep(0.01)
            stored_s = time.time() - due
            decided_s = decided_s or stored_s
            published = "-"
            if relay_proc is not None:
                while await pool.fetchval("SELECT count(*) FROM outbox"):  # noqa: ASYNC110 - polling the table
                    await asyncio.sleep(0.01)
                published_s = time.time() - due
                relay_cpu = sum(relay_proc.cpu_times()[:2]) - relay_before
                published = (
                    f"{args.fire / published_s:,.0f} ({published_s:.2f} s; relay {1e6 * relay_cpu / args.fire:.0f} µs)"
                )
            roles = service.cpu_by_role(roles_before, service.cpu_by_process(0))
            mine = sum(me.cpu_times()[:2]) - me_before
            rows.append([round_, f"{args.fire / stored_s:,.0f}", f"{decided_s:.2f} / {stored_s:.2f}", published,
                         f"{1e6 * mine / args.fire:.0f}", f"{1e6 * roles['postgres'] / args.fire:.0f}",
                         f"{1e6 * roles['kafka'] / args.fire:.0f}",
                         f"{os.getloadavg()[0]:.2f}"])  # fmt: skip
    finally:
        timers.cancel()
        await asyncio.gather(timers, return_exceptions=True)
        await engine.close()
        if relay is not None:
            relay_stop.set()
            relay.join(30)
        await pool.close()
        await service.drop(args, dsn, topic)
    print(f"\n## SLA firing burst: {args.fire:,} due in the same second ({os.cpu_count()} cores)\n")
    headers = ["round", "firings/s stored", "last decided / stored, s after due",
               "published/s (last published after due; relay CPU per firing)", "service µs/firing",
               "postgres µs/firing (incl. the relay's queries)", "kafka broker µs/firing", "load avg"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print("\ntarget (whole service, issue 7): >= 50,000 warnings and breaches/s")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fire", type=int, default=50_000, help="tickets due in the same second, per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-relay", dest="relay", action="store_false", help="do not publish (stored only)")
    p.add_argument("--tune", action="append", default=[], metavar="MODULE.NAME=INT",
                   help="override a tuning constant of ticketflow.sla, as bench_service.py takes it")  # fmt: skip
    p.add_argument("--bootstrap", default=os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", service.DEFAULT_KAFKA))
    p.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", service.DEFAULT_PG_DSN))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(bench(parse()))
