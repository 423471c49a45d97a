"""`ticketflow` against running things: an operators' command published and its answers followed (on this
test's own topics, read by a runtime ops reader), the health of a service served by the runtime, and a
rebuild of the read model in this process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from support.eventstore import migrated_pool
from support.infra import KafkaTopicFactory
from support.polling import eventually
from support.tickets import open_ticket, run

from ticketflow.cli.app import main
from ticketflow.eventstore import EventStore
from ticketflow.runtime.ops_commands import OpsConsumer, OpsExecutor, OpsHandlers, OpsLedger
from ticketflow.runtime.service import Runtime, Service, asgi_app
from ticketflow.runtime.settings import ServiceSettings, load_settings


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def ops_reader(pool: asyncpg.Pool, bootstrap: str, commands: str, events: str) -> AsyncIterator[None]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    reader = OpsConsumer(OpsExecutor(OpsHandlers("routing"), OpsLedger(pool, "pod-r"), producer, events),
                         bootstrap, commands)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        await asyncio.wait_for(reader.ready.wait(), 30)
        yield
    finally:
        stop.set()
        await task
        await producer.stop()


@pytest.mark.kafka
@pytest.mark.pg
async def test_an_ops_command_is_published_and_its_answers_printed(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    commands, events = await kafka_topic_factory(suffix="ops"), await kafka_topic_factory(suffix="answers")
    monkeypatch.setenv("TICKETFLOW_OPS_COMMANDS_TOPIC", commands)
    monkeypatch.setenv("TICKETFLOW_OPS_EVENTS_TOPIC", events)
    base = ("--bootstrap", kafka_bootstrap)
    async with ops_reader(pool, kafka_bootstrap, commands, events):
        argv = (*base, "--json", "ops", "log-level", "debug", "--logger", "ticketflow.test.cli", "--target", "routing",
                "--id", "cli-log-1", "--wait-s", "30")  # fmt: skip
        assert await cli(*argv) == 0
        [answer] = json.loads(capsys.readouterr().out)["answers"]
        assert (answer["service"], answer["status"], answer["counts"]) == ("routing", "done", {"loggers": 1})
        # routing executes no rebuild: rejected by its target, one line, exit 1
        rebuild = {"version": 1, "command_id": "cli-rb-1", "actor": "sre", "target": "routing",
                   "command": {"type": "RebuildProjection"}}  # fmt: skip
        assert await cli(*base, "ops", "send", json.dumps(rebuild), "--wait-s", "30") == 1
        out = capsys.readouterr()
        assert "routing (pod-r): rejected" in out.out
        assert out.err == "ticketflow: error: routing rejected cli-rb-1: routing does not execute RebuildProjection " \
            "(it executes SetLogLevel)\n"  # fmt: skip
    assert await cli(*base, "ops", "reload-desks", "--wait-s", "2") == 1  # nobody reads the topic now
    assert "no service answered" in capsys.readouterr().err


@pytest.mark.kafka
@pytest.mark.pg
async def test_health_shows_each_services_liveness_and_readiness(
    pg_database: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    settings = load_settings(ServiceSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ensure_topics=False)  # fmt: skip

    async def start(_: Runtime) -> None:
        return None

    server = uvicorn.Server(
        uvicorn.Config(asgi_app(Service("intake", settings, start)), port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, "the service serving", 60)
        dead = free_port()  # nothing listens there
        argv = ["--json", "health", "--host", "127.0.0.1", "--url", f"intake=http://127.0.0.1:{port}", "--url",
                f"sla=http://127.0.0.1:{dead}", "--timeout", "5"]  # fmt: skip
        assert await cli(*argv) == 1  # not every service is ready
        rows: dict[str, Any] = {r["service"]: r for r in json.loads(capsys.readouterr().out)}
        assert (rows["intake"]["live"], rows["intake"]["ready"]) == (True, True)
        assert rows["intake"]["checks"] == {"kafka": "ok", "postgres": "ok"}
        assert (rows["sla"]["live"], rows["sla"]["ready"]) == (False, False)
        assert rows["sla"]["checks"]["http"].startswith("unreachable")
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)


@pytest.mark.pg
async def test_rebuild_replays_the_store_into_the_read_model(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = await migrated_pool(pg_database)
    try:
        tickets = [uuid.uuid4() for _ in range(3)]
        for ticket in tickets:
            await run(EventStore(pool), open_ticket(ticket, 1))
        assert await cli("--pg-dsn", pg_database, "--json", "rebuild") == 0
        assert json.loads(capsys.readouterr().out) == {"projection": "tickets", "events": 3}
        assert await pool.fetchval("SELECT count(*) FROM ticket_list") == 3
        assert await cli("--pg-dsn", pg_database, "rebuild", "--projection", "nope") == 1
        assert "no read model nope" in capsys.readouterr().err
    finally:
        await pool.close()
