"""The whole SLA service through the real broker: lifecycle events/s consumed (decode, calendar maths,
decisions appended to PostgreSQL, timers armed) with many timers resident, then a firing burst.

Run: make bench-sla-service   (or: .venv/bin/python tests/load/sla/bench_service.py [--resident N] ...)
Needs Kafka at TICKETFLOW_KAFKA_BOOTSTRAP and PostgreSQL at TICKETFLOW_PG_DSN; creates a scratch
database and topic and drops them afterwards.

Phases, all in one run:
1. resident: N tickets (default 2.5 M) with running first-response and resolution clocks are restored
   from partition checkpoints (as after a restart): the consumer arms ~2N timers on assignment;
2. consume: a separate producer process publishes E lifecycle envelopes (8 per ticket: opened,
   preflight passed, reply, customer message, waiting, customer message, priority change, reply) on
   the Bitrix24 box desk (Mon-Fri 10-19 Moscow, holidays) while the service consumes them live;
3. fire: F tickets due in the same second are added (24/7 desk): warnings/breaches appended per second;
4. baseline: a bare aiokafka consumer that only decodes the same envelopes (the broker+decode ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: support.infra
from support.infra import drop_database, dsn_with_database
from support.pg_checkpoints import CheckpointWatch, checkpoint_stats
from support.relay_process import RelayProcess

from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder, envelope_encoder
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore, migrate
from ticketflow.eventstore.connection import DEFAULT_DSN as DEFAULT_PG_DSN
from ticketflow.messaging.batches import PartitionBatches
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.partitioning import partition_of
from ticketflow.messaging.records import Record
from ticketflow.runtime.service import make_broker
from ticketflow.runtime.settings import DEFAULT_KAFKA, load_settings
from ticketflow.sla.adapters import checkpoints
from ticketflow.sla.adapters.checkpoints import PartitionCheckpoints, timer_row
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer
from ticketflow.sla.domain.clocks import Clock
from ticketflow.sla.domain.firing import firings
from ticketflow.sla.domain.policies import TARGETS
from ticketflow.sla.domain.state import TicketSla
from ticketflow.sla.settings import SlaSettings

PARTITIONS = 12
BOX, BOX_TRACK, PREMIUM_DESK, PREMIUM_TRACK = "bitrix24-box", "box", "express", "technical-premium"
SLOW_GROUP = {"session_timeout_ms": 120_000, "max_poll_interval_ms": 600_000, "rebalance_timeout_ms": 600_000}


def lifecycle(ticket: uuid.UUID, at: datetime) -> list[te.TicketEvent]:
    chat, who = ChatRef("bitrix24", "member-1", "chat"), Requester("u", roles=("portal_admin",))
    return [
        te.TicketOpened(ticket, BOX, BOX_TRACK, chat, who, "help", "m", at),
        te.PreflightPassed(ticket, "installation"),
        te.AgentReplied(ticket, "a1", "r1", "hello"),
        te.CustomerMessageAdded(ticket, "c1", "logs", at),
        te.WaitingOnCustomer(ticket, "need more", "a1"),
        te.CustomerMessageAdded(ticket, "c2", "more logs", at),
        te.PriorityChanged(ticket, "normal", "high", "lead"),
        te.AgentReplied(ticket, "a1", "r2", "fixed?"),
    ]


def produce_process(bootstrap: str, topic: str, events: int, go: Any, done: Any) -> None:
    """In its own process: encode everything first, then publish as fast as the broker takes it."""

    async def run() -> None:
        at = datetime.now(UTC)
        records = []
        for _ in range(events // 8):
            ticket = uuid.uuid4()
            for version, event in enumerate(lifecycle(ticket, at), start=1):
                envelope = EventEnvelope(uuid.uuid4(), f"ticket-{ticket}", version, at, 1, event)
                records.append((str(ticket).encode(), envelope_encoder.encode(envelope)))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1)
        await producer.start()
        go.wait()
        # Per-partition batches (PartitionBatches) on Kafka's default partition of each key: the
        # load generator shares the 2 cores with the service, and `send` per record cost it about
        # 14 µs of CPU each (5.5-7 CPU-s of a 16 s consume phase), CPU the service then lacked.
        batches = PartitionBatches(producer)
        for key, value in records:
            await batches.add(topic, partition_of(key, PARTITIONS), key, value)
        await batches.send_all()
        await producer.stop()
        done.set()

    asyncio.run(run())


def cpu_by_process(producer_pid: int) -> dict[tuple[str, int], float]:
    """User+system CPU seconds so far, per (role, pid): this process, the producer, PostgreSQL, Kafka."""
    found: dict[tuple[str, int], float] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            times = proc.cpu_times()
            name, cmd = proc.info["name"] or "", " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pid = proc.info["pid"]
        role = (
            "service" if pid == me
            else "producer" if pid == producer_pid
            else "postgres" if name.startswith("postgres")
            else "kafka" if name == "java" and "kafka" in cmd
            else None
        )  # fmt: skip
        if role is not None:
            found[(role, pid)] = times.user + times.system
    return found


def cpu_by_role(before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]) -> dict[str, float]:
    """CPU used between two samples per role; a process that exited meanwhile is not counted (an
    undercount: PostgreSQL backends of other clients come and go)."""
    roles = {"service": 0.0, "producer": 0.0, "postgres": 0.0, "kafka": 0.0}
    for (role, pid), cpu in after.items():
        roles[role] += cpu - before.get((role, pid), 0.0)
    return roles


def resident_tickets(count: int, now: int) -> list[dict[uuid.UUID, TicketSla]]:
    """Tickets mid-flight on the box desk: first response and resolution running (2 timers each)."""
    parts: list[dict[uuid.UUID, TicketSla]] = [{} for _ in range(PARTITIONS)]
    rng = random.Random(7)
    for n in range(count):
        ticket = uuid.UUID(int=rng.getrandbits(128))
        started = now - rng.randrange(0, 600)
        clocks = (Clock("first_response", 7200, started, running_since=started),
                  Clock("resolution", 162_000, started, running_since=started))  # fmt: skip
        parts[n % PARTITIONS][ticket] = TicketSla(ticket, BOX, BOX_TRACK, "normal", "active", clocks, 2, 0)
    return parts


async def write_resident(
    pool: asyncpg.Pool, topic: str, count: int, now: int, rules: DeskRules, configuration: str
) -> None:
    """`resident_tickets` written as the service's checkpoints of live partitions are: each state with
    the timers armed for it (`domain.firings`, stored as `checkpoints.timer_row`). The firings are
    computed once per distinct clocks (the tickets share 600 start times): setup, not measured."""
    known: dict[tuple[Clock, ...], bytes] = {}
    for number, tickets in enumerate(resident_tickets(count, now)):
        rows = {}
        for ticket, state in tickets.items():
            row = known.get(state.clocks)
            if row is None:
                wanted = firings(state, rules)
                row = known[state.clocks] = timer_row([wanted.get(target) for target in TARGETS])
            rows[ticket] = row
        await checkpoints.save(pool, topic, number, 0, tickets, configuration=configuration, timers=rows)


def due_tickets(count: int, due: int) -> list[TicketSla]:
    """24/7 premium tickets whose next ladder level (a 0.9 warning or the breach) is due at `due`."""
    tickets = []
    for n in range(count):
        if n % 2:  # the 0.9 warning of a 900 s target is due 810 s after start
            clock = Clock("first_response", 900, due - 810, running_since=due - 810, fired=0.75)
        else:  # the breach
            clock = Clock("first_response", 900, due - 900, running_since=due - 900, fired=0.9)
        tickets.append(TicketSla(uuid.uuid4(), PREMIUM_DESK, PREMIUM_TRACK, "urgent", "active", (clock,), 2, 0))
    return tickets


async def scratch(args: argparse.Namespace) -> tuple[str, str]:
    database = f"tf_bench_sla_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(args.dsn)
    await server.execute(f'CREATE DATABASE "{database}"')
    await server.close()
    dsn = dsn_with_database(args.dsn, database)
    conn = await asyncpg.connect(dsn)
    await migrate.apply_all(conn)
    await conn.close()
    topic = f"bench-sla-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    return dsn, topic


async def drop(args: argparse.Namespace, dsn: str, topic: str) -> None:
    database = urlsplit(dsn).path.lstrip("/")
    server = await asyncpg.connect(args.dsn)
    try:
        await drop_database(server, database)
    except asyncpg.PostgresError as error:
        print(f"could not drop the scratch database {database} ({error!r}); drop it by hand", file=sys.stderr)
    await server.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await admin.delete_topics([topic])
    await admin.close()


async def baseline(bootstrap: str, topic: str, events: int) -> float:
    group = f"bench-raw-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000, fetch_max_bytes=64 * 2**20,
                                max_partition_fetch_bytes=8 * 2**20)  # fmt: skip
    await consumer.start()
    seen, began = 0, None
    try:
        while seen < events:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                began = began or time.perf_counter()
                for record in records:
                    if isinstance(envelope_decoder.decode(record.value).event, te.TicketOpened | te.PreflightPassed):
                        pass
                seen += len(records)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - (began or time.perf_counter()))


def tune(settings: list[str]) -> None:
    import importlib

    for setting in settings:
        name, value = setting.split("=")
        module, constant = name.rsplit(".", 1)
        target = importlib.import_module(f"ticketflow.sla.{module}")
        assert isinstance(getattr(target, constant), int), f"{name} is not a tuning constant"
        setattr(target, constant, int(value))
        print(f"tuned: {name} = {value}")


async def warm_broker(bootstrap: str, events: int) -> float:
    """Produce and consume `events` lifecycle records on a topic of their own, before anything is
    measured: a broker started minutes before spends 2-3 CPU-s compiling its produce and fetch paths
    (JIT) in its first heavy traffic, CPU the service would otherwise lose in the measured phase (a
    broker in service is warm). Returns the seconds it took."""
    began = time.perf_counter()
    topic = f"bench-sla-warm-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Event()
    go.set()
    producer = context.Process(target=produce_process, args=(bootstrap, topic, events, go, done))
    producer.start()
    await baseline(bootstrap, topic, (events // 8) * 8)
    producer.join()
    await admin.delete_topics([topic])
    await admin.close()
    return time.perf_counter() - began


async def bench(args: argparse.Namespace) -> None:
    tune(args.tune)
    if args.warm_broker:
        warmed_s = await warm_broker(args.bootstrap, args.warm_broker)
        print(f"broker warmed with {args.warm_broker:,} records in {warmed_s:.1f} s")
    dsn, topic = await scratch(args)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    assert pool is not None
    rules = DeskRules(load_desks())
    rules.warm_calendars()  # the calendars the engine counts in (built from their versions), as the service does
    # A restart under the configuration the checkpoints were written with (the common case);
    # `--changed-configuration` restores as after a desk configuration change: every ticket rechecked.
    configuration = "" if args.changed_configuration else rules.fingerprint()
    t0 = time.perf_counter()
    await write_resident(pool, topic, args.resident, int(time.time()), rules, configuration)
    restore_s = time.perf_counter() - t0
    writer = TimedWriter(EventStore(pool), bulk=args.writer == "bulk")
    engine = SlaEngine(rules, writer, checkpoints=PartitionCheckpoints(pool, topic))
    engines = [engine]

    async def the_engine() -> SlaEngine:  # the service makes one per round; the bench measures one round
        if not engines:
            raise RuntimeError("the engine failed: the bench measures one round (see the log)")
        return engines.pop()

    # The service's consumer on the service's broker (`runtime.service.make_broker`: telemetry included).
    broker = make_broker(load_settings(SlaSettings, kafka_bootstrap=args.bootstrap), "sla")
    await broker.start()
    consumer = SlaConsumer(broker, topic, the_engine, PrintedDeadLetters(), group_id=f"bench-{topic}",
                           max_records=args.poll_records, checkpoint_every_s=args.checkpoint_seconds,
                           consumer_options=SLOW_GROUP)  # fmt: skip
    stop = asyncio.Event()
    restore_checkpoints = await CheckpointWatch.begin(pool)
    t_assign = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    await poll_until(
        lambda: (
            len(engine.partitions) == PARTITIONS
            and all(p.live for p in engine.partitions.values())
            and engine.arming == 0
        )
    )
    live_s, resident = time.perf_counter() - t_assign, engine.timers()
    restore_checkpoints_text = restore_checkpoints.summary(await checkpoint_stats(pool))
    rss_before = psutil.Process().memory_info().rss

    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Event()
    producer = context.Process(target=produce_process, args=(args.bootstrap, topic, args.events, go, done))
    producer.start()
    await asyncio.sleep(3 + args.events / 100_000)  # let it encode
    me, cpu_all = psutil.Process(), psutil.cpu_times()
    cpu_me, roles_before = me.cpu_times(), cpu_by_process(producer.pid or 0)
    engine.stats.armed_latency_ms.clear()
    engine.queue.durable_latency_ms.clear()
    gc_pauses = GcPauses()
    flushes_before, throttled_before = engine.queue.flushes, engine.queue.throttled_s
    events_before = engine.stats.events
    writer.seconds, appended_before = 0.0, writer.appended
    consume_checkpoints = await CheckpointWatch.begin(pool)
    go.set()
    began = time.perf_counter()
    total = events_before + (args.events // 8) * 8
    await poll_until(lambda: engine.stats.events >= total)
    await engine.drain()  # consumed means decided, armed AND its SLA events stored
    consume_s = time.perf_counter() - began
    consume_checkpoints_text = consume_checkpoints.summary(await checkpoint_stats(pool))
    flushes = engine.queue.flushes - flushes_before
    throttled = engine.queue.throttled_s - throttled_before
    gc_pauses.stop()
    appended = writer.appended - appended_before
    me_cpu = sum(me.cpu_times()[:2]) - sum(cpu_me[:2])
    roles = cpu_by_role(roles_before, cpu_by_process(producer.pid or 0))
    all_after = psutil.cpu_times()
    machine_cpu = (all_after.user + all_after.system) - (cpu_all.user + cpu_all.system)
    producer.join()
    consumed = total - events_before
    latencies = np.array(engine.stats.armed_latency_ms)
    durable = np.array(engine.queue.durable_latency_ms)
    timers_after = engine.timers()

    # The projector's relay, in its own process, publishing to a sink topic (not the consumed one):
    # first the SLA events of the consume phase (a backlog), then the firings as they are stored.
    sink = f"{topic}-out"
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(sink, PARTITIONS, 1)])
    await admin.close()
    backlog = await pool.fetchval("SELECT count(*) FROM events")
    drain_began = time.time()
    relay = RelayProcess(dsn, args.bootstrap, {TICKET_EVENTS: sink}).start()
    drain_s = await relay.wait_published(backlog, 600) - drain_began  # includes the process's start (about 1 s)

    fired_before, decided_before = engine.queue.fired, engine.stats.fired
    due_from = int(time.time()) + 2
    async with engine.lock:
        parts = list(engine.partitions.values())
        for n, state in enumerate(due_tickets(args.fire, due_from)):
            part = parts[n % len(parts)]
            part.tickets[state.ticket_id] = state
            engine._sync(part, state.ticket_id, state)
    await asyncio.sleep(max(0.0, due_from - time.time() - 0.2))
    fire_checkpoints = await CheckpointWatch.begin(pool)
    fire_cpu_before, fire_me_before = cpu_by_process(0), sum(me.cpu_times()[:2])
    fire_writer_s, fire_flushes = writer.seconds, engine.queue.flushes
    decided_s: float | None = None

    def fired_and_stored() -> bool:  # stored, not just decided; notes when the last one was decided
        nonlocal decided_s
        if decided_s is None and engine.stats.fired - decided_before >= args.fire:
            decided_s = time.time() - due_from
        return bool(engine.queue.fired - fired_before >= args.fire)

    await poll_until(fired_and_stored, 0.01)
    fire_s = time.time() - due_from
    published_s = await relay.wait_published(backlog + args.fire) - due_from
    relay.stop()
    fire_checkpoints_text = fire_checkpoints.summary(await checkpoint_stats(pool))
    fire_roles = cpu_by_role(fire_cpu_before, cpu_by_process(0))
    fire_roles["service"] = sum(me.cpu_times()[:2]) - fire_me_before
    fire_writer_s, fire_flushes = writer.seconds - fire_writer_s, engine.queue.flushes - fire_flushes
    stop.set()
    await task
    await broker.stop()
    rss_after = psutil.Process().memory_info().rss
    raw_rate = await baseline(args.bootstrap, topic, consumed)
    await pool.close()

    rate = consumed / consume_s
    rows = [
        ["resident timers (armed at assignment)", f"{resident:,}",
         f"restored {args.resident:,} tickets in {live_s:.1f} s"],
        ["PostgreSQL checkpoints during the restore", restore_checkpoints_text, "server-wide"],
        ["lifecycle events consumed", f"{consumed:,}", f"in {consume_s:.1f} s"],
        ["events/s (service)", f"{rate:,.0f}", "target >= 20,000"],
        ["events/s (baseline: bare consume + decode)", f"{raw_rate:,.0f}",
         f"service = {rate / raw_rate:.2f}x baseline"],
        ["poll fetch -> decided, timers armed p50 / p99 ms",
         f"{np.percentile(latencies, 50):.1f} / {np.percentile(latencies, 99):.1f}",
         f"{len(latencies)} polls, target p99 < 50"],
        ["poll fetch -> its SLA events stored p50 / p99 ms",
         f"{np.percentile(durable, 50):.1f} / {np.percentile(durable, 99):.1f}",
         f"{flushes} flushes (appends in flight overlap the next polls)"],
        ["SLA events appended during consume", f"{appended:,}",
         f"{writer.seconds:.1f} s with an append in flight; consumer held back {throttled:.1f} s"],
        ["timers after consume", f"{timers_after:,}", ""],
        ["PostgreSQL checkpoints during consume", consume_checkpoints_text, "server-wide"],
        ["cyclic GC during consume: passes / total / longest pause", gc_pauses.summary(), "full (gen 2) passes in ()"],
        ["writer: appended / found stored / repaired / bulk chunks refused",
         f"{writer.appended:,} / {writer.duplicates:,} / {writer.repairs:,} / {writer.fallbacks:,}",
         f"whole run, --writer {args.writer}"],
        ["warnings+breaches fired", f"{args.fire:,}", f"in {fire_s:.2f} s after the first was due"],
        ["firings/s (appended to the store)", f"{args.fire / fire_s:,.0f}", "stored; target >= 50,000 produced"],
        ["firings/s (published on Kafka by the relay)", f"{args.fire / published_s:,.0f}",
         f"the last one {published_s:.2f} s after due, {published_s - fire_s:.2f} s after the last stored; "
         f"published ÷ stored {fire_s / published_s:.2f}"],
        ["relay: the consume phase's SLA events drained", f"{backlog / drain_s:,.0f}/s",
         f"{backlog:,} events in {drain_s:.1f} s (incl. the relay process's start)"],
        ["PostgreSQL checkpoints during the firing burst", fire_checkpoints_text, "server-wide"],
        ["firing burst: all decided (advanced, re-armed, queued) / all stored, s after due",
         f"{decided_s or 0:.2f} / {fire_s:.2f}",
         f"{fire_flushes} flushes, {fire_writer_s:.1f} s with an append in flight (summed over flushes)"],
        ["CPU-s during the firing burst by process", ", ".join(f"{k} {v:.1f}" for k, v in fire_roles.items()),
         "service: per firing " + f"{1e6 * fire_roles['service'] / args.fire:.0f} µs, postgres "
         + f"{1e6 * fire_roles['postgres'] / args.fire:.0f} µs"],
        ["service CPU-s per 1,000 events", f"{1000 * me_cpu / consumed:.3f}", "this process"],
        ["machine CPU-s per 1,000 events", f"{1000 * machine_cpu / consumed:.3f}",
         "incl. broker, PostgreSQL, producer"],
        ["CPU-s during consume by process", ", ".join(f"{k} {v:.1f}" for k, v in roles.items()),
         f"machine total {machine_cpu:.1f} (the rest: other work on the box)"],
        ["RSS (MB) after restore / at end", f"{rss_before / 2**20:,.0f} / {rss_after / 2**20:,.0f}", ""],
        ["checkpoints written", f"{engine.stats.checkpoints}", f"every {args.checkpoint_seconds} s"],
    ]  # fmt: skip
    print(f"\n## SLA service through the real broker ({PARTITIONS} partitions, {os.cpu_count()} cores)\n")
    print(tabulate(rows, headers=["measure", "value", "note"], tablefmt="github"))
    print(f"\nresident tickets checkpoint write: {restore_s:.1f} s", flush=True)
    await drop(args, dsn, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
    await admin.start()
    await admin.delete_topics([sink])
    await admin.close()


async def poll_until(condition: Any, interval: float = 0.05) -> None:
    """Benchmark progress is read from the engine's counters; nothing signals them."""
    while not condition():  # noqa: ASYNC110 - counters, not events
        await asyncio.sleep(interval)


