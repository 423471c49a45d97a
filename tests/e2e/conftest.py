"""The whole system as seven real processes (and the local fake chat platforms) on the real broker and
a fresh database, started once for every end-to-end module here. Needs ports 8001-8007 and 8767 free (a
system started by `make run` shares the services' consumer groups: `make stop` first)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from support.demo import ROOT, demo_secrets
from support.eventstore import migrated_pool
from support.infra import create_database, drop_database, dsn_with_database, unique_name

from ticketflow.runtime.settings import SERVICE_PORTS

ORDER = ("projector", "queries", "intake", "preflight", "routing", "sla", "notifications")


@pytest.fixture(scope="package")
def system_database(pg_dsn: str) -> Iterator[str]:
    """A fresh database for the system, kept for every module of this package."""
    name = unique_name("tf_e2e")
    asyncio.run(create_database(pg_dsn, name))
    try:
        yield dsn_with_database(pg_dsn, name)
    finally:
        asyncio.run(_drop_database(pg_dsn, name))


async def _drop_database(pg_dsn: str, name: str) -> None:
    server = await asyncpg.connect(pg_dsn)
    try:
        await drop_database(server, name)
    finally:
        await server.close()


@pytest.fixture(scope="package")
def system(system_database: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN of the running system's database."""
    pg_database = system_database
    busy = [name for name, port in {**SERVICE_PORTS, "platforms": 8767}.items() if _answers(port)]
    if busy:
        pytest.fail(f"services already answer on their ports ({busy}): stop them with `make stop` first")
    asyncio.run(_migrate(pg_database))
    logs = tmp_path_factory.mktemp("system")
    env = {
        **os.environ,
        **demo_secrets(),
        "TICKETFLOW_PG_DSN": pg_database,
        "TICKETFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    platforms = subprocess.Popen(  # the chat platforms notifications delivers to (ports of its local.toml)
        [sys.executable, str(ROOT / "deploy" / "demo_platforms.py")],
        env=env,
        cwd=ROOT,
        stdout=(logs / "platforms.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    _wait_platforms(platforms, logs)  # they write the CA and desk files the services read at start-up
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"ticketflow.{name}"],
            env=env,
            cwd=ROOT,
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name in ORDER
    }
    processes["platforms"] = platforms
    try:
        for name in ORDER:
            _wait_ready(name, processes[name], logs)
        yield pg_database
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def _migrate(dsn: str) -> None:
    pool = await migrated_pool(dsn)
    await pool.close()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def _wait_platforms(process: subprocess.Popen[bytes], logs: Path) -> None:
    for _ in range(60):
        if process.poll() is not None:
            pytest.fail(f"the demo platforms exited with {process.returncode}:\n{(logs / 'platforms.log').read_text()}")
        if _answers(8767):
            return
        time.sleep(0.5)
    pytest.fail(f"the demo platforms never answered:\n{(logs / 'platforms.log').read_text()[-3000:]}")


def _wait_ready(name: str, process: subprocess.Popen[bytes], logs: Path) -> None:
    for _ in range(180):
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{(logs / f'{name}.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{SERVICE_PORTS[name]}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name} never became ready:\n{(logs / f'{name}.log').read_text()[-3000:]}")


@pytest_asyncio.fixture(loop_scope="session")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c
