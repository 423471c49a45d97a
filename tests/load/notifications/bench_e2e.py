"""Notifications end to end: an event produced on Kafka -> a request received by a local platform server.

Three processes besides this one: a Bitrix24 portal (`imbot.message.add`, token and bot checked; a
minimal asyncio HTTP/1.1 server over TLS so it does not eat the CPU the service needs), the notifications
service itself (`python -m ticketflow.notifications`: real consumer, ledger, store, Bitrix24 channel through
the portal's install row, which the bench writes as intake would), and, for the ceiling, a plain aiokafka
consumer that decodes each envelope and POSTs the same request with the channel's own HTTP client
(`ticketflow.bitrix24.GuardedHttp`, aiohttp, TLS; no ledger, no store, no templates). Every ticket is two
records with the ticket id as key (one partition, in order), TicketOpened then PreflightPassed, and one
message: "registered" is sent on PreflightPassed, from the context the TicketOpened left in the service's
cache (no store read on this path; the bench writes nothing to the store). So a ticket here is what an
event was before that message moved from TicketOpened to PreflightPassed: one message, measured from the
record that triggers it (the PreflightPassed) to its arrival; the ceiling pairs the records the same way.
A rebalance that splits a ticket's two records between two consumers leaves that PreflightPassed without
a requester (nothing sent); the service phases produce nothing until their consumer group has every
process as a member (Stable), so the scale-out phase measures the processes together, not the first one
alone while the second starts and then a rebalance, and no ticket is split.

Phases: paced at --rate tickets/s for --seconds (achieved rate, p50/p99 latency), a backlog of --backlog
tickets drained as fast as possible, both for the ceiling and the service; then the service under a
destination that answers 503 for --down seconds while tickets keep coming at --outage-rate: no loss
(every ticket's message received exactly once), RSS sampled, recovery time after the destination is back.

Run: make bench-notifications-e2e   (short: BENCH_NOTIFICATIONS_E2E_ARGS="--seconds 3 --backlog 3000 --down 5")
Needs Kafka and PostgreSQL (a temporary database and topics are created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import psutil
import trustme
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tabulate import tabulate

from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope, envelope_encoder
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.eventstore import migrate
from ticketflow.messaging.producer import make_producer

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.infra
from e2e_processes import BOT_ID, TOKEN
from support.bitrix24 import BOX_CLIENT_ID, BOX_SECRET_ENV, desks_naming
from support.infra import drop_database

from ticketflow.eventstore.connection import dsn_from_env

DSN = dsn_from_env()
KAFKA = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PORTAL = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
HELPERS = str(Path(__file__).with_name("e2e_processes.py"))


# -- the orchestration -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ticket_records(seq: int) -> tuple[bytes, bytes, bytes]:
    """(key, TicketOpened, PreflightPassed) of one ticket: versions 1 and 2 of its stream, one message."""
    ticket_id = uuid.uuid4()
    now = datetime.now(UTC)
    stream = ticket_stream(ticket_id)
    event = t.TicketOpened(ticket_id, "bitrix24-box", "box", ChatRef("bitrix24", PORTAL, f"chat{seq % 97}"),
                           Requester(f"user-{seq}", locale="ru"), f"bench-{seq}", f"m-{seq}", now)  # fmt: skip
    opened = envelope_encoder.encode(EventEnvelope(new_event_id(), stream, 1, now, 1, event))
    passed = t.PreflightPassed(ticket_id, "installation")
    taken = envelope_encoder.encode(EventEnvelope(new_event_id(), stream, 2, now, 1, passed))
    return str(ticket_id).encode(), opened, taken


class Bench:
    def __init__(self, portal_url: str, ca: Path) -> None:
        self.portal_url = portal_url
        self.http = httpx.AsyncClient(timeout=10, verify=ssl.create_default_context(cafile=str(ca)))
        self.producer = make_producer(KAFKA, linger_ms=5)
        self.produced: dict[int, float] = {}
        self.next_seq = 0

    async def stats(self, full: bool = False) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.http.get(f"{self.portal_url}/stats{'/full' if full else ''}")).json()
        return answer

    async def produce(self, topic: str, count: int, rate: float | None) -> list[int]:
        """`count` tickets (two records each), paced at `rate`/s in 10 ms slices (or as fast as possible)."""
        seqs, start, sends = list(range(self.next_seq, self.next_seq + count)), time.monotonic(), []
        self.next_seq += count
        for i, seq in enumerate(seqs):
            if rate is not None and i % max(1, int(rate / 100)) == 0:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            key, opened, taken = ticket_records(seq)
            sends.append(await self.producer.send(topic, value=opened, key=key))
            self.produced[seq] = time.monotonic()  # the PreflightPassed triggers the message
            sends.append(await self.producer.send(topic, value=taken, key=key))
        await asyncio.gather(*sends)
        return seqs

    async def wait_received(self, seqs: list[int], within: float) -> dict[int, float]:
        deadline, wanted, received = time.monotonic() + within, set(seqs), dict[int, float]()
        while time.monotonic() < deadline:
            received = {int(k): v for k, v in (await self.stats(True))["received"].items()}
            if wanted <= received.keys():
                return {s: received[s] for s in seqs}
            await asyncio.sleep(0.5)
        return {s: v for s, v in received.items() if s in wanted}

    def row(self, name: str, seqs: list[int], got: dict[int, float], rss: list[float], cpu: float | None) -> list[Any]:
        first = min(self.produced[s] for s in seqs)
        latencies = np.array([got[s] - self.produced[s] for s in got]) * 1000
        rate = len(got) / (max(got.values()) - first) if got else 0.0
        p50, p99 = np.percentile(latencies, [50, 99]) if len(latencies) else (float("nan"),) * 2
        cpu_ms = f"{cpu * 1000 / max(len(got), 1):.2f}" if cpu is not None else "-"
        return [
            name,
            len(seqs),
            len(got),
            f"{rate:,.0f}",
            f"{p50:,.0f}",
            f"{p99:,.0f}",
            f"{max(rss, default=0):.0f}",
            cpu_ms,
        ]


def print_logs(directory: Path) -> None:
    for service_log in directory.glob("service-*.log"):
        print(service_log.read_text(errors="replace")[-3000:], file=sys.stderr)


def spawn(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    output = log.open("wb") if log is not None else None  # the service's logs: kept out of the table
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})}, stdout=output, stderr=output)


def start_profiler(py_spy: str, pid: int, output: str) -> subprocess.Popen[bytes]:
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "-o", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    database, admin_pg = f"notif_e2e_{run}", await asyncpg.connect(DSN)
    await admin_pg.execute(f'CREATE DATABASE "{database}"')
    bench_dsn = DSN.rsplit("/", 1)[0] + f"/{database}"
    service_dsn = f"{bench_dsn}?sslmode={args.pg_sslmode}"  # loopback: TLS only costs CPU here
    conn = await asyncpg.connect(bench_dsn)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    await migrate.apply_all(conn)
    topics = {name: f"bench-notif-{name}-{run}" for name in ("ceiling", "engine", "outage", "replies")}
    kafka_admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await kafka_admin.start()
    await kafka_admin.create_topics([NewTopic(n, args.partitions, 1) for n in topics.values()])
    portal_port = free_port()
    portal_url = f"https://127.0.0.1:{portal_port}"
    scratch = tempfile.TemporaryDirectory()
    ca, cert = Path(scratch.name) / "ca.pem", Path(scratch.name) / "portal.pem"
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(ca))
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    processes = [spawn(HELPERS, "portal", "--port", str(portal_port), "--cert", str(cert))]
    config = Path(scratch.name) / "notifications.toml"
    config.write_text("[bitrix24]\nrate = 1000000.0\nburst = 100000\n")
    # The portal installed as intake leaves it (ticketflow.bitrix24): its domain, bot and a token that
    # outlives the run; the desk files name that domain.
    await conn.execute(
        """INSERT INTO bitrix24_installs (member_id, client_id, domain, application_token, access_token,
                                          refresh_token, access_expires_at, bot_id)
           VALUES ($1, $2, $3, 'bench', $4, 'bench-unused', now() + interval '1 day', $5)""",
        PORTAL, BOX_CLIENT_ID, f"127.0.0.1:{portal_port}", TOKEN, BOT_ID,
    )  # fmt: skip
    desks = desks_naming(f"127.0.0.1:{portal_port}", Path(scratch.name) / "desks")
    bitrix24_env = {"TICKETFLOW_B24_ALLOWED_NETWORKS": "127.0.0.0/8", "TICKETFLOW_B24_ALLOWED_PORTS": str(portal_port),
                    "TICKETFLOW_B24_CA_FILE": str(ca), "TICKETFLOW_DESK_CONFIG_DIR": str(desks),
                    BOX_SECRET_ENV: "bench-secret"}  # fmt: skip
    bench = Bench(portal_url, ca)
    await bench.producer.start()
    rows: list[list[Any]] = []
    try:
        for _ in range(100):
            try:
                await bench.stats()
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        ceiling = spawn(HELPERS, "ceiling", "--topic", topics["ceiling"], "--url",
                        f"{portal_url}/rest/imbot.message.add.json", "--ca", str(ca),
                        "--parallel", str(args.parallel))  # fmt: skip
        processes.append(ceiling)
        rows += await measure(bench, "ceiling: consume -> POST", topics["ceiling"], [ceiling.pid], args)
        ceiling.terminate()

        def start_service(index: int) -> subprocess.Popen[bytes]:
            service = spawn("-m", "ticketflow.notifications", env={
                "TICKETFLOW_PG_DSN": service_dsn, "TICKETFLOW_NOTIFICATIONS_CONFIG": str(config), **bitrix24_env,
                "TICKETFLOW_NOTIFICATIONS_TOPIC": topics["engine"],
                "TICKETFLOW_NOTIFICATIONS_GROUP": f"bench-{run}",
                "TICKETFLOW_NOTIFICATIONS_REPLIES_TOPIC": topics["replies"],
                "TICKETFLOW_NOTIFICATIONS_REPLIES_GROUP": f"bench-replies-{run}",
                "TICKETFLOW_NOTIFICATIONS_PORT": str(free_port()),
                "TICKETFLOW_NOTIFICATIONS_OPS_PORT": str(free_port()),
                "TICKETFLOW_LOG_LEVEL": "WARNING", "TICKETFLOW_NOTIFICATIONS_PARALLEL": str(args.parallel),
                "TICKETFLOW_NOTIFICATIONS_RECOVER_SECONDS": "2", "TICKETFLOW_NOTIFICATIONS_AUTO_REDRIVE_SECONDS": "3",
            }, log=Path(scratch.name) / f"service-{index}.log")  # fmt: skip
            processes.append(service)
            return service

        first = start_service(1)
        profiler = None
        if args.profile:  # py-spy samples the service process through its paced and backlog phases
            profiler = start_profiler(args.py_spy, first.pid, args.profile)
        rows += await measure(bench, "service x1: consume -> plan -> ledger -> POST -> record", topics["engine"],
                              [first.pid], args, group=(kafka_admin, f"bench-{run}"))  # fmt: skip
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        outage = await measure_outage(bench, topics["engine"], first.pid, args, bench_dsn) if args.down > 0 else []
        if args.scale_out > 1:
            more = [start_service(i) for i in range(2, args.scale_out + 1)]
            group = [first, *more]
            profilers = []
            if args.profile:  # one profile per process of the group, through its paced and backlog phases
                stem, suffix = os.path.splitext(args.profile)
                profilers = [start_profiler(args.py_spy, p.pid, f"{stem}-x{args.scale_out}-{i}{suffix}")
                             for i, p in enumerate(group, start=1)]  # fmt: skip
            rows += await measure(bench, f"service x{args.scale_out} (one consumer group)", topics["engine"],
                                  [p.pid for p in group], args, group=(kafka_admin, f"bench-{run}"))  # fmt: skip
            for running in profilers:
                running.send_signal(signal.SIGINT)
                running.wait(30)
    except BaseException:
        print_logs(Path(scratch.name))
        raise
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(10)
        await bench.producer.stop()
        await bench.http.aclose()
        await kafka_admin.delete_topics(list(topics.values()))
        await kafka_admin.close()
        await conn.close()
        await drop_database(admin_pg, database)
        await admin_pg.close()
        scratch.cleanup()
    print(
        tabulate(
            rows, headers=["path", "tickets", "received", "msgs/s", "p50 ms", "p99 ms", "max RSS MiB", "CPU ms/msg"]
        )
    )
    print()
    print(tabulate(outage, headers=["destination down", "value"]))


class Sampler:
    """Resident memory (summed over the processes) every 250 ms while running; their CPU seconds."""

    def __init__(self, pids: list[int]) -> None:
        self.processes, self.samples = [psutil.Process(p) for p in pids], list[float]()
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> float:
        return sum(float(p.memory_info().rss) for p in self.processes) / 2**20

    def cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes)

    async def _run(self) -> None:
        while True:
            self.samples.append(self.rss())
            await asyncio.sleep(0.25)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._run())

    def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
        return list(self.samples)


async def wait_for_group(admin: AIOKafkaAdminClient, group_id: str, members: int, within: float = 120.0) -> None:
    """Until the consumer group is Stable with `members` consumers. A process still starting when the
    warm-up is done would join, and rebalance the group, inside the measured phase: its first seconds
    would be the older processes alone, then a rebalance, not `members` processes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        [response] = await admin.describe_consumer_groups([group_id])
        _error, _group, state, _protocol_type, _protocol, described = response.groups[0][:6]
        if state == "Stable" and len(described) == members:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"consumer group {group_id} not Stable with {members} members within {within:.0f} s")


