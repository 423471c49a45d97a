"""The SLA service as `python -m ticketflow.sla` composes it (`main.build` in the runtime's lifespan,
served by uvicorn in this process), on the real broker and PostgreSQL, on the packaged desks: it stores
its calendar versions before consuming, decides a ticket's lifecycle into SLA events, answers
`/sla/status` and readiness, dead-letters a bad record with its cause, and checkpoints on the way out."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sla_builders import opened, passed
from sla_records import Ticket, count_of
from support.eventstore import migrated_pool
from support.polling import eventually

from ticketflow.messaging.dead_letters import DeadLetter
from ticketflow.runtime.service import asgi_app
from ticketflow.runtime.settings import load_settings
from ticketflow.sla.main import build
from ticketflow.sla.settings import SlaSettings

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_one(bootstrap: str, topic: str) -> Any:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"read-{uuid.uuid4().hex[:8]}")  # fmt: skip
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    return records[0]
    finally:
        await consumer.stop()


async def test_the_service_decides_serves_its_status_dead_letters_bad_records_and_checkpoints(
    pg_database: str, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    pool = await migrated_pool(pg_database)
    topic = await kafka_topic_factory(partitions=2)
    await kafka_topic_factory(partitions=1, name=f"{topic}.dlq")
    t = Ticket()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    now = int(time.time())  # nothing due yet: its two clocks stay armed
    for event in (opened(t.ticket_id), passed(t.ticket_id)):  # the packaged Bitrix24 box desk
        await producer.send_and_wait(topic, t.envelope(event, now), key=t.key)
    await producer.send_and_wait(topic, b"{not json", key=t.key, headers=[("trace", b"t-1")])
    await producer.stop()
    port = free_port()
    settings = load_settings(SlaSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ensure_topics=False, topic=topic, group_id=f"sla-{topic}",
                             checkpoint_seconds=0.5)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(asgi_app(build(settings)), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def decided() -> bool:
                assert not serving.done(), f"the server stopped: {serving.exception() or 'cleanly'}"
                try:
                    response = await client.get("/sla/status")
                except httpx.ConnectError:  # not serving yet: start-up (state, calendars) comes first
                    return False
                status = response.json() if response.status_code == 200 else {}
                handled = status.get("events") == 3 and status.get("dead_letters") == 1 and status.get("timers") == 2
                # both partitions restored and live (an empty one may still be restoring when the other
                # has decided its records)
                return handled and status.get("partitions") == status.get("live") == [0, 1]

            await eventually(decided, "the lifecycle decided, the bad record rejected, both partitions live",
                             seconds=60)  # fmt: skip

            async def ready() -> bool:  # the broker's and the database's pings answer within 2 s
                return bool((await client.get("/health/ready")).json()["ready"])

            await eventually(ready, "readiness", seconds=30)
        await eventually(lambda: count_of(pool, "SlaClockStarted", t), "the clocks started in the store")
        assert await count_of(pool, "SlaClockStarted", t) == 2
        dead = DeadLetter.of(await read_one(kafka_bootstrap, f"{topic}.dlq"))
        assert (dead.reason, dead.consumer, dead.original_topic) == ("undecodable", "sla", topic)
        assert dead.value == b"{not json" and dead.detail  # the decoder's message
        assert dict(dead.original_headers) == {"trace": b"t-1"}
        assert await pool.fetchval("SELECT count(*) FROM sla_calendar_versions") > 0  # stored before consuming
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
    saved = await pool.fetch("SELECT partition, next_offset FROM sla_partition_checkpoints WHERE topic = $1", topic)
    assert sum(row["next_offset"] for row in saved) == 3  # every record read is checkpointed on the way out
    await pool.close()
