"""Where the tests' Kafka and PostgreSQL come from: given addresses, Docker, or local scripts.

Order for each service (see docs/infrastructure.md):
1. the address in TICKETFLOW_KAFKA_BOOTSTRAP / TICKETFLOW_PG_DSN (or its default), if it answers;
2. a Docker engine, if one answers a ping: containers from the same images as docker-compose.yml;
3. deploy/scripts/infra-up.sh, which starts both on 127.0.0.1 without Docker.
If none works the caller fails the run with `InfraUnavailableError`'s message: never a skip.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ticketflow.eventstore.connection import DEFAULT_DSN

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_ENV = "TICKETFLOW_KAFKA_BOOTSTRAP"
PG_ENV = "TICKETFLOW_PG_DSN"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PG_DSN = DEFAULT_DSN
INFRA_UP_SCRIPT = REPO_ROOT / "deploy" / "scripts" / "infra-up.sh"
FIX_HINT = (
    "run `make infra-up` (needs Java 17 and Maven; PostgreSQL comes from apt), start Docker, "
    f"or set {KAFKA_ENV} / {PG_ENV} to servers that answer"
)


class InfraUnavailableError(RuntimeError):
    """No way to reach a service: the message says what is missing and how to fix it."""


def pinned_kafka_version() -> str:
    """The broker version pinned in deploy/kafka/pom.xml (docker images must use the same)."""
    pom = (REPO_ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    if match is None:
        raise InfraUnavailableError("deploy/kafka/pom.xml has no <kafka.version>")
    return match.group(1).strip()


def _load_kafka_probe() -> ModuleType:
    # deploy/scripts is not a package; load the stdlib-only probe the shell scripts use.
    spec = importlib.util.spec_from_file_location("kafka_probe", REPO_ROOT / "deploy/scripts/kafka_probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kafka_problem(bootstrap: str) -> str | None:
    """None if some server in `bootstrap` answers a Kafka metadata request, else why not."""
    probe = _load_kafka_probe()
    problems = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            probe.probe(host, int(port), 3.0)
            return None
        except (OSError, ValueError, probe.NotKafkaError) as error:
            problems.append(f"{address}: {error}")
    return "; ".join(problems)


async def pg_problem(dsn: str) -> str | None:
    """None if `dsn` accepts a login and a query, else why not."""
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
    return None


def docker_engine_answers() -> bool:
    """True only if a Docker engine answers a ping (testcontainers fails in its constructor without one)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, permission denied, engine down: all mean "no Docker"
        return False


