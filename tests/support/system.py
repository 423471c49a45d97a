"""The services as real processes, beside everybody else's on the one shared broker, for outage and chaos
tests (issue 16; reused by the chaos tests).

Each run has its own topics (a suffix on every name, `.dlq` included) and consumer groups, each service
its own free port, and the database is the caller's (a private cluster, tests/support/private_postgres.py,
so it may be stopped). The chat platforms are the local fakes (tests/fakes), served by the test process
itself; notifications gets a configuration file pointing at them.

    topics = PrivateTopics.named("outage")
    await topics.create(bootstrap)
    async with ChatPlatforms.running(tmp) as platforms:
        system = System(dsn, bootstrap, topics, platforms, logs=tmp)
        await system.start("projector", "intake", "preflight", "notifications")
        system["notifications"].kill()            # SIGKILL
        await system["notifications"].restart()
        status, body = await system["intake"].readiness()
        await system.stop()
    await topics.delete(bootstrap)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp

from support.demo import ROOT, demo_secrets
from support.private_postgres import free_port
from ticketflow.contracts.topics import AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS, TICKET_EVENTS

# The demo's accounts (deskconfig's packaged desks, deploy/demo.env): the public client-support bot, a
# customer's bot under contract, the box portal.
EXPRESS_BOTS = {
    uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee"): "TICKETFLOW_EXPRESS_CLIENT_BOT_SECRET",
    uuid.UUID("3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"): "TICKETFLOW_EXPRESS_ACME_BOT_SECRET",
}
PUBLIC_BOT = next(iter(EXPRESS_BOTS))
PUBLIC_BOT_HOST = "cts.express.example.ru"


@dataclass(frozen=True)
class PrivateTopics:
    """This run's names of the system's topics (each has a `.dlq`)."""

    chat_inbound: str
    ticket_events: str
    chat_replies: str
    ticket_commands: str
    agent_events: str

    @classmethod
    def named(cls, label: str) -> PrivateTopics:
        suffix = f"{label}-{uuid.uuid4().hex[:8]}"
        return cls(*(f"{name}.{suffix}" for name in (CHAT_INBOUND, TICKET_EVENTS, CHAT_REPLIES, TICKET_COMMANDS,
                                                      AGENT_EVENTS)))  # fmt: skip

    @property
    def all(self) -> list[str]:
        names = [self.chat_inbound, self.ticket_events, self.chat_replies, self.ticket_commands, self.agent_events]
        return [*names, *(f"{name}.dlq" for name in names)]

    @property
    def dead_letter_topics(self) -> list[str]:
        return [name for name in self.all if name.endswith(".dlq")]

    async def create(self, bootstrap: str, partitions: int = 4) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, 1 if name.endswith(".dlq") else partitions, 1) for name in self.all]
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # a consumer subscribing before the leaders exist may wait minutes
                described = await admin.describe_topics(self.all)
                if all(d.get("error_code", 0) == 0 and all(p.get("leader", -1) >= 0 for p in d["partitions"])
                       for d in described):  # fmt: skip
                    return
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def delete(self, bootstrap: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(self.all)
        finally:
            await admin.close()


# What points at `make run`'s demo Bitrix24 portal and the files it writes: this system runs on the
# packaged desks and the library's defaults instead.
DEMO_PLATFORM_SETTINGS = frozenset({
    "TICKETFLOW_DESK_CONFIG_DIR", "TICKETFLOW_B24_OAUTH_SERVER", "TICKETFLOW_B24_ALLOWED_NETWORKS",
    "TICKETFLOW_B24_ALLOWED_PORTS", "TICKETFLOW_B24_CA_FILE", "TICKETFLOW_INTAKE_B24_EVENTS_URL",
})  # fmt: skip


@dataclass
class ChatPlatforms:
    """The local fake platforms notifications delivers to, and its configuration file naming them. Bitrix24
    is not among them: its portals come from verified installs (tests/intake/test_bitrix24_lifecycle.py)."""

    botx: FakeBotX
    smtp: FakeSmtp
    config_path: Path

    @classmethod
    @asynccontextmanager
    async def running(cls, directory: Path) -> AsyncIterator[ChatPlatforms]:
        secrets = demo_secrets()
        botx = FakeBotX({bot: secrets[env] for bot, env in EXPRESS_BOTS.items()})
        smtp = FakeSmtp()
        async with AsyncExitStack() as stack:
            for fake in (botx, smtp):
                await stack.enter_async_context(fake.running())
            platforms = cls(botx, smtp, directory / "notifications.toml")
            platforms.config_path.write_text(platforms.config_toml(), encoding="utf-8")
            yield platforms

    def config_toml(self) -> str:
        bots = "".join(
            f'[[express_bots]]\nbot_id = "{bot}"\ncts_url = "{self.botx.base_url}"\nsecret_env = "{env}"\n\n'
            for bot, env in EXPRESS_BOTS.items()
        )
        return f"""{bots}[[smtp_relays]]
