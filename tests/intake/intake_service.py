"""Starting the intake service as a real process (uvicorn) on a fresh database and fresh Kafka topics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from intake_payloads import APP_TOKEN, B24_CLIENT_ID, B24_DOMAIN, MEMBER_ID, TENANT_SECRETS, tenants_toml
from support.metrics import sample_value

from ticketflow.contracts.chat import ChatReply, chat_reply_decoder
from ticketflow.eventstore import migrate
from ticketflow.messaging.dead_letters import DeadLetter

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def migrate_intake(dsn: str) -> None:
    """The event store's, the Bitrix24 installs' and intake's migrations only (other components are not
    under test here)."""
    conn = await asyncpg.connect(dsn)
    try:
        wanted = [m for m in migrate.discover() if m.component in {"eventstore", "runtime", "bitrix24", "intake"}]
        await migrate.apply_all(conn, wanted)
    finally:
        await conn.close()


async def seed_install(
    pool: asyncpg.Pool, member_id: str = MEMBER_ID, domain: str = B24_DOMAIN, token: str = APP_TOKEN
) -> None:
    """A portal installed as a verified install leaves it (tests about what follows an install; the
    verification itself: test_bitrix24_lifecycle.py). Its OAuth tokens are placeholders nobody calls."""
    await pool.execute(
        """INSERT INTO bitrix24_installs (member_id, client_id, domain, application_token, access_token,
                                          refresh_token, access_expires_at)
           VALUES ($1, $2, $3, $4, 'unused', 'unused', now() + interval '1 day')
           ON CONFLICT (member_id) DO UPDATE SET domain = excluded.domain,
               application_token = excluded.application_token""",
        member_id.lower(), B24_CLIENT_ID, domain, token,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningIntake:
    base_url: str
    ops_url: str  # the operations port: /metrics
    pool: asyncpg.Pool
    topic: str
    dead_letter_topic: str
    bootstrap: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10)

    async def metric(self, name: str, **labels: str) -> int:
        """A counter's value on the operations port (summed over the labels not given)."""
        async with httpx.AsyncClient(base_url=self.ops_url, timeout=10) as client:
            text = (await client.get("/metrics")).text
        return int(sample_value(text, name, **labels))

    async def dead_letters(self, count: int, wait_s: float = 15) -> list[DeadLetter]:
        """The first `count` dead letters of chat.inbound (fewer if no more come within `wait_s`)."""
        consumer = AIOKafkaConsumer(
            self.dead_letter_topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        found: list[DeadLetter] = []
        try:
            deadline = asyncio.get_running_loop().time() + wait_s
            while len(found) < count and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                found += [DeadLetter.of(r) for records in batch.values() for r in records]
        finally:
            await consumer.stop()
        return found

    async def eventually(self, probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], wait_s: float = 20) -> T:
        """Poll until `ok(value)`; the consumer records asynchronously after the 202."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            value = await probe()
            if ok(value) or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.1)


async def start_intake(
    dsn: str,
    bootstrap: str,
    tmp: Path,
    *,
    accept: str = "kafka",
    extra_env: dict[str, str] | None = None,
    tenants_text: str | None = None,
) -> RunningIntake:
    topic = f"chat.inbound.test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    port, ops_port = free_port(), free_port()
    tenants = tmp / f"tenants-{port}.toml"
    tenants.write_text(tenants_text or tenants_toml())
    env = {
        **os.environ,
        **TENANT_SECRETS,
        "TICKETFLOW_PG_DSN": dsn,
        "TICKETFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "TICKETFLOW_INTAKE_TENANTS": str(tenants),
        "TICKETFLOW_INTAKE_TOPIC": topic,
        "TICKETFLOW_INTAKE_COMMANDS_TOPIC": "",  # tests never join the real ticket.commands group
        "TICKETFLOW_INTAKE_GROUP": f"intake-test-{uuid.uuid4().hex[:8]}",
        "TICKETFLOW_INTAKE_PORT": str(port),
        "TICKETFLOW_INTAKE_OPS_PORT": str(ops_port),
        "TICKETFLOW_INTAKE_ACCEPT": accept,
        "TICKETFLOW_INTAKE_REPLIES_TOPIC": "",  # the reply relay runs only where a test gives it a topic
        # The payloads' portal domains are real-looking public names: no admin check asks them. Where a
        # test serves a portal (test_admin_check.py), it turns the check on.
        "TICKETFLOW_INTAKE_B24_ADMIN_CHECK": "0",
        **(extra_env or {}),
    }
    log_path = tmp / f"intake-{port}.log"
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
        [sys.executable, "-m", "ticketflow.intake"],
        env=env,
        cwd=REPO,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"intake exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"intake did not become ready:\n{log_path.read_text()}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    ops_url = f"http://127.0.0.1:{ops_port}"
    return RunningIntake(base_url, ops_url, pool, topic, f"{topic}.dlq", bootstrap, process, log_path)


async def stop_intake(service: RunningIntake) -> None:
    await service.pool.close()
    service.process.send_signal(signal.SIGTERM)
    try:
        service.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        service.process.kill()
    admin = AIOKafkaAdminClient(bootstrap_servers=service.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([service.topic, service.dead_letter_topic])
    finally:
        await admin.close()


async def read_replies(bootstrap: str, topic: str, settle_s: float = 1.5) -> list[tuple[bytes, ChatReply]]:
    """Every ChatReply record on the topic with its key, read until nothing new arrived for `settle_s`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[tuple[bytes, ChatReply]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(settle_s * 1000))
            records = [r for part in batch.values() for r in part]
            if not records:
                return found
            found += [(r.key or b"", chat_reply_decoder.decode(r.value or b"")) for r in records]
    finally:
        await consumer.stop()
