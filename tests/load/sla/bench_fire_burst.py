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

`--sink kafka-only` is an experiment, not the product: the same engine with `KafkaOnlyWriter`
(firings produced straight to Kafka by the service, nothing stored, no relay); "stored" then reads
"produced". It measures what a Kafka-first firing path could give on this box. `--instances N`
runs N engines in processes of their own, each with its share of the partitions and of the burst,
as N instances of the service in one consumer group would (the figures add them up).
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
from kafka_only_writer import KafkaOnlyWriter

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.messaging.producer import make_producer
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
        self.producer = make_producer(self.args.bootstrap) if self.args.sink == "kafka-only" else None
        writer: Any = SlaWriter(EventStore(self.pool))
        if self.producer is not None:
            await self.producer.start()
            writer = KafkaOnlyWriter(self.producer, self.topic, service.PARTITIONS)
        self.engine = SlaEngine(rules, writer)
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
        """Wait for `count` firings due at `due` to be stored (or produced): (last decided, last done)
        in seconds after due, and this process's CPU-s from 0.2 s before due."""
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
        if self.producer is not None:
            await self.producer.stop()
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


async def bench(args: argparse.Namespace) -> None:
    service.tune(args.tune)
    dsn, topic = await service.scratch(args)
    relay: Any = None
    kafka_only = args.sink == "kafka-only"
    context = multiprocessing.get_context("spawn")
    if args.relay and not kafka_only:
        relay_stop = context.Event()
        relay = context.Process(target=service.relay_process, args=(dsn, args.bootstrap, topic, relay_stop))
        relay.start()
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
            roles_before = service.cpu_by_process(0)
            if local is not None:
                outcomes = [await local.fire(share, due)]
            else:
                got = [await asyncio.to_thread(results.get, True, 120) for _ in range(2 * len(workers))]
                outcomes = [item for item in got if item[0] != "loaded"]
            decided_s = max(outcome[0] for outcome in outcomes)
            done_s = max(outcome[1] for outcome in outcomes)
            engines_cpu = sum(outcome[2] for outcome in outcomes)
            fired = share * args.instances
            published = "-"
            if relay_proc is not None:
                while await pool.fetchval("SELECT count(*) FROM outbox"):  # noqa: ASYNC110 - polling the table
                    await asyncio.sleep(0.01)
                published_s = time.time() - due
                relay_cpu = sum(relay_proc.cpu_times()[:2]) - relay_before
                published = f"{fired / published_s:,.0f} ({published_s:.2f} s; relay {1e6 * relay_cpu / fired:.0f} µs)"
            roles = service.cpu_by_role(roles_before, service.cpu_by_process(0))
            rows.append([round_, f"{fired / done_s:,.0f}", f"{decided_s:.2f} / {done_s:.2f}", published,
                         f"{1e6 * engines_cpu / fired:.0f}", f"{1e6 * roles['postgres'] / fired:.0f}",
                         f"{1e6 * roles['kafka'] / fired:.0f}",
                         f"{os.getloadavg()[0]:.2f}"])  # fmt: skip
    finally:
        if local is not None:
            await local.close()
        for process, orders in workers:
            orders.put(None)
            process.join(60)
        if relay is not None:
            relay_stop.set()
            relay.join(30)
        await pool.close()
        await service.drop(args, dsn, topic)
    sink = ", --sink kafka-only: produced by the service, nothing stored" if kafka_only else ""
    print(f"\n## SLA firing burst: {args.fire:,} due in the same second ({os.cpu_count()} cores, "
          f"{args.instances} instance(s){sink})\n")  # fmt: skip
    done = "produced" if kafka_only else "stored"
    headers = ["round", f"firings/s {done}", f"last decided / {done}, s after due",
               "published/s (last published after due; relay CPU per firing)", "service µs/firing (all instances)",
               "postgres µs/firing (incl. the relay's queries)", "kafka broker µs/firing", "load avg"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print("\ntarget (whole service, issue 7): >= 50,000 warnings and breaches/s")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fire", type=int, default=50_000, help="tickets due in the same second, per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-relay", dest="relay", action="store_false", help="do not publish (stored only)")
    p.add_argument(
        "--instances", type=int, default=1, help="service instances, each in its own process, splitting the partitions"
    )
    p.add_argument("--sink", choices=("store", "kafka-only"), default="store",
                   help="kafka-only: an experiment, firings produced straight to Kafka and not stored")  # fmt: skip
    p.add_argument("--tune", action="append", default=[], metavar="MODULE.NAME=INT",
                   help="override a tuning constant of ticketflow.sla, as bench_service.py takes it")  # fmt: skip
    p.add_argument("--bootstrap", default=os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", service.DEFAULT_KAFKA))
    p.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", service.DEFAULT_PG_DSN))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(bench(parse()))
