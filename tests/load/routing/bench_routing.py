"""Routing benchmark: decisions per second and decision latency, through the real broker, against the
pure decision function (the ceiling), in one run. 200 agents in 20 queues (round-robin, least-loaded
and skill-based), 20 rules plus the fallback; every ticket is routed and assigned.

Scenarios:
  pure            decide_ready + apply on the in-memory state: the ceiling (no I/O at all)
  service         Routing.on_events (the application service) on the in-memory event store, batches of
                  1000 (service overhead)
  kafka+memory    real Kafka (a fresh 12-partition topic) -> the service's subscriptions (ordered pipeline)
                  -> application service, in-memory event store
  kafka+pg        real Kafka -> subscriptions -> application service -> PostgreSQL event store
                  (append_many), each store transaction fenced by the leader's epoch, as the service stores
  kafka+pg paced  the same at a fixed offered rate (--rate): latency from produce to decision stored;
                  meanwhile the relay (in a process of its own, as the projector runs it) publishes the
                  decisions to a sink topic, and a read_committed consumer process notes when each became
                  visible: published/s and the lag from the store (recorded_at) to Kafka, p50/p99
Latency: pure = one decision; kafka = from the record's produce timestamp to its decision being stored.
Usage: python tests/load/routing/bench_routing.py [--tickets 20000] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from hdrh.histogram import HdrHistogram
from prometheus_client import REGISTRY, generate_latest
from tabulate import tabulate

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, NewEvent, envelope_encoder
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_EVENTS
from ticketflow.contracts.values import PRIORITIES, ChatRef, Requester
from ticketflow.eventstore import AppendRequest, EventStore, InMemoryEventStore, migrate
from ticketflow.eventstore.connection import dsn_from_env
from ticketflow.eventstore.leadership import Leadership
from ticketflow.messaging import tracing
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.lag import ConsumerLag
from ticketflow.messaging.ordered import OrderedPipeline, ordered_pipeline
from ticketflow.messaging.per_key import per_key_batches
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.records import Record
from ticketflow.routing import consumer
from ticketflow.routing.adapters.batched_store import TicketStreams
from ticketflow.routing.adapters.fenced_store import FencedStore
from ticketflow.routing.app import Routing
from ticketflow.routing.domain.config import Desks, RoutingConfig
from ticketflow.routing.domain.decisions import decide_ready
from ticketflow.routing.domain.state import RoutingState
from ticketflow.routing.leader import tune_gc
from ticketflow.routing.metrics import RoutingMetrics
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.settings import load_settings
from ticketflow.runtime.tracing import setup_tracing

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.infra
from support.infra import drop_database, dsn_with_database
from support.relay_process import ArrivalLog, RelayProcess, store_to_kafka_lags

QUEUES, AGENTS, TARGET = 20, 200, 5000
STRATEGIES = ("round_robin", "least_loaded", "skill_based")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BOOTSTRAP = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG_DSN = dsn_from_env()

GC_THRESHOLDS = load_settings(RoutingSettings).gc_thresholds  # TICKETFLOW_ROUTING_GC_THRESHOLDS


def desks() -> Desks:
    queues = [
        {"id": f"q{i:02}", "desk": "bench", "strategy": STRATEGIES[i % 3], "skills": [f"s{i % 4}"]}
        for i in range(QUEUES)
    ]
    rules = [
        {"id": f"r{i:02}", "queue": f"q{i:02}", "desk": ["bench"], "category": [f"c{i:02}"]} for i in range(QUEUES)
    ]
    return Desks(msgspec.convert({"queues": queues, "rules": rules, "fallback_queue": "q00"}, RoutingConfig))


def roster(state: RoutingState, capacity: int) -> None:
    for i in range(AGENTS):
        agent = f"a{i:03}"
        skills = tuple(f"s{k}" for k in range(4) if (i >> k) & 1)
        state.apply_agent(r.AgentJoinedQueue(agent, f"q{i % QUEUES:02}", skills, ("ru", "en"), capacity))
        state.apply_agent(r.AgentStatusChanged(agent, "online"))


def ticket_envelopes(count: int, seed: int = 1, traced: bool = False) -> list[tuple[uuid.UUID, list[EventEnvelope]]]:
    """`traced`: each ticket's events carry a trace context, as stored events do with tracing on (10 % of the
    tickets sampled); the relay copies it into the records' headers (`produce`)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        metadata = EventMetadata()
        if traced:
            trace_id, flags = rng.getrandbits(128), "01" if rng.random() < 0.1 else "00"
            metadata = EventMetadata(traceparent=f"00-{trace_id:032x}-{rng.getrandbits(64):016x}-{flags}")
        t = uuid.uuid4()
        opened = e.TicketOpened(
            t, "bench", "box", ChatRef("bitrix24", "portal", "chat"),
            Requester("u", locale=rng.choice(("ru", "en"))), "help", f"m-{t}", NOW, rng.choice(PRIORITIES),
        )  # fmt: skip
        passed = e.PreflightPassed(t, f"c{rng.randrange(QUEUES + 2):02}")  # 2 in 22: no rule, fallback
        envelopes = [
            EventEnvelope(new_event_id(), ticket_stream(t), v, NOW, 1, ev, metadata)
            for v, ev in ((1, opened), (2, passed))
        ]
        out.append((t, envelopes))
    return out


def histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # microseconds


def bench_pure(tickets: list[tuple[uuid.UUID, list[EventEnvelope]]]) -> tuple[float, HdrHistogram, float]:
    state = RoutingState(desks())
    roster(state, capacity=len(tickets))
    latency, ts = histogram(), int(NOW.timestamp())
    for _, envs in tickets:
        for env in envs:
            state.apply_ticket(env.event, env.stream_version, ts)  # type: ignore[arg-type]
    start, cpu = time.perf_counter(), time.process_time()
    for t, _ in tickets:
        t0 = time.perf_counter_ns()
        decision = decide_ready(state, t, ts)
        assert decision is not None and len(decision.events) == 2
        for offset, event in enumerate(decision.events, start=1):
            state.apply_ticket(event, decision.expected_version + offset, ts)
        latency.record_value(max(1, (time.perf_counter_ns() - t0) // 1000))
    return len(tickets) / (time.perf_counter() - start), latency, time.process_time() - cpu


async def prestore(
    store: EventStore | InMemoryEventStore, tickets: list[tuple[uuid.UUID, list[EventEnvelope]]]
) -> None:
    """What intake and preflight would have stored before routing sees the tickets (not timed)."""
    for i in range(0, len(tickets), 1000):
        await store.append_many(
            [
                AppendRequest(ticket_stream(t), 0, [NewEvent(env.event_id, env.event, NOW) for env in envs])
                for t, envs in tickets[i : i + 1000]
            ]
        )


async def bench_service(tickets: list[tuple[uuid.UUID, list[EventEnvelope]]]) -> tuple[float, float]:
    state = RoutingState(desks())
    roster(state, capacity=len(tickets))
    store = InMemoryEventStore()
    await prestore(store, tickets)
    service = Routing(state, store, clock=lambda: NOW)
    flat = [env for _, envs in tickets for env in envs]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(flat), 1000):
        await service.on_events(flat[i : i + 1000])
    rate = len(tickets) / (time.perf_counter() - start)
    cpu = time.process_time() - cpu
    assert sum(1 for rec in state.tickets.values() if rec.state.assignee) == len(tickets)
    return rate, cpu


class Stored:
    """The awaitable `begin` returns, with the batch's records (for the latency once committed)."""

    def __init__(self, stored: Awaitable[None], records: Sequence[Record]) -> None:
        self.stored = stored
        self.records = records

    def __await__(self) -> Generator[Any, None, None]:
        return self.stored.__await__()


class TimedPipeline(OrderedPipeline):
    """The service's events pipeline, counting decided tickets and recording produce-to-stored-and-
    committed latency per PreflightPassed record."""

    def __init__(self, service: OrderedPipeline, expected: int) -> None:
        begin = service.begin
        super().__init__(service.name, lambda records: Stored(begin(records), records), depth=service.depth,
                         retry_after_s=service.retry_after_s)  # fmt: skip
        self.latency = histogram()
        self.decided = 0
        self.first: float | None = None
        self.first_cpu = self.cpu = self.last = 0.0
        self.done = asyncio.Event()
        self.expected = expected

    async def handle(self, records: Sequence[Record], consumer: Any) -> None:
        if self.first is None:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        await super().handle(records, consumer)

    async def _settle(self, batch: Any, stored: Any, consumer: Any) -> None:
        await super()._settle(batch, stored, consumer)
        now_ms = time.time() * 1000  # stored and committed
        for record in stored.records:
            if b'"PreflightPassed"' in (record.value or b""):
                self.decided += 1
                self.latency.record_value(max(1, int((now_ms - record.timestamp) * 1000)))
        if self.decided >= self.expected:
            self.last, self.cpu = time.perf_counter(), time.process_time() - self.first_cpu
            self.done.set()


async def fresh_database() -> tuple[str, str]:
    name = f"bench_routing_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(PG_DSN)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    return name, dsn_with_database(PG_DSN, name)


async def drop_scratch_database(name: str) -> None:
    server = await asyncpg.connect(PG_DSN)
    try:
        await drop_database(server, name)
    finally:
        await server.close()


Produced = tuple[bytes, bytes, str | None]  # key, value, traceparent header


def _produce_main(topic: str, pairs: list[Produced], rate: float | None, took: Any) -> None:
    took.value = asyncio.run(_produce(topic, pairs, rate))


async def _produce(topic: str, pairs: list[Produced], rate: float | None) -> float:
    """Returns the seconds from the first send to the last acknowledged record."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks="all")
    await producer.start()
    start = time.perf_counter()
    try:
        for n, (key, value, traceparent) in enumerate(pairs):
            headers = [("traceparent", traceparent.encode())] if traceparent else None
            await producer.send(topic, value, key=key, headers=headers)
            if rate is not None and n % 100 == 0:
                ahead = n / (2 * rate) - (time.perf_counter() - start)  # two records per ticket
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def produce(topic: str, tickets: Sequence[tuple[uuid.UUID, list[EventEnvelope]]], rate: float | None) -> float:
    """In a separate process, so producing does not compete with routing for this event loop.
    Returns the rate it really offered (tickets/s): the producer, too, shares the two cores."""
    pairs = [
        (str(t).encode(), envelope_encoder.encode(env), env.metadata.traceparent) for t, envs in tickets for env in envs
    ]
    context = multiprocessing.get_context("spawn")
    took = context.Value("d", 0.0)
    process = context.Process(target=_produce_main, args=(topic, pairs, rate, took))
    process.start()
    await asyncio.get_running_loop().run_in_executor(None, process.join)
    assert process.exitcode == 0, f"producer exited with {process.exitcode}"
    return len(tickets) / float(took.value)


class NullMetrics(RoutingMetrics):
    """Telemetry off: routing's own counters count nothing."""

    def inc(self, name: str, *labels: str) -> None:
        return None


class Telemetry:
    """The service's telemetry in this process, switched per run: "on" = the SDK as the runtime installs it
    (OTLP to a sink process, parent-based sampling at 10 %), routing's counters in the process registry,
    /metrics rendered every 5 s and consumer lag measured every 15 s (what Prometheus and the runtime do);
    "off" = no spans (the SDK's switch in ticketflow.messaging.tracing; asyncpg's instrumentation hooks
    stay installed, and pass every query straight on outside sampled work) and no counting. Tracing is
    installed once: the OpenTelemetry API takes one tracer provider per process."""

    def __init__(self, sink_url: str) -> None:
        os.environ.update({
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
        })  # fmt: skip
        self.provider = setup_tracing("routing")
        policy = tracing._policy
        self.installed = (policy.enabled, policy.forwards_unsampled, policy.start_root)
        self.mode = "off"

    def switch(self, mode: str) -> None:
        self.mode = mode
        enabled, forwards, start_root = self.installed
        tracing.configure(enabled=enabled and mode == "on", forwards_unsampled=forwards, start_root=start_root)

    def metrics(self) -> RoutingMetrics:
        return RoutingMetrics(REGISTRY) if self.mode == "on" else NullMetrics()

    async def background(self, stop: asyncio.Event) -> None:
        if self.mode != "on":
            return
        lag = asyncio.create_task(ConsumerLag(BOOTSTRAP).run(stop))
        while not stop.is_set():
            generate_latest()  # a scrape
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
        await lag


async def bench_kafka(
    tickets: list[tuple[uuid.UUID, list[EventEnvelope]]],
    *,
    use_pg: bool,
    rate: float | None,
    telemetry: Telemetry | None = None,
) -> tuple[float, HdrHistogram, float, float, list[str] | None]:
    """(decisions/s, latency, routing CPU seconds, tickets/s the producer really offered, the relay's row
    when it ran: paced on PostgreSQL)"""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    topics = [f"bench-routing-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("events", "agents", "commands")]
    sinks = [f"bench-routing-published-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("events", "agents")]
    await admin.create_topics([NewTopic(name, 12 if i == 0 else 1, 1) for i, name in enumerate(topics + sinks)])
    db_name, pool, leadership = None, None, None
    relay: RelayProcess | None = None
    arrivals: ArrivalLog | None = None
    relay_row: list[str] | None = None
    producer = make_producer(BOOTSTRAP)  # the runtime's, for dead letters (none here)
    await producer.start()
    try:
        streams: TicketStreams
        if use_pg:
            db_name, dsn = await fresh_database()
            conn = await asyncpg.connect(dsn)
            await migrate.apply_all(conn)
            await conn.close()
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)  # as the service's
            store = EventStore(pool)
            await prestore(store, tickets)
            leadership = Leadership(pool, "routing", dsn)  # as leader.py: stores fenced by the leader's epoch
            assert await leadership.try_acquire()
            streams = FencedStore(store, leadership)
            if rate is not None:  # the relay publishes the decisions while they are made
                events_before = await store.count()
                arrivals = await ArrivalLog(BOOTSTRAP, sinks, Path(tempfile.gettempdir())).start()
                relay_names = {TICKET_EVENTS: sinks[0], AGENT_EVENTS: sinks[1]}
                relay = RelayProcess(dsn, BOOTSTRAP, relay_names, start=await store.head()).start()
        else:
            memory = InMemoryEventStore()
            await prestore(memory, tickets)
            streams = memory
        state = RoutingState(desks())
        roster(state, capacity=len(tickets))
        tune_gc(GC_THRESHOLDS)  # as a term of leadership does after rebuilding the state
        broker = KafkaBroker(BOOTSTRAP, logger=None)
        # consumer.subscribe's subscriptions, with the events pipeline timed
        app = Routing(state, streams, metrics=telemetry.metrics() if telemetry else NullMetrics())
        stop_telemetry = asyncio.Event()
        background = asyncio.create_task(telemetry.background(stop_telemetry)) if telemetry else None
        dead_letters = DeadLetterWriter(producer, "bench")
        timed = TimedPipeline(consumer.events_pipeline(app, dead_letters), len(tickets))
        group, batch, timeout = f"bench-{uuid.uuid4()}", consumer.BATCH, consumer.BATCH_TIMEOUT_MS
        ordered_pipeline(broker, topics[:2], group, timed, max_records=batch, batch_timeout_ms=timeout)
        commands = consumer.commands_worker(app, dead_letters)
        per_key_batches(broker, topics[2:], group, commands, max_records=batch, batch_timeout_ms=timeout)
        if rate is None:  # a backlog: everything produced first, then drained
            offered = await produce(topics[0], tickets, None)
            await broker.start()
        else:
            await broker.start()
            await asyncio.sleep(3)  # partitions assigned before the clock starts
            produced_from = time.time()
            offered = await produce(topics[0], tickets, rate)
        await asyncio.wait_for(timed.done.wait(), 600)
        assert timed.first is not None
        elapsed = timed.last - timed.first
        await timed.drain()
        await broker.stop()
        stop_telemetry.set()
        if background is not None:
            await background
        assigned = sum(1 for rec in state.tickets.values() if rec.state.assignee)
        assert assigned == len(tickets), (assigned, len(tickets))
        if relay is not None and arrivals is not None and pool is not None:
            decided = await EventStore(pool).count() - events_before
            published_at = await relay.wait_published(decided, 300)
            await arrivals.wait_count(decided)
            lags = await store_to_kafka_lags(pool, arrivals.stop())
            relay_row = [f"{decided / (published_at - produced_from):,.0f}", f"{np.percentile(lags, 50):.1f}",
                         f"{np.percentile(lags, 99):.1f}", f"{len(lags):,}"]  # fmt: skip
        return len(tickets) / elapsed, timed.latency, timed.cpu, offered, relay_row
    finally:
        if relay is not None:
            relay.stop()
        if arrivals is not None:
            arrivals.stop()
        await producer.stop()
        await admin.delete_topics(topics + sinks)
        await admin.close()
        if leadership is not None:
            await leadership.release()
        if pool is not None:
            await pool.close()
        if db_name is not None:
            await drop_scratch_database(db_name)


def row(
    name: str, n: int, rate: float, latency: HdrHistogram | None, cpu: float, note: str, offered: float | None = None
) -> list[str]:
    def p(q: float) -> str:
        if latency is None:
            return "-"
        ms = latency.get_value_at_percentile(q) / 1000
        return f"{ms:.3f}" if ms < 10 else f"{ms:,.0f}"

    vs = f"{rate / TARGET:.2f}x" if "kafka" in name else ""
    return [name, f"{offered:,.0f}" if offered else "", f"{rate:,.0f}", p(50), p(99), vs, f"{n / cpu:,.0f}", note]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=TARGET, help="offered tickets/s for the paced run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the paced run")
    parser.add_argument("--only", choices=("backlog", "paced"), help="one kafka+pg scenario alone (profiling)")
    telemetry_help = (
        "only the kafka+pg backlog, telemetry off and on (--ab-rounds pairs, ABBA), with the ratio of decisions/s: "
        "tracing at 10 %% parent-based with OTLP export, and metrics, against both off"
    )
    parser.add_argument("--telemetry", choices=("ab",), help=telemetry_help)
    parser.add_argument("--ab-rounds", type=int, default=2, help="pairs of runs (off, on) with --telemetry ab")
    args = parser.parse_args()
    if args.telemetry == "ab":
        await telemetry_ab(args)
        return
    logging.getLogger("ticketflow.routing").setLevel(logging.ERROR)  # one warning per fallback ticket
    tune_gc(GC_THRESHOLDS)  # the service's garbage-collector settings, for every scenario
    tickets = ticket_envelopes(args.tickets)
    print(f"routing benchmark: {AGENTS} agents, {QUEUES} queues, {args.tickets} tickets, {os.cpu_count()} CPUs")
    n = len(tickets)
    if args.only is not None:
        chosen = tickets if args.only == "backlog" else ticket_envelopes(int(args.rate * args.seconds), seed=2)
        paced = None if args.only == "backlog" else args.rate
        rate, latency, cpu, offered, relay_row = await bench_kafka(chosen, use_pg=True, rate=paced)
        print(tabulate([row(f"kafka+pg {args.only}", len(chosen), rate, latency, cpu, "", offered)], tablefmt="github"))
        print_relay(relay_row, len(chosen), rate)
        return
    pure_rate, pure_latency, cpu = bench_pure(tickets)
    rows = [row("pure decide+apply (ceiling)", n, pure_rate, pure_latency, cpu, "one decision, no I/O")]
    rate, cpu = await bench_service(tickets)
    rows.append(row("service, in-memory streams", n, rate, None, cpu, "batches of 1000"))
    rate, latency, cpu, _, _ = await bench_kafka(tickets, use_pg=False, rate=None)
    rows.append(row("kafka+memory (backlog)", n, rate, latency, cpu, "produce->decided, includes queueing"))
    rate, latency, cpu, _, _ = await bench_kafka(tickets, use_pg=True, rate=None)
    backlog_rate = rate
    rows.append(row("kafka+pg (backlog)", n, rate, latency, cpu, "produce->stored, includes queueing"))
    paced = ticket_envelopes(int(args.rate * args.seconds), seed=2)
    rate, latency, cpu, offered, relay_row = await bench_kafka(paced, use_pg=True, rate=args.rate)
    name = f"kafka+pg paced {args.rate:,.0f}/s"
    rows.append(row(name, len(paced), rate, latency, cpu, "produce->stored at the offered rate", offered))
    headers = [
        "scenario", "offered/s", "decisions/s", "p50 ms", "p99 ms", f"vs {TARGET:,}/s", "per routing CPU-s", "latency"
    ]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(f"kafka+pg backlog: {backlog_rate:,.0f} decisions/s = {backlog_rate / pure_rate:.0%} of the pure ceiling")
    print_relay(relay_row, len(paced), rate)


def print_relay(relay_row: list[str] | None, tickets: int, rate: float) -> None:
    """The relay's row of a paced run (none for a backlog), and the load average."""
    if relay_row is not None:
        print(f"\nrelay during the paced run ({tickets:,} tickets stored at {rate:,.0f} decisions/s):")
        print(tabulate([relay_row], headers=["events published/s", "store->Kafka p50 ms", "p99 ms", "events"],
                       tablefmt="github"))  # fmt: skip
    print(f"load average at the end: {os.getloadavg()}")


async def telemetry_ab(args: argparse.Namespace) -> None:
    logging.getLogger("ticketflow.routing").setLevel(logging.ERROR)
    tune_gc(GC_THRESHOLDS)
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    assert sink.stdout is not None
    sink_url = sink.stdout.readline().strip()
    try:
        telemetry = Telemetry(sink_url)
        rows, ratios = [], []
        for round_ in range(args.ab_rounds):
            rates = {}
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):  # ABBA: drift cancels out
                telemetry.switch(mode)
                tickets = ticket_envelopes(args.tickets, seed=round_ + 1, traced=mode == "on")
                rate, latency, cpu, _, _ = await bench_kafka(tickets, use_pg=True, rate=None, telemetry=telemetry)
                rates[mode] = rate
                note = f"load average {os.getloadavg()[0]:.2f}"
                rows.append(row(f"kafka+pg backlog, telemetry {mode}", len(tickets), rate, latency, cpu, note))
                print(f"round {round_ + 1}, telemetry {mode}: {rate:,.0f} decisions/s, {note}", flush=True)
            ratios.append(rates["on"] / rates["off"])
        if telemetry.provider is not None:
            telemetry.provider.force_flush()
    finally:
        sink.terminate()
        sink.wait(10)
    headers = [
        "scenario",
        "offered/s",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        f"vs {TARGET:,}/s",
        "per routing CPU-s",
        "note",
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    shown = ", ".join(f"{r:.3f}" for r in ratios)
    print(f"telemetry A/B, decisions/s on ÷ off: {shown}; mean {sum(ratios) / len(ratios):.3f}")


# An OTLP/HTTP sink in its own process (so receiving spans takes no CPU from this one's event loop).
SINK = """
import asyncio, sys
sys.path.insert(0, "tests")
from support.otlp import OtlpSink
async def main():
    async with OtlpSink().running() as sink:
        print(sink.base_url, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


if __name__ == "__main__":
    asyncio.run(main())
