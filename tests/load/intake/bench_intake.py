"""Intake benchmark: chat messages per second from webhook to stored event and to the published Kafka
record, against a do-nothing endpoint of the same HTTP server (the ceiling), plus the `chat.inbound`
topic path. wrk (Debian package, installed if missing) generates the load with a Lua script; BotX
requests carry a valid HS256 JWT generated up front and a unique sync_id each.

Runs against a fresh database and fresh topics; the intake service is a real process (uvicorn), the
relay runs in a process of its own (as the projector runs it) and publishes to a bench copy of
`ticket.events`; a `read_committed` consumer in another process notes when each event became visible
there ("published": the rate, and p50/p99 from webhook and from the store's `recorded_at`).
Usage: python tests/load/intake/bench_intake.py [--duration 10] [--connections 64] [--topic-messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
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
import msgspec
import numpy as np
import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "intake"))
sys.path.insert(0, str(REPO / "tests"))

from intake_payloads import BOT_ID, botx_message, botx_token  # noqa: E402
from intake_service import RunningIntake, migrate_intake, start_intake, stop_intake  # noqa: E402
from support.infra import drop_database  # noqa: E402
from support.otlp import OtlpSink  # noqa: E402
from support.relay_process import ArrivalLog, RelayProcess, store_to_kafka_lags  # noqa: E402

from ticketflow.contracts.chat import ChatMessage, ChatSender  # noqa: E402
from ticketflow.eventstore.store import EventStore  # noqa: E402

TARGET_BOTX_PER_S, TARGET_P99_MS, TARGET_TOPIC_PER_S = 3_000, 50.0, 20_000
SYNC, CHAT = "00000000-5111-4111-8111-111111111111", "00000000-5222-4222-8222-222222222222"

LUA = r"""
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; n = 0 end
local parts = { [==[%(p0)s]==], [==[%(p1)s]==], [==[%(p2)s]==] }
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s" }
function request()
  n = n + 1
  local sync = string.format("%(nonce)s-%%04x-4000-8000-%%012x", id, n)
  local chat = string.format("%(nonce)s-0000-4000-8000-%%012x", (n * 7 + id) %% %(conversations)d)
  return wrk.format("POST", "%(path)s", headers, parts[1] .. sync .. parts[2] .. chat .. parts[3])
end
function response(status, hdrs, body) if status == 202 then ok = ok + 1 else bad = bad + 1 end end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"ok": %%d, "bad": %%d, "socket_errors": %%d}\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), o, b, e.connect + e.read + e.write + e.timeout))
end
"""


def ensure_wrk() -> str:
    if (found := shutil.which("wrk")) is None:
        print("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    assert found is not None, "wrk could not be installed"
    return found


def botx_template(args: argparse.Namespace, nonce: str) -> dict[str, Any]:
    """A real-shaped BotX body cut where the sync_id and chat id go (each request fills in fresh ones)."""
    template = json.dumps(botx_message("Не работает вход, помогите", chat_id=uuid.UUID(CHAT), sync_id=uuid.UUID(SYNC)))
    p0, rest = template.split(SYNC)
    p1, p2 = rest.split(CHAT)
    return {"p0": p0, "p1": p1, "p2": p2, "token": botx_token(), "nonce": nonce, "conversations": args.conversations}


def run_openloop(url: str, args: argparse.Namespace, rate: int, nonce: str) -> dict[str, Any]:
    """tests/load/intake/openloop.py in its own process: a constant offered rate, latency from each
    request's due time (no coordinated omission)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(botx_template(args, nonce), handle)
    command = [
        sys.executable,
        str(Path(__file__).with_name("openloop.py")),
        "--url",
        url,
        "--rate",
        str(rate),
        "--duration",
        str(args.openloop_duration),
        "--connections",
        str(args.openloop_connections),
        "--template",
        handle.name,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openloop.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("OPENLOOP "))
    result: dict[str, Any] = json.loads(line.removeprefix("OPENLOOP "))
    return result


