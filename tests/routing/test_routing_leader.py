"""Two routing processes on the real broker and a fresh database: one leads, the other stands by;
the leader is killed (SIGKILL) with tickets in flight, and the stand-by takes over: every ticket is
routed and assigned exactly once, and later tickets are routed by the new leader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import asyncpg
import pytest
from routing_builders import joined, opened
from support.polling import eventually

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.outbox import OutboxRelay, make_producer

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_logs(folder: Path) -> list[IO[str]]:
    return [(folder / f"routing-{n}.log").open("w") for n in (1, 2)]  # closed by the test


def spawn(env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    env = {**env, "TICKETFLOW_ROUTING_PORT": str(free_port())}
    return subprocess.Popen([sys.executable, "-m", "ticketflow.routing"], env=env, stdout=log, stderr=log, text=True)


async def leader(pool: asyncpg.Pool) -> tuple[int, str] | None:
    with contextlib.suppress(asyncpg.UndefinedTableError):
        row = await pool.fetchrow("SELECT epoch, holder FROM service_leaders WHERE name = 'routing'")
        return None if row is None else (row["epoch"], row["holder"])
    return None


async def test_the_stand_by_takes_over_when_the_leader_is_killed(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, kafka_topic_factory: object, tmp_path: Path
) -> None:
    new_topic = kafka_topic_factory
    ticket_events = await new_topic(partitions=3, suffix="ticket-events")  # type: ignore[operator]
    agent_events = await new_topic(partitions=1, suffix="agent-events")  # type: ignore[operator]
    commands = await new_topic(partitions=1, suffix="commands")  # type: ignore[operator]
    store = EventStore(pool)
    stop = asyncio.Event()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(store, producer, topic_names={TICKET_EVENTS: ticket_events, AGENT_EVENTS: agent_events})
    relaying = asyncio.create_task(relay.run(stop))
    env = {
        **os.environ,
        "TICKETFLOW_PG_DSN": pg_database,
        "TICKETFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKETFLOW_ROUTING_GROUP": f"routing-{uuid.uuid4()}",
        "TICKETFLOW_ROUTING_EVENT_TOPICS": f"{ticket_events},{agent_events}",
        "TICKETFLOW_ROUTING_COMMANDS_TOPIC": commands,
        "TICKETFLOW_ROUTING_LEADER_POLL_SECONDS": "0.5",
        "TICKETFLOW_ROUTING_TICK_SECONDS": "1",
    }
    logs = open_logs(tmp_path)
    processes: list[subprocess.Popen[str]] = []
    now = datetime.now(UTC)

    async def new_tickets(count: int) -> list[uuid.UUID]:
        made = [uuid.uuid4() for _ in range(count)]
        for t in made:
            facts = [opened(t, "bitrix24-box", "box"), e.PreflightPassed(t, "installation")]
            await store.append(ticket_stream(t), 0, [NewEvent(new_event_id(), ev, now) for ev in facts])
        return made

    async def decisions(t: uuid.UUID) -> list[str]:
        kinds = [type(env.event).__name__ for env in await store.read_stream(ticket_stream(t))]
        return [k for k in kinds if k in {"TicketRouted", "TicketAssigned"}]

    async def all_assigned(tickets: list[uuid.UUID]) -> bool:
        for t in tickets:
            if "TicketAssigned" not in await decisions(t):
                return False
        return True

    try:
        processes.append(first := spawn(env, logs[0]))

        async def first_leads() -> bool:
            return await leader(pool) == (1, f"{socket.gethostname()}:{first.pid}")

        await eventually(first_leads, "the first instance leads", 60)
        processes.append(second := spawn(env, logs[1]))
        for agent in ("lead-test-anna", "lead-test-boris"):
            events = joined(agent, "box-l1", capacity=100)
            await store.append(agent_stream(agent), 0, [NewEvent(new_event_id(), ev, now) for ev in events])
        before = await new_tickets(1)
        await eventually(lambda: all_assigned(before), "routed by the first leader", 90)
        assert second.poll() is None and await leader(pool) == (1, f"{socket.gethostname()}:{first.pid}")

        in_flight = await new_tickets(30)
        first.send_signal(signal.SIGKILL)  # no goodbye: the lock goes with its connection
        first.wait(10)

        async def second_leads() -> bool:
            return await leader(pool) == (2, f"{socket.gethostname()}:{second.pid}")

        await eventually(second_leads, "the stand-by takes over", 30)
        after = await new_tickets(5)
        await eventually(lambda: all_assigned(before + in_flight + after), "every ticket assigned", 120)
        for t in before + in_flight + after:
            assert await decisions(t) == ["TicketRouted", "TicketAssigned"], t
        assert second.poll() is None
        standby_log = (tmp_path / "routing-2.log").read_text()
        assert "routing stands by: another instance leads" in standby_log
        assert "routing leads (epoch 2)" in standby_log
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(15)
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
        stop.set()
        with contextlib.suppress(Exception):
            await relaying
        await producer.stop()
