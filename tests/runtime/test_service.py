"""The service lifespan, on the real broker and PostgreSQL, served by uvicorn in this process:
- the service's start-up work finishes before the first record is consumed (no "not ready" handshake);
- readiness reports the broker, the database, a consumer's outage and a crashed background task;
- stopping drains before the consumers stop, and closes after."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from support.metrics import sample_value
from support.polling import eventually

from ticketflow.messaging.per_key import PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record
from ticketflow.runtime.service import Runtime, Service, asgi_app
from ticketflow.runtime.settings import ServiceSettings, load_settings

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_start_up_work_ends_before_consuming_and_readiness_tells_the_truth(
    pg_database: str, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    await kafka_topic_factory(partitions=1, name=f"{topic}.dlq")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, msgspec.json.encode({"n": 1}), key=b"k")  # waiting before start-up
    await producer.stop()
    port = free_port()
    settings = load_settings(ServiceSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ensure_topics=False, ops_topic="")  # fmt: skip
    seen: list[bool] = []
    subscribers: list[Any] = []
    loaded = asyncio.Event()
    order: list[str] = []

    async def handle(item: Any, record: Record) -> None:
        seen.append(loaded.is_set())

    async def flaky(stop: asyncio.Event) -> None:
        raise RuntimeError("cannot reach the destination")

    async def start(rt: Runtime) -> None:
        await asyncio.sleep(0.5)  # loading state takes a while
        loaded.set()
        worker = PerKeyBatches("test", msgspec.json.decode, handle, rt.dead_letters("test"))
        subscribers.append(per_key_batches(rt.broker, [topic], "lifespan-test", worker))
        rt.watch("test", worker.waiting)
        rt.background("flaky", flaky)

        async def drained() -> None:
            order.append("drain")

        async def closed() -> None:
            order.append("close")

        rt.on_drain(drained)
        rt.on_close(closed)

    server = uvicorn.Server(
        uvicorn.Config(asgi_app(Service("example", settings, start)), port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: seen, "the waiting record consumed")
        assert seen == [True], "a record was consumed before the start-up work ended"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = (await client.get("/health/ready")).json()
            assert ready["checks"]["kafka"] == "ok" and ready["checks"]["postgres"] == "ok"
            assert ready["checks"]["consumer test"] == "ok"
            assert "cannot reach the destination" in ready["checks"]["task flaky"] and not ready["ready"]
            assert f"consumer lifespan-test on {topic}" not in ready["checks"]  # its loop runs: nothing to say
            assert (await client.get("/health/live")).status_code == 200
            await subscribers[0].stop()  # a consumer whose loop is gone: not ready for that reason too
            checks = (await client.get("/health/ready")).json()["checks"]
            assert checks[f"consumer lifespan-test on {topic}"].startswith("stopped")
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
    assert order == ["drain", "close"]


async def test_a_task_that_ends_on_its_own_is_dead_for_readiness_and_metrics_on_the_operations_port(
    pg_database: str, kafka_bootstrap: str
) -> None:
    """Not only a crash: a background loop that returns while the service runs has died too (it would
    otherwise leave the service "ready" with its relay or projections gone)."""
    port, ops_port = free_port(), free_port()
    settings = load_settings(ServiceSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ops_port=ops_port, ensure_topics=False, metrics_interval_seconds=1.0)  # fmt: skip
    runs: list[int] = []

    async def quitter(stop: asyncio.Event) -> None:
        runs.append(1)  # returns at once, as a loop with a wrong exit condition would

    async def start(rt: Runtime) -> None:
        rt.background("quitter", quitter)

    app = asgi_app(Service("example", settings, start), operations=True)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: len(runs) >= 2, "the task restarted after its death")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}") as ops:
            answer = await ops.get("/health/ready")
            assert answer.status_code == 503
            assert "returned while the service was not stopping" in answer.json()["checks"]["task quitter"]
            text = (await ops.get("/metrics")).text
            assert sample_value(text, "ticketflow_background_task_deaths_total", task="quitter") >= 1
            assert sample_value(text, "ticketflow_background_task_up", task="quitter") in (0.0, 1.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as public:
            assert (await public.get("/metrics")).status_code == 404  # metrics only on the operations port
            assert (await public.get("/health/ready")).status_code == 503  # the same readiness on both
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
    with pytest.raises(httpx.ConnectError):  # the operations server stopped with the service
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}") as ops:
            await ops.get("/health/live")
