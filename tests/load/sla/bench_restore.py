"""Cold restore of the SLA service: R tickets (2 running clocks each, 2R timers) restored from the
partition checkpoints by the service's consumer on assignment, until every partition is live and armed.

Run: make bench-sla-restore   (or: .venv/bin/python tests/load/sla/bench_restore.py [--resident N] ...)

The checkpoints are written once, as a live service writes them (each state with its timers). Then
each round restores them twice, each time in a fresh process (a cold start: nothing cached) through
the service's consumer (`SlaConsumer` on the service's broker, a fresh consumer group on a scratch
12-partition topic): "stored" arms the stored timers (the code as it is), "derived" ignores them and
computes every ticket's next firings from its state, as every restore did before (the baseline, in the
same run). Restored = from the consumer's start until every partition is live with its timers armed.
Each restore prints its seconds, the ratio to the round's baseline, the PostgreSQL checkpoints that
started meanwhile, the process's peak RSS and the load average. Target (issue 18): 2.5 M tickets,
5 M timers in at most 30 s, in every run. Nothing is written back (the restoring engines' checkpoints
are read-only), so the rounds restore the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support
import bench_service as service
from support.pg_checkpoints import CheckpointWatch, checkpoint_stats

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.runtime.service import make_broker
from ticketflow.runtime.settings import load_settings
from ticketflow.sla.adapters.checkpoints import UNKNOWN, Checkpoint, PartitionCheckpoints
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer
from ticketflow.sla.settings import SlaSettings

TARGET_S = 30.0


class ReadOnlyCheckpoints(PartitionCheckpoints):
    """Restores, never writes (every round restores the same rows); `derived`: without stored timers."""

    def __init__(self, pool: asyncpg.Pool, topic: str, *, derived: bool) -> None:
        super().__init__(pool, topic)
        self.derived = derived

    async def load(self, partition: int) -> Checkpoint | None:
        saved = await super().load(partition)
        if saved is None or not self.derived:
            return saved
        return saved._replace(timers=saved.timers * 0 + UNKNOWN)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        return None


def restore_process(args: argparse.Namespace, dsn: str, topic: str, mode: str, results: Any) -> None:
    async def run() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
        rules = DeskRules(load_desks())
        rules.warm_calendars()  # as the service does before it subscribes
        engine = SlaEngine(rules, SlaWriter(EventStore(pool)),
                           checkpoints=ReadOnlyCheckpoints(pool, topic, derived=mode == "derived"))  # fmt: skip
        engines = [engine]

        async def the_engine() -> SlaEngine:
            return engines.pop()

        broker = make_broker(load_settings(SlaSettings, kafka_bootstrap=args.bootstrap), "sla")
        await broker.start()
        group = f"bench-restore-{os.getpid()}"
        consumer = SlaConsumer(broker, topic, the_engine, service.PrintedDeadLetters(), group_id=group,
                               consumer_options=service.SLOW_GROUP)  # fmt: skip
        stop = asyncio.Event()
        watch = await CheckpointWatch.begin(pool)
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        task = asyncio.create_task(consumer.run(stop))
        await service.poll_until(
            lambda: (
                len(engine.partitions) == service.PARTITIONS
                and all(p.live for p in engine.partitions.values())
                and engine.arming == 0
            )
        )
        restored_s = time.perf_counter() - began
        checkpoints = watch.summary(await checkpoint_stats(pool))
        timers = engine.timers()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
        stop.set()
        await task
        await broker.stop()
        await pool.close()
        results.put((restored_s, timers, checkpoints, rss_mb, load))

    asyncio.run(run())


async def bench(args: argparse.Namespace) -> None:
    dsn, topic = await service.scratch(args)
    context = multiprocessing.get_context("spawn")
    rows = []
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        rules = DeskRules(load_desks())
        rules.warm_calendars()
        began = time.perf_counter()
        await service.write_resident(pool, topic, args.resident, int(time.time()), rules, rules.fingerprint())
        print(f"checkpoints of {args.resident:,} tickets written in {time.perf_counter() - began:.1f} s", flush=True)
        await pool.close()
        for round_ in range(1, args.rounds + 1):
            baseline = None
            for mode in args.modes:
                results = context.Queue()
                process = context.Process(target=restore_process, args=(args, dsn, topic, mode, results))
                process.start()
                restored_s, timers, checkpoints, rss_mb, load = await asyncio.to_thread(results.get, True, 900)
                process.join(120)
                baseline = restored_s if mode == "derived" else baseline
                versus = f"{restored_s / baseline:.2f}x" if baseline and mode != "derived" else ""
                met = "met" if restored_s <= TARGET_S else "missed"
                rows.append([round_, mode, f"{timers:,}", f"{restored_s:.1f} ({met})", versus, checkpoints,
                             f"{rss_mb:,.0f}", load])  # fmt: skip
                print(tabulate([rows[-1]], tablefmt="plain"), flush=True)
    finally:
        await service.drop(args, dsn, topic)
    print(f"\n## SLA cold restore: {args.resident:,} tickets, {service.PARTITIONS} partitions, "
          f"{os.cpu_count()} cores; target <= {TARGET_S:.0f} s\n")  # fmt: skip
    headers = ["round", "restore", "timers armed", f"restored, s (target <= {TARGET_S:.0f})",
               "÷ derived (the baseline)", "PostgreSQL checkpoints meanwhile", "peak RSS MB",
               "load avg start / end"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resident", type=int, default=2_500_000, help="tickets in the checkpoints, 2 timers each")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", type=lambda text: text.split(","), default=["derived", "stored"],
                   help="restores per round, in order: derived (the baseline), stored")  # fmt: skip
    p.add_argument("--bootstrap", default=os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", service.DEFAULT_KAFKA))
    p.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", service.DEFAULT_PG_DSN))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(bench(parse()))
