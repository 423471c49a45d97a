"""The whole pipeline's speed (issue 21, item 5): new tickets per second through intake -> preflight ->
routing -> SLA -> the first chat reply delivered, for --seconds at an offered --rate.

The services run as real processes (tests/support/system.py: projector with the relay, intake,
preflight, routing, sla, notifications) on this run's own topics of the shared broker and a private
PostgreSQL cluster (tests/support/private_postgres.py; durability settings off, see there). The desks are
the packaged ones with SLA clocks on the public bot's track (tests/support/desks.py; a 60-minute first
response: every ticket starts clocks, none fires during the run). This process offers the load (new BotX
conversations posted to intake's webhook with a valid JWT, open loop: one per 1/rate s, whatever the
answers) and serves the fake BotX the replies go to, so it spends CPU of its own (reported).

Measured: webhooks answered 202 per second; tickets whose "registered under TF-..." reply reached the fake
BotX within the window, and all of them after it drained; latency from each webhook's 202 to the fake
receiving that reply (p50, p99, max); CPU seconds of each process (/proc through psutil: utime + stime,
children included for PostgreSQL) per ticket and as a share of one core over the window; each service's
lag at the end of the window (tests/support/system_offsets.py): the service with the largest backlog of
the records it reads, and the busiest process, is what limits the rate. The shared broker is not counted
(other engineers' work runs on it).

Run: make bench-system   (short: BENCH_SYSTEM_ARGS="--rate 20 --seconds 10")
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "intake"))
sys.path.insert(0, str(REPO / "tests"))

from intake_payloads import botx_message  # noqa: E402
from pybotx.auth import build_botx_jwt_v2  # noqa: E402
from support.demo import demo_secrets  # noqa: E402
from support.desks import client_track_with_sla  # noqa: E402
from support.eventstore import migrated_pool  # noqa: E402
from support.infra import InfraSelector  # noqa: E402
from support.private_postgres import PrivatePostgres  # noqa: E402
from support.system import EXPRESS_BOTS, PUBLIC_BOT, PUBLIC_BOT_HOST, ChatPlatforms, PrivateTopics, System  # noqa: E402
from support.system_offsets import CONSUMERS, offsets  # noqa: E402

SERVICES = ("projector", "intake", "preflight", "routing", "sla", "notifications")
REGISTERED = "зарегистрировано под номером"


@dataclass
class Offered:
    accepted: dict[uuid.UUID, float] = field(default_factory=dict)  # chat -> when its 202 came
    refused: int = 0
    errors: list[str] = field(default_factory=list)


async def offer(url: str, rate: float, seconds: float, offered: Offered) -> None:
    """New conversations at `rate` per second for `seconds`, open loop (a post each 1/rate s)."""
    secret = demo_secrets()[EXPRESS_BOTS[PUBLIC_BOT]]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)

    async def one(client: httpx.AsyncClient, n: int) -> None:
        chat = uuid.uuid4()
        command = botx_message(f"После обновления до 3.{n % 40}.{n} не открывается чат, код {n:06d}", chat_id=chat,
                               user_huid=uuid.uuid4(), bot_id=PUBLIC_BOT)  # fmt: skip
        command["from"]["host"] = PUBLIC_BOT_HOST
        try:
            # A token per post, as BotX signs each: one made at the start expires within the run.
            token = build_botx_jwt_v2(bot_id=PUBLIC_BOT, bot_host=PUBLIC_BOT_HOST, secret_key=secret)
            answer = await client.post(f"{url}/command", json=command, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            offered.refused += 1
            offered.errors.append(repr(error))
            return
        if answer.status_code == 202:
            offered.accepted[chat] = time.monotonic()
        else:
            offered.refused += 1
            offered.errors.append(f"{answer.status_code} {answer.text[:100]}")

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks: list[asyncio.Task[None]] = []
        start, total = time.monotonic(), int(rate * seconds)
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)


def cpu_seconds(process: psutil.Process, *, children: bool = False) -> float:
    try:
        times = process.cpu_times()
        own = times.user + times.system
        if children:
            own += sum(c.cpu_times().user + c.cpu_times().system for c in process.children(recursive=True))
        return float(own)
    except psutil.Error:
        return 0.0


def processes(system: System, cluster: PrivatePostgres) -> dict[str, tuple[psutil.Process, bool]]:
    found = {name: (psutil.Process(system[name].process.pid), False) for name in SERVICES  # type: ignore[union-attr]
             if system[name].process is not None}  # fmt: skip
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    found["postgres (private)"] = (psutil.Process(postmaster), True)
    found["load + fake BotX (this process)"] = (psutil.Process(), False)
    return found


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def registered_at(platforms: ChatPlatforms) -> dict[uuid.UUID, float]:
    return {m.chat_id: m.at for m in platforms.botx.received if REGISTERED in m.body}


async def bench(rate: float, seconds: float, drain_s: float, bootstrap: str) -> None:
    loadavg_before = load_average()
    directory = Path(tempfile.mkdtemp(prefix="tf-bench-system-"))
    cluster = await asyncio.to_thread(PrivatePostgres.create)
    topics = PrivateTopics.named("bench-system")
    try:
        pool = await migrated_pool(cluster.dsn)
        await topics.create(bootstrap)
        desks = client_track_with_sla(directory / "desks", first_response_minutes=60)
        async with ChatPlatforms.running(directory) as platforms:
            system = System(cluster.dsn, bootstrap, topics, platforms, directory,
                            environment={"TICKETFLOW_DESK_CONFIG_DIR": str(desks)})  # fmt: skip
            try:
                await system.start(*SERVICES)
                await warm_up(system, platforms)
                procs = processes(system, cluster)
                cpu_before = {name: cpu_seconds(p, children=c) for name, (p, c) in procs.items()}
                offered = Offered()
                started = time.monotonic()
                await offer(system["intake"].url, rate, seconds, offered)
                window = time.monotonic() - started
                cpu_window = {name: cpu_seconds(p, children=c) - cpu_before[name] for name, (p, c) in procs.items()}
                lag = (await offsets(bootstrap, topics, pool)).lag
                in_window = registered_at(platforms)
                drained_by = time.monotonic() + drain_s
                # The fake BotX only records what it receives: polling it is the simple way to wait.
                while len(registered_at(platforms)) < len(offered.accepted) and time.monotonic() < drained_by:  # noqa: ASYNC110
                    await asyncio.sleep(1)
                drain = time.monotonic() - started - window
                cpu_all = {name: cpu_seconds(p, children=c) - cpu_before[name] for name, (p, c) in procs.items()}
                report(rate, window, drain, offered, in_window, registered_at(platforms), cpu_window, cpu_all, lag,
                       loadavg_before)  # fmt: skip
            finally:
                system.stop()
        await pool.close()
    finally:
        await topics.delete(bootstrap)
        await asyncio.to_thread(cluster.destroy)


async def warm_up(system: System, platforms: ChatPlatforms) -> None:
    """One conversation through the whole pipeline before the clock starts (connections, caches, groups)."""
    offered = Offered()
    await offer(system["intake"].url, 1, 1, offered)
    deadline = time.monotonic() + 120
    while not set(offered.accepted) <= set(registered_at(platforms)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    platforms.botx.received.clear()


def report(rate: float, window: float, drain: float, offered: Offered, in_window: dict[uuid.UUID, float],
           delivered: dict[uuid.UUID, float], cpu_window: dict[str, float], cpu_all: dict[str, float],
           lag: dict[str, int], loadavg_before: list[str]) -> None:  # fmt: skip
    latencies = np.array([delivered[c] - t for c, t in offered.accepted.items() if c in delivered])
    done = len(delivered)
    p50, p99, worst = np.percentile(latencies, [50, 99, 100]) if len(latencies) else (np.nan,) * 3
    loadavg = f"loadavg before {' '.join(loadavg_before)}, after {' '.join(load_average())}"
    print(f"\nbench-system: offered {rate:.0f} new tickets/s for {window:.1f} s; {loadavg}; 2 cores shared")
    print(tabulate([
        ["webhooks answered 202", len(offered.accepted), f"{len(offered.accepted) / window:.1f}/s"],
        ["webhooks refused or failed", offered.refused, "; ".join(sorted(set(offered.errors))[:3])],
        ["registered reply received within the window", len(in_window), f"{len(in_window) / window:.1f}/s"],
        ["registered reply received in all", done, f"drained {drain:.1f} s after the window"],
        ["sustained (all delivered / (window + drain))", "", f"{done / (window + drain):.1f} tickets/s"],
        ["202 -> reply received p50 / p99 / max", len(latencies), f"{p50:.2f} s / {p99:.2f} s / {worst:.2f} s"],
    ], headers=["pipeline", "count", "figure"]))  # fmt: skip
    rows = [
        [name, f"{cpu_window[name]:.1f}", f"{100 * cpu_window[name] / window:.0f}%",
         f"{1000 * cpu_all[name] / done:.1f}" if done else "-", lag.get(name, "")]
        for name in cpu_window
    ]  # fmt: skip
    print(tabulate(rows, headers=["process", "CPU s (window)", "of one core", "CPU ms per ticket (all)",
                                  "lag at window end (records)"]))  # fmt: skip
    consumers = {name: lag[name] for name in CONSUMERS if name in lag}
    busiest = max((n for n in cpu_window if n in SERVICES), key=lambda n: cpu_window[n])
    print(
        f"largest backlog at the window's end: {max(consumers, key=lambda n: consumers[n])} {consumers};"
        f" busiest service: {busiest} ({100 * cpu_window[busiest] / window:.0f}% of one core)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="new tickets offered per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load is offered")
    parser.add_argument("--drain", type=float, default=300.0, help="how long to wait for the replies after it")
    args = parser.parse_args()
    selector = InfraSelector()
    try:
        bootstrap = str(selector.kafka_bootstrap())
        asyncio.run(bench(args.rate, args.seconds, args.drain, bootstrap))
    finally:
        selector.close()


if __name__ == "__main__":
    main()
