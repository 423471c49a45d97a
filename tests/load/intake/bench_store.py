"""Intake's recording path alone, in one process: `chat.inbound`-shaped messages decoded from JSON and
recorded by `Intake.record_in_lanes` (app.py, on adapters/intake_tables.py) in consumer-sized batches
against a fresh database (no Kafka, no HTTP); with `--in-flight N`, through the service's pipeline
(`consumer.chat_inbound_pipeline`, N batches in flight). Prints messages/s, this process's CPU per
message and PostgreSQL's CPU per message, so changes to the recording path can be compared without the
rest of the pipeline.
Usage: python tests/load/intake/bench_store.py [--messages 50000] [--batch 2000] [--lanes 4] [--in-flight 2]
[--profile out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import psutil

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "intake"))
sys.path.insert(0, str(REPO / "tests"))

from intake_payloads import TENANT_SECRETS, TENANTS_TOML  # noqa: E402
from intake_service import migrate_intake  # noqa: E402
from support.infra import drop_database  # noqa: E402

from ticketflow.contracts.chat import ChatMessage, ChatSender, chat_message_decoder  # noqa: E402
from ticketflow.eventstore.store import EventStore  # noqa: E402
from ticketflow.intake.adapters.intake_tables import IntakeTables  # noqa: E402
from ticketflow.intake.app import Intake  # noqa: E402
from ticketflow.intake.consumer import chat_inbound_pipeline  # noqa: E402
from ticketflow.intake.metrics import Metrics  # noqa: E402
from ticketflow.intake.settings import IntakeSettings  # noqa: E402
from ticketflow.intake.tenants import load_tenants  # noqa: E402
from ticketflow.runtime.settings import load_settings  # noqa: E402


class FakeRecord:
    __slots__ = ("key", "offset", "partition", "topic", "value")

    def __init__(self, value: bytes, offset: int) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "bench", 0, offset, None, value

    timestamp = 0
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeConsumer:
    """What the ordered pipeline asks of a Kafka consumer, without Kafka: positions move as batches are taken."""

    def __init__(self) -> None:
        self.position_ = 0

    async def commit(self, offsets: dict[Any, int]) -> None:
        pass

    async def position(self, partition: Any) -> int:
        return self.position_

    def seek(self, partition: Any, offset: int) -> None:
        raise AssertionError("no failures expected in this benchmark")


def postgres_cpu() -> float:
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] == "postgres" and process.info["cpu_times"] is not None:
            total += process.info["cpu_times"].user + process.info["cpu_times"].system
    return total


def records(count: int, conversations: int, nonce: str) -> list[bytes]:
    now = datetime.now(UTC)
    return [
        msgspec.json.encode(
            ChatMessage(
                platform="generic",
                tenant_id="acme-helpdesk",
                conversation_id=f"{nonce}-{n % conversations}",
                message_id=f"{nonce}-{n}",
                sender=ChatSender(f"u-{n % conversations}"),
                text="Портал не открывается",
                received_at=now,
            )
        )
        for n in range(count)
    ]


async def main(args: argparse.Namespace) -> None:
    server_dsn = os.environ.get("TICKETFLOW_PG_DSN", "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow")
    name = f"tf_bench_store_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = server_dsn.rsplit("/", 1)[0] + f"/{name}?sslmode=disable"
    tenants_file = Path(f"/tmp/{name}.toml")
    tenants_file.write_text(TENANTS_TOML)  # noqa: ASYNC240 - before any concurrency
    try:
        await migrate_intake(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=args.lanes, max_size=max(10, args.lanes + 2))
        assert pool is not None
        os.environ.update(TENANT_SECRETS)
        tenants = load_tenants(tenants_file)
        events = EventStore(pool)
        intake = Intake(tenants, events, IntakeTables(pool, events), Metrics(), lanes=args.lanes)
        if args.gc_threshold != "default":
            gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
        for round_ in range(args.rounds):
            raw = records(args.messages, args.conversations, f"r{round_}-{uuid.uuid4().hex[:6]}")
            me = psutil.Process()
            cpu0, pg0, wall0 = me.cpu_times(), postgres_cpu(), time.monotonic()
            profiler = None
            if args.profile and round_ == args.rounds - 1:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
            if args.in_flight:  # the service's path: decode, split and record through the pipeline
                pipeline = chat_inbound_pipeline(
                    intake.record_inbound, intake.reject_undecodable, name="bench", depth=args.in_flight
                )
                kafka = FakeConsumer()
                for start in range(0, len(raw), args.batch):
                    batch = [FakeRecord(r, start + i) for i, r in enumerate(raw[start : start + args.batch])]
                    kafka.position_ = start + len(batch)
                    await pipeline.handle(batch, kafka)
                await pipeline.drain(timeout_s=600)
            else:
                for start in range(0, len(raw), args.batch):
                    messages = [chat_message_decoder.decode(r) for r in raw[start : start + args.batch]]
                    await intake.record_in_lanes(messages)
            if profiler is not None:
                profiler.stop()
                text = profiler.output_text(unicode=False, show_all=False)
                Path(args.profile).write_text(text)  # noqa: ASYNC240 - after the measurement
            wall, cpu1, pg1 = time.monotonic() - wall0, me.cpu_times(), postgres_cpu()
            mine = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            print(
                f"round {round_}: {args.messages / wall:,.0f} msgs/s ({wall:.2f} s); per message: "
                f"intake {mine / args.messages * 1e6:.1f} µs CPU, "
                f"PostgreSQL {(pg1 - pg0) / args.messages * 1e6:.1f} µs CPU; load average {os.getloadavg()[0]:.2f}"
            )
        events = await pool.fetchval("SELECT count(*) FROM events")
        stored = await pool.fetchval("SELECT count(*) FROM intake_messages")
        print(f"stored {stored:,} messages, {events:,} events")
        await pool.close()
    finally:
        tenants_file.unlink(missing_ok=True)  # noqa: ASYNC240 - cleanup
        await drop_database(admin, name)  # ends our leftovers; waits out an autovacuum worker
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=0, help="through the pipeline with N batches in flight")
    parser.add_argument("--profile", default="")
    parser.add_argument(
        "--gc-threshold",
        default=",".join(map(str, load_settings(IntakeSettings).gc_thresholds)),
        help="gc.set_threshold(...) first, as the service does; 'default' keeps CPython's (700,10,10)",
    )
    asyncio.run(main(parser.parse_args()))