class GcPauses:
    """Time spent in the cyclic garbage collector (a full pass walks every tracked object)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.full = 0
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)
            self.full += info.get("generation") == 2

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        longest = max(self.pauses, default=0.0)
        return f"{len(self.pauses):,} ({self.full}) / {sum(self.pauses):.2f} s / {1000 * longest:.0f} ms"


class TimedWriter(SlaWriter):
    """Measures how long the service waits for the store's appends."""

    seconds = 0.0

    async def write(self, states: Any, pending: Any) -> Any:
        began = time.perf_counter()
        try:
            return await super().write(states, pending)
        finally:
            self.seconds += time.perf_counter() - began


class PrintedDeadLetters(DeadLetterWriter):
    """The bench's records are all valid: a dead letter is printed (the smoke test looks for none)."""

    def __init__(self) -> None:
        super().__init__(None, "sla")  # type: ignore[arg-type]  # never produces

    async def send(self, record: Record, reason: str, detail: str = "", **context: str) -> None:
        print(f"dead letter: {record.topic}[{record.partition}]@{record.offset}: {reason}: {detail}", file=sys.stderr)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resident", type=int, default=2_500_000, help="tickets restored with 2 running clocks each")
    p.add_argument("--events", type=int, default=400_000, help="lifecycle events to consume (8 per ticket)")
    p.add_argument("--fire", type=int, default=50_000, help="warnings/breaches due at the same second")
    p.add_argument("--checkpoint-seconds", type=float, default=10.0)
    p.add_argument(
        "--warm-broker",
        type=int,
        default=200_000,
        metavar="RECORDS",
        help="records produced and consumed through the broker before anything is measured (0: none)",
    )
    p.add_argument("--poll-records", type=int, default=500, help="max records per poll (the service's default)")
    p.add_argument("--changed-configuration", action="store_true",
                   help="checkpoints from another desk configuration: the restore rechecks every ticket")  # fmt: skip
    p.add_argument("--writer", choices=("bulk", "append_many"), default="bulk",
                   help="how the SLA writer appends a chunk (append_many: the previous path, to compare)")  # fmt: skip
    p.add_argument("--tune", action="append", default=[], metavar="MODULE.NAME=INT",
                   help="override a tuning constant of ticketflow.sla (e.g. adapters.append_queue.MAX_IN_FLIGHT=3, "
                        "app.FIRE_CHUNK=500, adapters.store_writer.MAX_CHUNK=1000, "
                        "adapters.store_writer.MIN_CHUNK=50), to compare")  # fmt: skip
    p.add_argument("--bootstrap", default=os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", DEFAULT_KAFKA))
    p.add_argument("--dsn", default=os.environ.get("TICKETFLOW_PG_DSN", DEFAULT_PG_DSN))
    return p.parse_args()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(bench(parse()))