async def measure(
    bench: Bench,
    name: str,
    topic: str,
    pids: list[int],
    args: argparse.Namespace,
    *,
    group: tuple[AIOKafkaAdminClient, str] | None = None,
) -> list[list[Any]]:
    """The paced and backlog phases; with `group` (admin client, group id), they start only once every
    process in `pids` is a member of that consumer group."""
    sampler = Sampler(pids)
    if group is not None:
        await wait_for_group(*group, members=len(pids))
    warm = await bench.produce(topic, 200, None)  # start-up, first connections (every member's partitions)
    await bench.wait_received(warm, 120)
    rows = []
    for label, count, rate in ((f"paced {args.rate:,.0f}/s", int(args.rate * args.seconds), args.rate),
                               ("backlog drain", args.backlog, None)):  # fmt: skip
        cpu_before = sampler.cpu()
        sampler.start()
        seqs = await bench.produce(topic, count, rate)
        got = await bench.wait_received(seqs, max(60.0, count / 200))
        samples = sampler.stop()
        rows.append(bench.row(f"{name} ({label})", seqs, got, samples, sampler.cpu() - cpu_before))
    return rows


async def measure_outage(bench: Bench, topic: str, pid: int, args: argparse.Namespace, dsn: str) -> list[list[Any]]:
    rss = Sampler([pid])
    before = rss.rss()
    rss.start()
    total = int(args.outage_rate * (args.down + 20))
    producing = asyncio.create_task(bench.produce(topic, total, args.outage_rate))
    await asyncio.sleep(5)
    await bench.http.post(f"{bench.portal_url}/control/down", json={"seconds": args.down})
    up_at = time.monotonic() + args.down
    seqs = await producing
    got = await bench.wait_received(seqs, args.down + 300)
    samples = rss.stop()
    stats = await bench.stats()
    db = await asyncpg.connect(dsn)
    failed = await db.fetchval("SELECT count(*) FROM events WHERE event_type = 'NotificationFailed'")
    dead_now = await db.fetchval("SELECT count(*) FROM notification_deliveries WHERE status = 'dead'")
    await db.close()
    after_up = [v for s, v in got.items() if bench.produced[s] < up_at]
    return [
        ["tickets produced during the run / received", f"{len(seqs)} / {len(got)} (lost: {len(seqs) - len(got)})"],
        ["duplicates received (whole run)", stats["duplicates"]],
        [
            f"down for {args.down:.0f} s; recovery: last earlier event received after the destination was up",
            f"{max(after_up) - up_at:.1f} s" if after_up else "-",
        ],
        ["dead letters recorded (NotificationFailed) / still dead at the end", f"{failed} / {dead_now}"],
        ["service RSS MiB: before / max during / at end", f"{before:.0f} / {max(samples):.0f} / {samples[-1]:.0f}"],
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000.0, help="paced phase: tickets (messages)/s, 2 records each")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced phase: duration")
    parser.add_argument("--backlog", type=int, default=20000, help="tickets (2 records each)")
    parser.add_argument("--parallel", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--down", type=float, default=30.0, help="outage: seconds the destination answers 503 (0: skip)"
    )
    parser.add_argument("--outage-rate", type=float, default=300.0)
    parser.add_argument("--scale-out", type=int, default=2, help="then this many service processes (1: skip)")
    parser.add_argument(
        "--profile",
        help="py-spy raw (collapsed) profile of service x1's throughput phases here; the scale-out phase's"
        " processes go to FILE-x<N>-<i> (same suffix)",
    )
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable (for --profile)")
    parser.add_argument("--pg-sslmode", default="disable", help="the service's PostgreSQL TLS (libpq sslmode)")
    asyncio.run(main(parser.parse_args()))
