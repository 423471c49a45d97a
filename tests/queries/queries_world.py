"""A small world for the query API's tests: two desks' tickets from realistic histories, projected, three
tokens (one per desk, one for both), and the API composed on it (in process, or as a real process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from support.ticket_histories import Step, append_steps, histories, roster

from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.projector.app import Projector
from ticketflow.queries.adapters.checkpoints import Checkpoints
from ticketflow.queries.app import READ_MODELS, Queries
from ticketflow.queries.domain.routes import route_params
from ticketflow.queries.domain.tokens import grant_toml, grants, parse_grants
from ticketflow.queries.http import api, endpoints
from ticketflow.queries.openapi import encoded

DESKS = load_desks()
BOX, EXPRESS = "bitrix24-box", "express"
BOX_TOKEN = "tfq_box-wallboard-token-0000000000000000000000"
EXPRESS_AGENT_TOKEN = "tfq_express-agent-token-00000000000000000000000"
BOTH_TOKEN = "tfq_ops-token-both-desks-00000000000000000000000"
TOKENS_TOML = (
    grant_toml("box wallboard", BOX_TOKEN, ["read:bitrix24-box"], None)
    + grant_toml("express agent", EXPRESS_AGENT_TOKEN, ["agent:express"], "express-agent-1")
    + grant_toml("ops", BOTH_TOKEN, ["read:*"], None)
)
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    store: EventStore
    desks: DeskRegistry
    tickets: dict[str, list[str]] = field(default_factory=dict)  # desk -> ticket ids (text)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def project(self) -> None:
        await Projector(self.store, self.desks).catch_up()


async def fill(store: EventStore, count: int, seed: int = 11) -> World:
    """`count` tickets' histories appended and projected."""
    steps: list[Step] = roster(START)
    made = list(histories(1, count, random.Random(seed), START, spacing_s=120))
    for _, history in made:
        steps += history
    steps.sort(key=lambda s: s.at)
    await append_steps(store, steps, {})
    world = World(store, DESKS)
    await world.project()
    for row in await store.pool.fetch("SELECT desk_id, ticket_id FROM ticket_list"):
        world.tickets.setdefault(row["desk_id"], []).append(str(row["ticket_id"]))
    return world


@contextlib.asynccontextmanager
async def api_client(pool: asyncpg.Pool, *, max_limit: int = 500) -> AsyncIterator[httpx.AsyncClient]:
    """The query API composed in this process (as `main.build` composes it), with its checkpoint listener."""
    checkpoints = Checkpoints(pool, READ_MODELS)
    await checkpoints.refresh()
    routes = endpoints(route_params(sorted(DESKS.desks), max_limit=max_limit, max_wait_ms=10_000))
    tokens = grants(parse_grants(TOKENS_TOML, None), DESKS.desks)
    app = Starlette(routes=api(routes, Queries(pool, DESKS, checkpoints), tokens, encoded(routes)))
    stop = asyncio.Event()
    listening = asyncio.create_task(checkpoints.run(stop))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://queries") as client:
            yield client
    finally:
        stop.set()
        await listening


async def every_page(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while True:
        page = await client.get(path, params={**params, "limit": 7, **({"cursor": cursor} if cursor else {})},
                                headers=headers)  # fmt: skip
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["tickets"] if "tickets" in body else body["agents"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


@dataclass
class RunningQueries:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


async def start_queries(dsn: str, bootstrap: str, tmp: Path, extra_env: dict[str, str] | None = None) -> RunningQueries:
    """`python -m ticketflow.queries` as a real process on a free port, ready."""
    tokens = tmp / "tokens.toml"
    tokens.write_text(TOKENS_TOML)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "TICKETFLOW_PG_DSN": dsn,
        "TICKETFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "TICKETFLOW_ENSURE_TOPICS": "false",
        "TICKETFLOW_QUERIES_PORT": str(port),
        "TICKETFLOW_QUERIES_TOKENS_FILE": str(tokens),
        **(extra_env or {}),
    }
    log_path = tmp / f"queries-{port}.log"
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
        [sys.executable, "-m", "ticketflow.queries"], env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"queries exited with {process.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health/ready")).status_code == 200:
                    return RunningQueries(base_url, process, log_path)
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError(f"queries did not become ready:\n{log_path.read_text()}")


def stop_queries(service: RunningQueries) -> None:
    service.process.send_signal(signal.SIGTERM)
    try:
        service.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        service.process.kill()
