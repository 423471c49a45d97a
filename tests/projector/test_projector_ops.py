"""The operators' commands the projector executes, through the service as `main.build` composes it
(uvicorn in this process, the real broker and PostgreSQL, this test's own topics; the relay is off so
nothing reaches the shared ticket.events): a rebuild, a ticket's replay and a dead-letter redrive are
accepted then done with counts; an unknown projection and a topic without dead letters are rejected."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from support.eventstore import migrated_pool
from support.ops import Answers, command, send
from support.records import FakeRecord
from support.relay import read_published
from support.tickets import open_ticket, run

from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.projector.main import build
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import asgi_app
from ticketflow.runtime.settings import load_settings

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rebuild_replay_and_redrive_through_ops_commands(
    pg_database: str, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    pool = await migrated_pool(pg_database)
    ticket = uuid.uuid4()
    await run(EventStore(pool), open_ticket(ticket, 1))
    orders = await kafka_topic_factory(suffix="orders")
    await kafka_topic_factory(name=f"{orders}.dlq")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await DeadLetterWriter(producer, "test").send(FakeRecord(orders, 0, 0, b"k", b"an order"), "rejected", "why")
    await producer.stop()
    ops_commands, ops_events = await kafka_topic_factory(suffix="ops"), await kafka_topic_factory(suffix="answers")
    events = await kafka_topic_factory(suffix="events")  # where the relay (and so a replay) publishes
    port = free_port()
    settings = load_settings(ProjectorSettings, pg_dsn=pg_database, kafka_bootstrap=kafka_bootstrap, port=port,
                             ensure_topics=False, relay=False, ops_topic=ops_commands, ops_events_topic=ops_events,
                             relay_topics={TICKET_EVENTS: events})  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(asgi_app(build(settings)), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with Answers(kafka_bootstrap, ops_events) as answers:
            await answers.reader_positioned(kafka_bootstrap, ops_commands, "projector")
            await send(kafka_bootstrap, ops_commands,
                       command("rebuild-1", {"type": "RebuildProjection"}, target="projector"),
                       command("rebuild-2", {"type": "RebuildProjection", "projection": "nope"}),
                       command("replay-1", {"type": "ReplayTicket", "ticket_id": str(ticket)}),
                       command("redrive-1", {"type": "RedriveDeadLetters", "topic": orders}),
                       command("redrive-2", {"type": "RedriveDeadLetters", "topic": "no.such.topic"}))  # fmt: skip
            assert (await answers.of("rebuild-1", "done", 60)).counts == {"events": 1}
            unknown = await answers.of("rebuild-2", "rejected")
            assert unknown.reason.startswith("no read model nope; the read models: tickets, ")
            assert (await answers.of("replay-1", "done")).counts == {"events": 1}
            redriven = await answers.of("redrive-1", "done")
            assert redriven.counts == {"read": 1, "redriven": 1, "left": 0}
            assert "no.such.topic has no dead-letter topic" in (await answers.of("redrive-2", "rejected")).reason
            seen = await answers.quiet(1.0)
        assert [a.status for a in seen if a.command_id == "rebuild-1"] == ["accepted", "done"]
        replayed = await read_published(kafka_bootstrap, events, 1)  # the ticket's one event, published again
        assert [r.envelope.stream_id for r in replayed] == [ticket_stream(ticket)]
        assert await pool.fetchval("SELECT count(*) FROM ticket_list WHERE ticket_id = $1", ticket) == 1
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        await pool.close()
