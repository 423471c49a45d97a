"""The SLA firing path alone: F tickets come due in the same second, fired by the real engine and
timer loop and stored in a scratch PostgreSQL database (no consumer, a small resident set), then
published to Kafka by the relay, in rounds.

Run: make bench-sla-burst   (or: .venv/bin/python tests/load/sla/bench_fire_burst.py [--fire N] ...)

Faster and quieter than `bench_service.py`'s firing phase (which runs after 2.5 M tickets are
restored), so it is the one to compare firing-path and relay changes with (`--tune`, several rounds).

Stored, then published (issue 18): SLA events reach Kafka only through the store, which the
projector's relay publishes. The bench runs that relay in a process of its own (as the projector does),
publishing to a scratch topic during the burst. Per round it prints firings stored per second (the
baseline: what the writers did in this round), firings published per second (visible to
`read_committed` consumers: their transaction committed) and their ratio against the target (>= 0.9),
when the last firing was published after the last was stored (target <= 0.5 s), CPU per firing of the
engines, the relay, PostgreSQL and Kafka, the PostgreSQL checkpoints started in the round, and the load
average. `--instances N` runs N engines in processes of their own, each with its share of the
partitions and of the burst, as N instances of the service in one consumer group would.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support
from support.pg_checkpoints import CheckpointWatch, checkpoint_stats
from support.relay_process import RelayProcess

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import FULL_GC_EVERY, SlaEngine
from ticketflow.sla.partition import Partition


class Burst:
    """One SLA engine instance (all partitions, or its share of them) on the scratch database/topic."""

    def __init__(self, args: argparse.Namespace, dsn: str, topic: str, partitions: list[int]) -> None:
        self.args, self.dsn, self.topic, self.numbers = args, dsn, topic, partitions
        self.me = psutil.Process()

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=10)  # the service's pool size
        rules = DeskRules(load_desks())
        rules.warm_calendars()
        self.engine = SlaEngine(rules, SlaWriter(EventStore(self.pool)))
        for number in self.numbers:
            self.engine.partitions[number] = Partition(number, {}, 0, 0, live=True)
        self.timers = asyncio.create_task(self.engine.loop.run())

    async def load(self, count: int, due: int) -> None:
        engine = self.engine
        parts = list(engine.partitions.values())
        async with engine.lock:
            for n, state in enumerate(service.due_tickets(count, due)):
                part = parts[n % len(parts)]
                part.tickets[state.ticket_id] = state
                engine._sync(part, state.ticket_id, state)
        gc.collect()
        gc.freeze()  # as the engine does once a large partition is restored (app.SlaEngine.go_live)
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_GC_EVERY)

    async def fire(self, count: int, due: int) -> tuple[float, float, float]:
        """Wait for `count` firings due at `due` to be stored: (last decided, last stored) in seconds
        after due, and this process's CPU-s from 0.2 s before due."""
        engine = self.engine
        await asyncio.sleep(max(0.0, due - time.time() - 0.2))
        cpu_before = sum(self.me.cpu_times()[:2])
        done_before, decided_before, decided_s = engine.queue.fired, engine.stats.fired, 0.0
        while engine.queue.fired - done_before < count:
            if not decided_s and engine.stats.fired - decided_before >= count:
                decided_s = time.time() - due
            await asyncio.sleep(0.01)
        done_s = time.time() - due
        return decided_s or done_s, done_s, sum(self.me.cpu_times()[:2]) - cpu_before

    async def close(self) -> None:
        self.timers.cancel()
        await asyncio.gather(self.timers, return_exceptions=True)
        await self.engine.close()
        await self.pool.close()


def instance_process(
    args: argparse.Namespace, dsn: str, topic: str, numbers: list[int], orders: Any, results: Any
) -> None:
    """One instance in its own process (`--instances N`): rounds arrive as (count, due) on `orders`."""

    async def run() -> None:
        service.tune(args.tune)
        burst = Burst(args, dsn, topic, numbers)
        await burst.start()
        results.put(("ready", os.getpid()))
        try:
            while (order := await asyncio.to_thread(orders.get)) is not None:
                count, due = order
                await burst.load(count, due)
                results.put(("loaded", os.getpid()))
                results.put(await burst.fire(count, due))
        finally:
            await burst.close()

    asyncio.run(run())


TARGET_RATIO = 0.9  # firings published per second >= 0.9 x firings stored per second, in the same round
TARGET_LAG_S = 0.5  # the last firing published at most 0.5 s after the last one is stored


