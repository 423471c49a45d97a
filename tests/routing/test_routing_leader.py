"""Two routing processes on the real broker and a fresh database: one leads, the other stands by.

- The leader is killed (SIGKILL) with tickets in flight: the stand-by takes over, every ticket is
  routed and assigned exactly once, and later tickets are routed by the new leader.
- The leader's lock session is cut (its process lives on): it steps down to stand-by, the other one
  leads; when that one is killed in turn, the first leads again and routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import asyncpg
import pytest
from routing_builders import joined, opened
from support.polling import eventually
from support.relay import relay_from_now

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.leadership import lock_key
from ticketflow.messaging.producer import make_producer

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
HOST = socket.gethostname()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_log(path: Path) -> IO[str]:
    return path.open("w")  # closed by Cluster.close


@dataclass
class Cluster:
    """Routing processes sharing one leader name, their topics fed by a relay."""

    pool: asyncpg.Pool
    env: dict[str, str]
    folder: Path
    name: str
    store: EventStore = field(init=False)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = EventStore(self.pool)

    def spawn(self) -> subprocess.Popen[str]:
        log = open_log(self.folder / f"routing-{len(self.processes) + 1}.log")
        env = {**self.env, "TICKETFLOW_ROUTING_PORT": str(free_port()), "TICKETFLOW_ROUTING_OPS_PORT": str(free_port())}
        process = subprocess.Popen(
            [sys.executable, "-m", "ticketflow.routing"], env=env, stdout=log, stderr=log, text=True
        )
        self.logs.append(log)
        self.processes.append(process)
        return process

    def log_of(self, process: subprocess.Popen[str]) -> str:
        return (self.folder / f"routing-{self.processes.index(process) + 1}.log").read_text()

    async def leader(self) -> tuple[int, str] | None:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            row = await self.pool.fetchrow("SELECT epoch, holder FROM service_leaders WHERE name = $1", self.name)
            return None if row is None else (row["epoch"], row["holder"])
        return None

    async def leads(self, epoch: int, process: subprocess.Popen[str], within: float) -> None:
        async def check() -> bool:
            return await self.leader() == (epoch, f"{HOST}:{process.pid}")

        await eventually(check, f"process {process.pid} leads with epoch {epoch}", within)

    async def one_leads(
        self, epoch: int, processes: tuple[subprocess.Popen[str], ...], within: float
    ) -> subprocess.Popen[str]:
        """Which of `processes` leads with `epoch`, once one does."""
        holders = {f"{HOST}:{process.pid}": process for process in processes}
        found: list[subprocess.Popen[str]] = []

        async def check() -> bool:
            current = await self.leader()
            if current is not None and current[0] == epoch and current[1] in holders:
                found.append(holders[current[1]])
            return bool(found)

        await eventually(check, f"one of {sorted(holders)} leads with epoch {epoch}", within)
        return found[0]

    async def agents(self, *names: str) -> None:
        now = datetime.now(UTC)
        for agent in names:
            events = joined(agent, "box-l1", capacity=100)
            await self.store.append(agent_stream(agent), 0, [NewEvent(new_event_id(), ev, now) for ev in events])

    async def new_tickets(self, count: int) -> list[uuid.UUID]:
        now, made = datetime.now(UTC), [uuid.uuid4() for _ in range(count)]
        for t in made:
            facts = [opened(t, "bitrix24-box", "box"), e.PreflightPassed(t, "installation")]
            await self.store.append(ticket_stream(t), 0, [NewEvent(new_event_id(), ev, now) for ev in facts])
        return made

    async def decisions(self, t: uuid.UUID) -> list[str]:
        kinds = [type(env.event).__name__ for env in await self.store.read_stream(ticket_stream(t))]
        return [k for k in kinds if k in {"TicketRouted", "TicketAssigned"}]

    async def all_assigned(self, tickets: list[uuid.UUID], within: float) -> None:
        async def check() -> bool:
            for t in tickets:
                if "TicketAssigned" not in await self.decisions(t):
                    return False
            return True

        await eventually(check, "every ticket assigned", within)
        for t in tickets:
            assert await self.decisions(t) == ["TicketRouted", "TicketAssigned"], t

    async def leader_and_stand_by(
        self, agents: tuple[str, str], tickets: int
    ) -> tuple[subprocess.Popen[str], subprocess.Popen[str], list[uuid.UUID]]:
        """A leader (epoch 1) and a stand-by, two agents, and `tickets` new tickets all assigned."""
        first = self.spawn()
        await self.leads(1, first, 60)
        second = self.spawn()
        # (The leader consumes as soon as its term begins: without this wait it could be killed
        # before the second process has even started.)
        await eventually(lambda: "routing stands by" in self.log_of(second), "the second process stands by", 60)
        await self.agents(*agents)
        before = await self.new_tickets(tickets)
        await self.all_assigned(before, 90)
        return first, second, before

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(15)
            if process.poll() is None:
                process.kill()
        for log in self.logs:
            log.close()


@contextlib.asynccontextmanager
async def cluster(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, new_topic: object, folder: Path
) -> AsyncIterator[Cluster]:
    ticket_events = await new_topic(partitions=3, suffix="ticket-events")  # type: ignore[operator]
    agent_events = await new_topic(partitions=1, suffix="agent-events")  # type: ignore[operator]
    commands = await new_topic(partitions=1, suffix="commands")  # type: ignore[operator]
    stop = asyncio.Event()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    relay = await relay_from_now(
        EventStore(pool), kafka_bootstrap, {TICKET_EVENTS: ticket_events, AGENT_EVENTS: agent_events}
    )
    relaying = asyncio.create_task(relay.run(stop))
    name = f"routing-{uuid.uuid4().hex[:8]}"  # the database is this module's: one leader name per test
    env = {
        **os.environ,
        "TICKETFLOW_PG_DSN": pg_database,
        "TICKETFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKETFLOW_ROUTING_GROUP": f"routing-{uuid.uuid4()}",
        "TICKETFLOW_ROUTING_EVENT_TOPICS": f"{ticket_events},{agent_events}",
        "TICKETFLOW_ROUTING_COMMANDS_TOPIC": commands,
        "TICKETFLOW_ROUTING_LEADER_NAME": name,
        "TICKETFLOW_ROUTING_LEADER_POLL_SECONDS": "0.5",
        "TICKETFLOW_ROUTING_TICK_SECONDS": "1",
    }
    routing = Cluster(pool, env, folder, name)
    try:
        yield routing
    finally:
        routing.close()
        stop.set()
        with contextlib.suppress(Exception):
            await relaying
        await producer.stop()


async def test_the_stand_by_takes_over_when_the_leader_is_killed(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, kafka_topic_factory: object, tmp_path: Path
) -> None:
    async with cluster(pool, pg_database, kafka_bootstrap, kafka_topic_factory, tmp_path) as routing:
        first, second, before = await routing.leader_and_stand_by(("killed-anna", "killed-boris"), 1)
        assert second.poll() is None and await routing.leader() == (1, f"{HOST}:{first.pid}")

        in_flight = await routing.new_tickets(30)
        first.send_signal(signal.SIGKILL)  # no goodbye: the lock goes with its session
        first.wait(10)
        await routing.leads(2, second, 30)
        after = await routing.new_tickets(5)
        await routing.all_assigned(before + in_flight + after, 120)
        assert second.poll() is None
        log = routing.log_of(second)
        assert "routing stands by: another instance leads" in log
        assert "routing leads (epoch 2)" in log


async def test_a_leader_that_loses_its_lock_session_steps_down_and_can_lead_again(
    pool: asyncpg.Pool, pg_database: str, kafka_bootstrap: str, kafka_topic_factory: object, tmp_path: Path
) -> None:
    async with cluster(pool, pg_database, kafka_bootstrap, kafka_topic_factory, tmp_path) as routing:
        first, second, before = await routing.leader_and_stand_by(("cut-anna", "cut-boris"), 3)

        # The leader's lock session is cut (a network blip, an administrator): its process lives on.
        key = lock_key(routing.name) & 0xFFFFFFFFFFFFFFFF  # a bigint key is (classid, objid) in pg_locks
        lock_holder = """
            SELECT pg_terminate_backend(pid) FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid
              AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """  # (the relay's lock is left alone)
        assert await pool.fetchval(lock_holder, key >> 32, key & 0xFFFFFFFF)
        # Either process may take epoch 2: the stand-by at its next poll, or the old leader, which
        # steps down and competes again at once on a new session (seen winning by 17 ms).
        leader = await routing.one_leads(2, (first, second), 30)
        other = second if leader is first else first
        middle = await routing.new_tickets(5)
        await routing.all_assigned(before + middle, 120)
        await eventually(lambda: "stepping down to stand-by" in routing.log_of(first), "the old leader steps down", 30)
        assert first.poll() is None  # alive, standing by or leading again

        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        await routing.leads(3, other, 30)
        after = await routing.new_tickets(5)
        await routing.all_assigned(before + middle + after, 120)
        assert "routing leads (epoch 3)" in routing.log_of(other)
        first_log = routing.log_of(first)
        assert "routing leads (epoch 2)" in first_log or "routing leads (epoch 3)" in first_log  # led again