name = "local"
hostname = "127.0.0.1"
port = {self.smtp.port}
sender = "support@ticketflow.local"

[[desks]]
desk_id = "express"
email_relay = "local"
"""


@dataclass
class ServiceProcess:
    """One service as `python -m ticketflow.<name>` on its own port; its output goes to `log_path`."""

    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {self.name} started at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"ticketflow.{self.name}"], env=self.env, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    async def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            status, _ = await self.readiness()
            if status == 200:
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.name} did not become ready within {timeout_s:.0f}s:\n{self.log_tail()}")

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """`/health/ready`'s status and body (0 and {} when nothing answers)."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(f"{self.url}/health/ready")
            return answer.status_code, answer.json()
        except (httpx.HTTPError, json.JSONDecodeError):
            return 0, {}

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL: no goodbye) and reap the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    async def restart(self) -> None:
        self.start()
        await self.wait_ready()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class System:
    """The services of one run, each configured for this run's database, topics, groups and platforms."""

    dsn: str
    bootstrap: str
    topics: PrivateTopics
    platforms: ChatPlatforms
    logs: Path
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # per service: extra variables
    common: dict[str, str] = field(default_factory=dict)  # every service: extra variables (a desk directory)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def env_of(self, name: str, port: int) -> dict[str, str]:
        t, group = self.topics, f"{name}-{self.topics.ticket_events}"
        per_service = {
            "projector": {"RELAY_TOPICS": json.dumps({TICKET_EVENTS: t.ticket_events, AGENT_EVENTS: t.agent_events})},
            "intake": {"TOPIC": t.chat_inbound, "GROUP": group, "COMMANDS_TOPIC": t.ticket_commands,
                       "COMMANDS_GROUP": f"{group}-commands", "REPLIES_TOPIC": t.chat_replies},
            "preflight": {"TOPIC": t.ticket_events, "GROUP": group},
            "notifications": {"TOPIC": t.ticket_events, "GROUP": group, "REPLIES_TOPIC": t.chat_replies,
                              "REPLIES_GROUP": f"{group}-replies", "CONFIG": str(self.platforms.config_path)},
            "routing": {"EVENT_TOPICS": f"{t.ticket_events},{t.agent_events}", "COMMANDS_TOPIC": t.ticket_commands,
                        "GROUP": group},
            "sla": {"TOPIC": t.ticket_events, "GROUP_ID": group},
            "queries": {},  # reads the database only
            "dashboard": {"COMMANDS_TOPIC": t.ticket_commands},  # and QUERIES_URL, once queries runs
        }[name]  # fmt: skip
        prefix = f"TICKETFLOW_{name.upper()}_"
        secrets = {k: v for k, v in demo_secrets().items() if k not in DEMO_PLATFORM_SETTINGS}
        inherited = {k: v for k, v in os.environ.items() if k not in DEMO_PLATFORM_SETTINGS}
        return {
            **inherited,
            **secrets,
            "TICKETFLOW_PG_DSN": self.dsn,
            "TICKETFLOW_KAFKA_BOOTSTRAP": self.bootstrap,
            "TICKETFLOW_ENSURE_TOPICS": "false",  # this run's topics exist; the shared ones are not ours
            f"{prefix}PORT": str(port),
            **{prefix + key: value for key, value in per_service.items()},
            **{prefix + key: value for key, value in self.overrides.get(name, {}).items()},
            **self.common,
        }

    async def start(self, *names: str) -> None:
        for name in names:
            port = free_port()
            service = ServiceProcess(name, self.env_of(name, port), port, self.logs / f"{name}.log")
            self.services[name] = service
            service.start()
        await asyncio.gather(*(self.services[name].wait_ready() for name in names))

    async def readiness(self) -> dict[str, tuple[int, dict[str, Any]]]:
        names = list(self.services)
        answers = await asyncio.gather(*(self.services[n].readiness() for n in names))
        return dict(zip(names, answers, strict=True))

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
