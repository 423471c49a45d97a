"""Run a service: one HTTP server (health + the service's own routes) whose lifespan starts and
stops the pool, the Kafka broker and the service's background tasks.

Readiness pings the broker and the database (design-notes: the ASGI app keeps serving with a dead
broker, so liveness alone would lie)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvicorn
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ticketflow.runtime.kafka import ensure_topics, make_broker
from ticketflow.runtime.settings import Settings
from ticketflow.runtime.telemetry import configure_logging, setup_tracing

log = logging.getLogger(__name__)
BackgroundTask = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Service:
    """What a service's main.py wires: its settings, broker, pool and what runs in the background."""

    settings: Settings
    broker: KafkaBroker
    pool: asyncpg.Pool | None = None
    routes: list[BaseRoute] = field(default_factory=list)
    background: list[BackgroundTask] = field(default_factory=list)
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def new_service(name: str, *, routes: Sequence[BaseRoute] = ()) -> Service:
    settings = Settings.from_env(name)
    configure_logging(settings.log_level, name)
    setup_tracing(name, console=settings.otel_console)
    return Service(settings, make_broker(settings.kafka_bootstrap, name), routes=list(routes))


async def ready(service: Service) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        checks["kafka"] = "ok" if await service.broker.ping(timeout=2) else "unreachable"
    except Exception as exc:
        checks["kafka"] = f"error: {exc!r}"
    if service.pool is not None:
        try:
            await asyncio.wait_for(service.pool.fetchval("SELECT 1"), timeout=2)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"error: {exc!r}"
    return checks


def asgi_app(service: Service) -> Starlette:
    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"service": service.settings.service, "status": "live"})

    async def readiness(_: Request) -> JSONResponse:
        checks = await ready(service)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"service": service.settings.service, "ready": ok, "checks": checks}, 200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        s = service.settings
        if service.pool is None:
            service.pool = await asyncpg.create_pool(s.pg_dsn, min_size=1, max_size=10)
        await ensure_topics(s.kafka_bootstrap)
        await service.broker.start()
        for hook in service.on_start:
            await hook()
        tasks = [asyncio.create_task(_supervised(task, service.stop)) for task in service.background]
        log.info("%s started on %s:%s", s.service, s.http_host, s.http_port)
        try:
            yield
        finally:
            service.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.broker.stop()
            await service.pool.close()

    routes: list[BaseRoute] = [Route("/health/live", live), Route("/health/ready", readiness), *service.routes]
    return Starlette(routes=routes, lifespan=lifespan)


async def _supervised(task: BackgroundTask, stop: asyncio.Event) -> None:
    """Keep a background loop alive: log a crash and restart it after a pause, until stopped."""
    while not stop.is_set():
        try:
            await task(stop)
        except Exception:
            log.exception("background task %s crashed; restarting", getattr(task, "__name__", task))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def run(service: Service, app: Any | None = None) -> None:
    s = service.settings
    uvicorn.run(app or asgi_app(service), host=s.http_host, port=s.http_port, log_level=s.log_level.lower())