def run_wrk(wrk: str, url: str, path: str, args: argparse.Namespace, nonce: str) -> dict[str, Any]:
    script = LUA % {**botx_template(args, nonce), "path": path}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = [
        wrk,
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
        "-s",
        handle.name,
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in output.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def cpu_seconds(service: RunningIntake) -> float:
    """CPU time of the service process and its uvicorn workers (children)."""
    root = psutil.Process(service.process.pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def machine_cpu() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy time of all cores), PostgreSQL's processes, Kafka's JVM."""
    times = psutil.cpu_times()
    found = {
        "machine": times.user + times.nice + times.system + times.irq + times.softirq,
        "postgres": 0.0,
        "kafka": 0.0,
    }
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = process.info
        cpu = info["cpu_times"]
        if cpu is None:
            continue
        if info["name"] == "postgres":
            found["postgres"] += cpu.user + cpu.system
        elif info["name"] == "java" and "kafka" in " ".join(info["cmdline"] or []):
            found["kafka"] += cpu.user + cpu.system
    return found


def cpu_split(before: dict[str, float], after: dict[str, float], intake_s: float, wall_s: float) -> str:
    used = {k: after[k] - before[k] for k in before}
    return (
        f"CPU over {wall_s:.2f} s: machine {used['machine'] / wall_s:.2f} cores, intake {intake_s / wall_s:.2f}, "
        f"PostgreSQL {used['postgres'] / wall_s:.2f}, Kafka {used['kafka'] / wall_s:.2f}"
    )


def per_cpu(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} ({seconds:.1f} s)" if seconds > 0 else ""


async def count_messages(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM intake_messages"))


async def wait_count(pool: asyncpg.Pool, target: int, limit_s: float = 300) -> float:
    start = time.monotonic()
    while await count_messages(pool) < target and time.monotonic() - start < limit_s:  # noqa: ASYNC110 - polls PG
        await asyncio.sleep(0.05)
    return time.monotonic()


async def latency_ms(pool: asyncpg.Pool, where: str = "true") -> tuple[float, float]:
    row = await pool.fetchrow(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP (ORDER BY d) "
        f"FROM (SELECT extract(epoch FROM recorded_at - received_at) * 1000 AS d FROM intake_messages WHERE {where}) s"
    )
    return float(row[0] or 0), float(row[1] or 0)


async def fill_topic(bootstrap: str, topic: str, count: int, conversations: int, traced: bool) -> list[str]:
    """Produce the backlog; returns the idempotency key of the last record of each partition. `traced`: each
    record carries a `traceparent` as intake's webhooks write it with tracing on (10 % of them sampled)."""
    last: dict[int, tuple[int, str]] = {}  # partition -> (offset, key)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all")
    await producer.start()
    now = datetime.now(UTC)
    try:
        pending = []
        for n in range(count):
            conversation = f"topic-bench-{n % conversations}"
            message = ChatMessage(
                platform="generic",
                tenant_id="acme-helpdesk",
                conversation_id=conversation,
                message_id=f"tb-{n}",
                sender=ChatSender(f"u-{n % conversations}"),
                text="Портал не открывается",
                received_at=now,
            )
            headers = None
            if traced:
                flags = "01" if random.random() < 0.1 else "00"
                traceparent = f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-{flags}"
                headers = [("traceparent", traceparent.encode())]
            value = msgspec.json.encode(message)
            future = await producer.send(topic, value, key=conversation.encode(), headers=headers)
            pending.append((message.idempotency_key(), future))
            if len(pending) >= 5000 or n == count - 1:
                for key, meta in zip(
                    [k for k, _ in pending], await asyncio.gather(*(f for _, f in pending)), strict=True
                ):
                    if meta.offset >= last.get(meta.partition, (-1, ""))[0]:
                        last[meta.partition] = (meta.offset, key)
                pending.clear()
    finally:
        await producer.stop()
    return [key for _, key in last.values()]


async def wait_keys(pool: asyncpg.Pool, keys: list[str], limit_s: float = 300) -> None:
    """Until these keys are stored: a partition's records are recorded batch after batch, in order, so its
    last record stored means the partition is done (an index probe per key; a count(*) poll would scan
    intake_messages every time and take PostgreSQL's CPU from the measurement)."""
    start = time.monotonic()
    query = "SELECT count(*) FROM intake_messages WHERE idempotency_key = ANY($1::text[])"
    while await pool.fetchval(query, keys) < len(keys) and time.monotonic() - start < limit_s:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def wrk_row(label: str, result: dict[str, Any], cpu: str, note: str) -> list[Any]:
    p50, p99 = result["p50_us"] / 1000, result["p99_us"] / 1000
    return [label, f"{result['rate']:,.0f}", f"{p50:.1f}", f"{p99:.1f}", f"{result['ok']:,} × 202", cpu, note]


async def http_phases(
    wrk: str, service: RunningIntake, args: argparse.Namespace, bootstrap: str, events_topic: str, dsn: str, tmp: Path
) -> list[list[Any]]:
    """The ceiling, the BotX route at full and light load, stored and published."""
    arrivals = await ArrivalLog(bootstrap, [events_topic], tmp).start()
    start_at = await EventStore(service.pool).head()
    relay = RelayProcess(dsn, bootstrap, {"ticket.events": events_topic}, start=start_at).start()
    try:
        cpu0 = cpu_seconds(service)
        ceiling = await asyncio.to_thread(run_wrk, wrk, service.base_url, "/noop", args, uuid.uuid4().hex[:8])
        cpu1 = cpu_seconds(service)
        rows = [wrk_row("do-nothing POST /noop (ceiling)", ceiling, per_cpu(ceiling["ok"], cpu1 - cpu0), "same body")]
        start, start_wall = time.monotonic(), time.time()
        botx = await asyncio.to_thread(run_wrk, wrk, service.base_url, "/command", args, uuid.uuid4().hex[:8])
        cpu2 = cpu_seconds(service)
        stored_at = await wait_count(service.pool, botx["ok"])
        stored, cpu3 = await count_messages(service.pool), cpu_seconds(service)
        p50, p99 = await latency_ms(service.pool)
        target = f"target ≥ {TARGET_BOTX_PER_S:,}/s, p99 < {TARGET_P99_MS:.0f} ms; {botx['bad']} non-202"
        rows.append(wrk_row("BotX POST /command → 202 (durable)", botx, per_cpu(botx["ok"], cpu2 - cpu1), target))
        rate = f"{stored / (stored_at - start):,.0f}"
        stored_cpu = per_cpu(stored, cpu3 - cpu1)
        rows.append(["  … → ticket event stored", rate, f"{p50:.1f}", f"{p99:.1f}", f"{stored:,}", stored_cpu, ""])
        total_events = int(await service.pool.fetchval("SELECT count(*) FROM events"))
        published_at = await relay.wait_published(total_events, 300)
        rate = f"{total_events / (published_at - start_wall):,.0f}"
        await arrivals.wait_count(total_events)
        seen = arrivals.stop()
        occurred = {
            row["event_id"]: row["at"]
            for row in await service.pool.fetch(
                "SELECT event_id, extract(epoch FROM occurred_at)::float8 AS at FROM events"
            )
        }
        from_webhook = np.array([(at - occurred[event_id]) * 1000 for event_id, at in seen.items()])
        rows.append(["  … → published on ticket.events (visible, read_committed)", rate,
                     f"{np.percentile(from_webhook, 50):.1f}", f"{np.percentile(from_webhook, 99):.1f}",
                     f"{len(from_webhook):,}", "", "latency from the webhook's arrival"])  # fmt: skip
        lags = await store_to_kafka_lags(service.pool, seen)
        rows.append(["  … store → Kafka (relay lag)", "", f"{np.percentile(lags, 50):.1f}",
                     f"{np.percentile(lags, 99):.1f}", f"{len(lags):,}", "",
                     "from the storing transaction's start (recorded_at)"])  # fmt: skip
        # The same route at light load: latency without a saturated machine.
        light_from = await service.pool.fetchval("SELECT now()")
        light_args = argparse.Namespace(**{**vars(args), "connections": args.light_connections})
        light = await asyncio.to_thread(run_wrk, wrk, service.base_url, "/command", light_args, uuid.uuid4().hex[:8])
        await wait_count(service.pool, stored + light["ok"])
        lp50, lp99 = await latency_ms(service.pool, f"received_at >= '{light_from.isoformat()}'")
        rows.append(wrk_row(f"BotX, {args.light_connections} connections (light load)", light, "", ""))
        rows.append(["  … → ticket event stored", "", f"{lp50:.1f}", f"{lp99:.1f}", "", "", ""])
        return rows
    finally:
        relay.stop()
        arrivals.stop()


async def openloop_phase(service: RunningIntake, args: argparse.Namespace) -> list[list[Any]]:
    """At each constant offered rate (open loop): the do-nothing POST /noop with the same bodies (what the
    server, the generator and the machine cost by themselves), then BotX POST /command: answered rate,
    latency percentiles of the answers, and of the stored ticket events of the same requests."""
    rows = []
    for rate in (int(r) for r in args.openloop_rates.split(",")):
        for path in ("/noop", "/command"):
            await asyncio.sleep(1)
            before = await count_messages(service.pool)
            since = await service.pool.fetchval("SELECT now()")
            profiler = None
            if args.profile_web and path == "/command":
                out = f"{args.profile_web}.{rate}.json"
                command = [
                    "py-spy",
                    "record",
                    "-o",
                    out,
                    "-f",
                    "speedscope",
                    "-p",
                    str(service.process.pid),
                    "-r",
                    "200",
                ]
                profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
            cpu0, machine0, wall0 = cpu_seconds(service), machine_cpu(), time.monotonic()
            url, nonce = f"{service.base_url}{path}", uuid.uuid4().hex[:8]
            result = await asyncio.to_thread(run_openloop, url, args, rate, nonce)
            cpu1, machine1, wall1 = cpu_seconds(service), machine_cpu(), time.monotonic()
            if profiler is not None:
                profiler.send_signal(2)
                profiler.wait()
            split = cpu_split(machine0, machine1, cpu1 - cpu0, wall1 - wall0)
            print(f"open loop {path} {rate}/s: {json.dumps(result)}\n  {split}")
            accepted = result["statuses"].get("202", 0)
            other = {k: v for k, v in result["statuses"].items() if k != "202"}
            note = f"p99.9 {result['p999_ms']} ms, max {result['max_ms']} ms; {split}"
            if other:
                note += f"; non-202: {other}"
            label = f"{'BotX /command' if path == '/command' else 'do-nothing /noop'}: open loop {rate:,}/s offered"
            rows.append(
                [
                    f"{label}, {args.openloop_connections} conn.",
                    f"{result['achieved_rate']:,.0f}",
                    f"{result['p50_ms']:.1f}",
                    f"{result['p99_ms']:.1f}",
                    f"{accepted:,} × 202",
                    per_cpu(accepted, cpu1 - cpu0),
                    note,
                ]
            )
            if path == "/command":
                await wait_count(service.pool, before + accepted, limit_s=60)
                p50, p99 = await latency_ms(service.pool, f"received_at >= '{since.isoformat()}'")
                rows.append(["  … → ticket event stored", "", f"{p50:.1f}", f"{p99:.1f}", "", "", ""])
    return rows


async def topic_phase(
    service: RunningIntake,
    args: argparse.Namespace,
    dsn: str,
    bootstrap: str,
    topics: tuple[str, str],
    tmp: Path,
    observability: dict[str, str],
    traced: bool,
) -> tuple[list[RunningIntake], list[Any]]:
    """Records produced straight to a chat.inbound copy (a backlog written before the consumer starts, so
    the load generator shares no CPU with the measurement), then recorded by `--topic-consumers` further
    intake processes in one consumer group."""
    topic, replies_topic = topics
    began = time.monotonic()
    last_keys = await fill_topic(bootstrap, topic, args.topic_messages, args.conversations, traced)
    filled = time.monotonic() - began
    before = await count_messages(service.pool)
    drain_env = {
        "TICKETFLOW_INTAKE_TOPIC": topic,
        "TICKETFLOW_INTAKE_BATCH": str(args.topic_batch),
        "TICKETFLOW_INTAKE_LANES": str(args.topic_lanes),
        "TICKETFLOW_INTAKE_IN_FLIGHT": str(args.topic_in_flight),
        "TICKETFLOW_INTAKE_REPLIES_TOPIC": replies_topic,
        "TICKETFLOW_INTAKE_GROUP": f"intake-bench-{uuid.uuid4().hex[:8]}",
        **observability,
    }
    drains = [await start_intake(dsn, bootstrap, tmp, extra_env=drain_env) for _ in range(args.topic_consumers)]
    drain = drains[0]
    profiler = None
    if args.profile:
        profiler = subprocess.Popen(  # noqa: ASYNC220 - stopped below
            ["py-spy", "record", "-o", args.profile, "-f", "speedscope", "-p", str(drain.process.pid), "-r", "200"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    cpu0, machine0, wall0 = sum(map(cpu_seconds, drains)), machine_cpu(), time.monotonic()
    await wait_keys(service.pool, last_keys)
    # With several consumers a partition can move during the run: make sure everything is there.
    while await count_messages(service.pool) - before < args.topic_messages:  # noqa: ASYNC110 - polls PG
        await asyncio.sleep(0.05)
    done = await service.pool.fetchval("SELECT clock_timestamp()")
    cpu1, machine1, wall1 = sum(map(cpu_seconds, drains)), machine_cpu(), time.monotonic()
    print(cpu_split(machine0, machine1, cpu1 - cpu0, wall1 - wall0))
    if profiler is not None:
        profiler.send_signal(2)
        profiler.wait()
    first = await service.pool.fetchval(
        "SELECT min(recorded_at) FROM intake_messages WHERE idempotency_key LIKE 'generic:acme-helpdesk:tb-%'"
    )
    recorded = await count_messages(service.pool) - before
    if recorded != args.topic_messages:
        print(f"WARNING: {recorded:,} of {args.topic_messages:,} topic records stored when the last keys were")
    span = (done - first).total_seconds()
    note = (
        f"target ≥ {TARGET_TOPIC_PER_S:,}/s; first → last commit {span:.2f} s; "
        f"backlog produced beforehand in {filled:.1f} s; batch {args.topic_batch}, {args.topic_lanes} lanes, "
        f"{args.topic_in_flight} batches in flight, "
        f"{args.topic_consumers} consumer process(es)"
    )
    label = f"chat.inbound → stored ({args.topic_messages:,} records)"
    return drains, [label, f"{recorded / span:,.0f}", "", "", f"{recorded:,}", per_cpu(recorded, cpu1 - cpu0), note]


def telemetry_env(mode: str, sink_url: str, sampling: float = 0.1) -> dict[str, str]:
    """The services' telemetry: "on" = tracing as in production (OTLP, parent-based sampling at 10 %, or
    `sampling`: at 0 only the unsampled path runs) and metrics served and scraped; "off" = no SDK, no
    metrics server work (docs/operations.md)."""
    if mode == "off":
        return {"OTEL_TRACES_EXPORTER": "none", "TICKETFLOW_METRICS": "false"}
    return {
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(sampling),
        "TICKETFLOW_METRICS": "true",
    }  # fmt: skip


async def scrape(services: list[RunningIntake], stop: asyncio.Event, every_s: float = 5.0) -> int:
    """What Prometheus does to a service with metrics on: GET /metrics every few seconds."""
    scrapes = 0
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            for service in list(services):
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"{service.ops_url}/metrics")
                    scrapes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
    return scrapes


async def one_run(args: argparse.Namespace, wrk: str, telemetry: str, sink: OtlpSink) -> list[list[Any]]:
    """Every phase once, on a fresh database and fresh topics, with the services' telemetry on or off."""
    server_dsn = os.environ.get("TICKETFLOW_PG_DSN", "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow")
    bootstrap = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    name = f"tf_bench_intake_{uuid.uuid4().hex[:8]}"
    admin_conn = await asyncpg.connect(server_dsn)
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server_dsn.rsplit("/", 1)[0] + f"/{name}?sslmode=disable"  # TLS on loopback only costs CPU
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    events_topic, drain_topic = f"ticket.events.bench-{name[-8:]}", f"chat.inbound.drain-{name[-8:]}"
    replies_topic = f"chat.replies.bench-{name[-8:]}"  # the reply relay's records stay off the real topic
    bench_topics = [events_topic, drain_topic, f"{drain_topic}.dlq", replies_topic]
    await admin.create_topics([NewTopic(topic, 1 if topic.endswith(".dlq") else 6, 1) for topic in bench_topics])
    services: list[RunningIntake] = []
    rows: list[list[Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    stop_scraping = asyncio.Event()
    scraping = asyncio.create_task(scrape(services, stop_scraping)) if telemetry == "on" else None
    observability = telemetry_env(telemetry, sink.base_url, args.sampling)
    try:
        await migrate_intake(dsn)
        web_env = {
            "TICKETFLOW_INTAKE_NOOP": "1",
            "TICKETFLOW_INTAKE_CONSUME": "0" if args.split else "1",
            "TICKETFLOW_INTAKE_COMMANDS_TOPIC": "",  # the benchmark never joins the real ticket.commands group
            "TICKETFLOW_INTAKE_REPLIES_TOPIC": replies_topic,
            **({"TICKETFLOW_INTAKE_GC_THRESHOLDS": args.gc_thresholds} if args.gc_thresholds else {}),
            **observability,
        }
        service = await start_intake(dsn, bootstrap, tmp, extra_env=web_env)
        services.append(service)
        if args.split:  # a second process consumes chat.inbound, so HTTP and recording use both cores
            services.append(
                await start_intake(
                    dsn, bootstrap, tmp, extra_env={"TICKETFLOW_INTAKE_TOPIC": service.topic, **observability}
                )
            )
        if "http" in args.phases:
            rows += await http_phases(wrk, service, args, bootstrap, events_topic, dsn, tmp)
        if "openloop" in args.phases:
            rows += await openloop_phase(service, args)
        if "topic" in args.phases:
            drains, row = await topic_phase(
                service, args, dsn, bootstrap, (drain_topic, replies_topic), tmp, observability, telemetry == "on"
            )
            services.extend(drains)
            rows.append(row)
    finally:
        stop_scraping.set()
        if scraping is not None:
            await scraping
        for service in services:
            await stop_intake(service)
        await admin.delete_topics(bench_topics)
        await admin.close()
        await drop_database(admin_conn, name)
        await admin_conn.close()
        shutil.rmtree(tmp, ignore_errors=True)  # the services' logs and tenant file
    return rows


HEADERS = ["path", "msgs/s", "p50 ms", "p99 ms", "count", "msgs per intake CPU-s", "note"]


async def main(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    pairs = [["off", "on"] if n % 2 == 0 else ["on", "off"] for n in range(args.ab_rounds)]  # ABBA: drift cancels
    modes = [mode for pair in pairs for mode in pair] if args.telemetry == "ab" else [args.telemetry]
    runs: list[tuple[str, list[list[Any]], tuple[float, float, float]]] = []
    async with OtlpSink().running() as sink:
        for mode in modes:
            rows = await one_run(args, wrk, mode, sink)
            runs.append((mode, rows, os.getloadavg()))
            print(f"\ntelemetry {mode}: load average {os.getloadavg()}")
            print(tabulate(rows, headers=HEADERS))
    print(
        f"\nintake benchmark: {os.cpu_count()} cores, "
        f"{'HTTP and consumer split' if args.split else 'one process'}, "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"{args.conversations} conversations, bot {BOT_ID}; spans received by the OTLP sink: {sink.spans_bytes:,} bytes"
    )
    if args.telemetry == "ab":
        print(ab_ratios(runs))


def ab_ratios(runs: list[tuple[str, list[list[Any]], tuple[float, float, float]]]) -> str:
    """Per throughput row: msgs/s with telemetry on ÷ off, per pair of runs, and the mean."""
    lines = ["", "telemetry A/B (on ÷ off, msgs/s; tracing at 10 % parent-based + metrics vs both off):"]
    pairs = [sorted((runs[i], runs[i + 1]), key=lambda run: run[0] != "off") for i in range(0, len(runs) - 1, 2)]
    for index, (label, *_rest) in enumerate(pairs[0][0][1]):
        ratios = []
        for off, on in pairs:
            a, b = _rate(off[1][index][1]), _rate(on[1][index][1])
            if a and b:
                ratios.append(b / a)
        if ratios:
            shown = ", ".join(f"{r:.3f}" for r in ratios)
            lines.append(f"  {label.strip()}: {shown}; mean {sum(ratios) / len(ratios):.3f}")
    lines.append("  load averages (off, on): " + "; ".join(f"{off[2][0]:.2f}/{on[2][0]:.2f}" for off, on in pairs))
    return "\n".join(lines)


def _rate(cell: Any) -> float:
    text = str(cell).replace(",", "").split(" ")[0]
    try:
        return float(text)
    except ValueError:
        return 0.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--light-connections", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--topic-messages", type=int, default=50_000)
    parser.add_argument("--topic-batch", type=int, default=2000, help="consumer batch of the topic-path process")
    parser.add_argument("--topic-consumers", type=int, default=1, help="consumer processes (one group), topic path")
    parser.add_argument("--topic-lanes", type=int, default=4, help="concurrent transactions per batch, topic path")
    parser.add_argument("--topic-in-flight", type=int, default=2, help="batches recorded at once, topic path")
    parser.add_argument("--profile", default="", help="py-spy speedscope output of the topic-path process")
    parser.add_argument("--gc-thresholds", default="", help="the web process's gc thresholds, e.g. 700,10,10")
    parser.add_argument("--profile-web", default="", help="py-spy output prefix for the web process (open loop)")
    parser.add_argument("--phases", default="http,openloop,topic", help="comma-separated: http, openloop, topic")
    parser.add_argument("--openloop-rates", default="3000", help="offered BotX rates (requests/s), comma-separated")
    parser.add_argument("--openloop-duration", type=float, default=15)
    parser.add_argument("--openloop-connections", type=int, default=64)
    parser.add_argument("--split", action="store_true", help="HTTP and chat.inbound consumer in two processes")
    telemetry_help = (
        "the services' tracing (10 %% parent-based, OTLP) and metrics: off, on, or ab (both, --ab-rounds pairs "
        "in ABBA order, with the ratio of each throughput)"
    )
    parser.add_argument("--telemetry", choices=("off", "on", "ab"), default="off", help=telemetry_help)
    parser.add_argument("--ab-rounds", type=int, default=1, help="pairs of runs (off, on) with --telemetry ab")
    sampling_help = "the 'on' runs' ratio for new traces (webhooks; 0: the unsampled path only)"
    parser.add_argument("--sampling", type=float, default=0.1, help=sampling_help)
    asyncio.run(main(parser.parse_args()))