async def bench(args: argparse.Namespace) -> None:
    service.tune(args.tune)
    dsn, topic = await service.scratch(args)
    context = multiprocessing.get_context("spawn")
    relay = RelayProcess(dsn, args.bootstrap, {TICKET_EVENTS: topic}).start() if args.relay else None
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    # One instance runs here; several split the partitions between processes, as instances of the
    # service in one consumer group do.
    local: Burst | None = None
    workers: list[tuple[Any, Any]] = []
    results: Any = context.Queue()
    if args.instances == 1:
        local = Burst(args, dsn, topic, list(range(service.PARTITIONS)))
        await local.start()
    else:
        for index in range(args.instances):
            numbers = list(range(index, service.PARTITIONS, args.instances))
            orders = context.Queue()
            process = context.Process(target=instance_process, args=(args, dsn, topic, numbers, orders, results))
            process.start()
            workers.append((process, orders))
        for _ in workers:
            await asyncio.to_thread(results.get, True, 120)
    rows = []
    try:
        for round_ in range(1, args.rounds + 1):
            share = args.fire // args.instances
            load_before = os.getloadavg()[0]
            if local is not None:
                due = int(time.time()) + 2
                await local.load(share, due)
            else:
                due = int(time.time()) + 4  # each instance loads its share first
                for _, orders in workers:
                    orders.put((share, due))
            await asyncio.sleep(max(0.0, due - time.time() - 0.2))
            relay_proc = psutil.Process(relay.pid) if relay is not None else None
            relay_before = sum(relay_proc.cpu_times()[:2]) if relay_proc is not None else 0.0
            published_before = relay.published if relay is not None else 0
            roles_before = service.cpu_by_process(0)
            checkpoints = await CheckpointWatch.begin(pool)
            if local is not None:
                outcomes = [await local.fire(share, due)]
            else:
                got = [await asyncio.to_thread(results.get, True, 120) for _ in range(2 * len(workers))]
                outcomes = [item for item in got if item[0] != "loaded"]
            decided_s = max(outcome[0] for outcome in outcomes)
            stored_s = max(outcome[1] for outcome in outcomes)
            engines_cpu = sum(outcome[2] for outcome in outcomes)
            fired = share * args.instances
            stored_rate = fired / stored_s
            published = ratio = lag = relay_us = "-"
            if relay is not None and relay_proc is not None:
                published_s = await relay.wait_published(published_before + fired) - due
                relay_cpu = sum(relay_proc.cpu_times()[:2]) - relay_before
                published_rate = fired / published_s
                published = f"{published_rate:,.0f}"
                ratio = f"{published_rate / stored_rate:.2f} ({met(published_rate >= TARGET_RATIO * stored_rate)})"
                lag = f"{published_s - stored_s:.2f} ({met(published_s - stored_s <= TARGET_LAG_S)})"
                relay_us = f"{1e6 * relay_cpu / fired:.0f}"
            roles = service.cpu_by_role(roles_before, service.cpu_by_process(0))
            rows.append([round_, f"{stored_rate:,.0f}", published, ratio, f"{decided_s:.2f} / {stored_s:.2f}", lag,
                         f"{1e6 * engines_cpu / fired:.0f}", relay_us, f"{1e6 * roles['postgres'] / fired:.0f}",
                         f"{1e6 * roles['kafka'] / fired:.0f}", checkpoints.summary(await checkpoint_stats(pool)),
                         f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"])  # fmt: skip
    finally:
        if local is not None:
            await local.close()
        for process, orders in workers:
            orders.put(None)
            process.join(60)
        if relay is not None:
            relay.stop()
        await pool.close()
        await service.drop(args, dsn, topic)
    print(f"\n## SLA firing burst: {args.fire:,} due in the same second ({os.cpu_count()} cores, "
          f"{args.instances} instance(s)), stored then published by the relay\n")  # fmt: skip
    headers = ["round", "firings/s stored (baseline)", "firings/s published",
               f"published ÷ stored (target >= {TARGET_RATIO})",
               "last decided / stored, s after due", f"last published - last stored, s (target <= {TARGET_LAG_S})",
               "engines µs/firing", "relay µs/firing", "postgres µs/firing", "kafka µs/firing",
               "PostgreSQL checkpoints in the round", "load avg start / end"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))


def met(condition: bool) -> str:
    return "met" if condition else "missed"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fire", type=int, default=50_000, help="tickets due in the same second, per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-relay", dest="relay", action="store_false", help="do not publish (stored only)")
    p.add_argument(
        "--instances", type=int, default=1, help="service instances, each in its own process, splitting the partitions"
    )
    p.add_argument("--tune", action="append", default=[], metavar="MODULE.NAME=INT",
                   help="override a tuning constant of ticketflow.sla, as bench_service.py takes it")  # fmt: skip
    p.add_argument("--bootstrap", default=os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", service.DEFAULT_KAFKA))
    p.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", service.DEFAULT_PG_DSN))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(bench(parse()))