def run_local_infra_up() -> str:
    """Run deploy/scripts/infra-up.sh once; return its output, or raise with its output."""
    result = subprocess.run(
        ["bash", str(INFRA_UP_SCRIPT)], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise InfraUnavailableError(f"{INFRA_UP_SCRIPT.relative_to(REPO_ROOT)} failed:\n{output}")
    return output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_kafka_container(version: str) -> tuple[Any, str]:
    """apache/kafka:<version> in KRaft mode on a free host port; returns (container, bootstrap)."""
    from testcontainers.core.container import DockerContainer

    host_port = _free_port()
    container = DockerContainer(f"apache/kafka:{version}").with_bind_ports(9092, host_port)
    for key, value in kafka_container_env(f"127.0.0.1:{host_port}").items():
        container = container.with_env(key, value)
    container.start()
    bootstrap = f"{container.get_container_host_ip()}:{host_port}"
    wait_until(lambda: kafka_problem(bootstrap), timeout_s=120, what=f"apache/kafka:{version}")
    return container, bootstrap


def kafka_container_env(advertised: str) -> dict[str, str]:
    """The apache/kafka image's settings: the same single-node settings as deploy/kafka/server.properties."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{advertised}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }


def start_pg_container() -> tuple[Any, str]:
    """postgres:15 with role/database ticketflow and pg_trgm; returns (container, dsn)."""
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        "postgres:15", username="ticketflow", password="ticketflow", dbname="ticketflow", driver=None
    )
    container.start()
    dsn = container.get_connection_url(driver=None)

    async def add_extension() -> None:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        finally:
            await connection.close()

    run_coroutine(add_extension)
    return container, dsn


def run_coroutine(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, in a worker thread: the test session's event loop
    (pytest-asyncio) lives in this thread and must not be replaced or closed by asyncio.run."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def wait_until(problem: Callable[[], str | None], timeout_s: float, what: str) -> None:
    """Poll `problem` until it returns None; raise with the last problem after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (last := problem()) is not None:
        if time.monotonic() > deadline:
            raise InfraUnavailableError(f"{what} did not answer within {timeout_s:.0f}s: {last}")
        time.sleep(0.5)


def configured(env_name: str, default: str) -> tuple[str, bool]:
    """(address, explicitly_chosen): an env value equal to the default counts as not chosen."""
    value = os.environ.get(env_name, "").strip()
    return (value, True) if value and value != default else (default, False)


class InfraSelector:
    """Finds (or starts) each service once per test session; `close()` stops only containers it started."""

    def __init__(self) -> None:
        self._containers: list[Any] = []
        self._docker: bool | None = None
        self._local_output: str | None = None
        self._local_error: InfraUnavailableError | None = None

    def kafka_bootstrap(self) -> str:
        address, chosen = configured(KAFKA_ENV, DEFAULT_KAFKA_BOOTSTRAP)
        return self._select("Kafka", KAFKA_ENV, address, chosen, kafka_problem, self._kafka_from_docker)

    def pg_dsn(self) -> str:
        address, chosen = configured(PG_ENV, DEFAULT_PG_DSN)
        return self._select("PostgreSQL", PG_ENV, address, chosen, self._pg_problem, self._pg_from_docker)

    def close(self) -> None:
        for container in reversed(self._containers):
            container.stop()
        self._containers.clear()

    @staticmethod
    def _pg_problem(dsn: str) -> str | None:
        return run_coroutine(lambda: pg_problem(dsn))

    def _select(
        self,
        service: str,
        env_name: str,
        address: str,
        chosen: bool,
        problem_at: Callable[[str], str | None],
        from_docker: Callable[[], str],
    ) -> str:
        first_problem = problem_at(address)
        if first_problem is None:
            return address
        if chosen:
            # Someone asked for this exact server: starting another one elsewhere would hide their mistake.
            raise InfraUnavailableError(
                f"{env_name}={address} does not answer: {first_problem}. Fix: start that server, "
                f"or unset {env_name} to use 127.0.0.1 (started by deploy/scripts/infra-up.sh if needed)"
            )
        if self._docker_answers():
            return from_docker()
        self._run_local_once()
        if (problem := problem_at(address)) is None:
            return address
        raise InfraUnavailableError(
            f"{service} is unreachable at {address} ({problem}); no Docker engine answered; "
            f"deploy/scripts/infra-up.sh said:\n{self._local_output or self._local_error}\nFix: {FIX_HINT}"
        )

    def _docker_answers(self) -> bool:
        if self._docker is None:
            self._docker = docker_engine_answers()
        return self._docker

    def _run_local_once(self) -> None:
        if self._local_output is not None:
            return
        if self._local_error is not None:
            raise self._local_error
        try:
            self._local_output = run_local_infra_up()
        except InfraUnavailableError as error:
            self._local_error = InfraUnavailableError(f"{error}\nFix: {FIX_HINT}")
            raise self._local_error from error

    def _kafka_from_docker(self) -> str:
        container, bootstrap = start_kafka_container(pinned_kafka_version())
        self._containers.append(container)
        return bootstrap

    def _pg_from_docker(self) -> str:
        container, dsn = start_pg_container()
        self._containers.append(container)
        return dsn


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def dsn_with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


class KafkaTopicFactory:
    """Creates uniquely named topics (and deletes them when the test ends)."""

    def __init__(self, admin: AIOKafkaAdminClient, prefix: str) -> None:
        self._admin = admin
        self._prefix = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:80]
        self.created: list[str] = []

    async def __call__(self, partitions: int = 1, suffix: str = "", *, name: str | None = None) -> str:
        """A new topic; `name`: exactly this name (e.g. the `.dlq` of a topic made before)."""
        name = name or f"{self._prefix}{('-' + suffix) if suffix else ''}-{uuid.uuid4().hex[:8]}"
        await self._admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        self.created.append(name)
        await self._wait_for_leaders(name, partitions)
        return name

    async def _wait_for_leaders(self, name: str, partitions: int) -> None:
        # A consumer that subscribes before the partitions have leaders may see no partitions for minutes.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = await self._admin.describe_topics([name])
            ready = [p for p in described[0].get("partitions", []) if p.get("leader", -1) >= 0]
            if described[0].get("error_code", 0) == 0 and len(ready) == partitions:
                return
            await asyncio.sleep(0.1)
        raise InfraUnavailableError(f"topic {name}: partitions have no leader after 30 s")

    async def delete_all(self) -> None:
        if self.created:
            await self._admin.delete_topics(self.created)
            self.created.clear()


async def create_database(pg_dsn: str, name: str) -> str:
    """Create an empty database `name` with pg_trgm (a trusted extension: its owner may create it); its DSN."""
    server = await asyncpg.connect(pg_dsn)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    dsn = dsn_with_database(pg_dsn, name)
    database = await asyncpg.connect(dsn)
    try:
        await database.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    finally:
        await database.close()
    return dsn


async def drop_database(server: asyncpg.Connection, name: str) -> None:
    """Drop a test database even if a test left connections open.

    Not `WITH (FORCE)`: that refuses when an autovacuum worker is in the database (a non-superuser may not
    terminate it). Plain DROP DATABASE stops autovacuum itself; our own role's leftovers we end here.
    """
    deadline = time.monotonic() + 30
    while True:
        await server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
            name,
        )
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except asyncpg.ObjectInUseError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
