"""Run a service: one HTTP server whose lifespan does every service's start-up in one order.

    pool -> topics -> producer -> the service's own start-up (`Service.start(runtime)`: load state,
    lead, build the application, subscribe, register its operators' commands) -> the broker starts
    consuming -> background tasks, the `ops.commands` reader among them (`ops_commands.py`)

Start-up work finishes before the first record is consumed and before the first request is served, so
no service needs a "not ready yet" handshake. Stopping runs backwards: background tasks end, `draining`
hooks finish what is in flight (their offsets are committed while the consumers still run), the broker
stops, `closing` hooks close clients, then the producer and the pool.

Readiness (`/health/ready`) pings the broker and the database (the ASGI app keeps serving with a dead
broker, so liveness alone would lie), reports a consumer waiting on an outage, and turns false while a
background task is down (it is restarted after a crash)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ticketflow.contracts.ops import OpsCommandEnvelope, ReloadDeskConfig
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.outages import Waiting
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.topics import ensure_topics
from ticketflow.runtime.ops_commands import (
    Counts,
    OpsConsumer,
    OpsExecutor,
    OpsHandler,
    OpsHandlers,
    OpsLedger,
    OpsRejected,
    this_instance,
)
from ticketflow.runtime.settings import ServiceSettings, SettingsError, load_settings
from ticketflow.runtime.telemetry import configure_logging, setup_tracing

log = logging.getLogger(__name__)
S = TypeVar("S", bound=ServiceSettings)
BackgroundTask = Callable[[asyncio.Event], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
Check = Callable[[], Awaitable[str]]


@dataclass
class Service:
    """What a service's `main.build` returns: its name, settings, and its start-up work."""

    name: str
    settings: ServiceSettings
    start: Callable[[Runtime], Awaitable[None]]


DOWN_AFTER_CRASH_S = 10.0  # a task that crashed this recently counts as down (a crash loop stays down)


@dataclass
class _Task:
    run: BackgroundTask
    crashed_at: float | None = None
    error: str = ""

    def down(self) -> bool:
        return self.crashed_at is not None and time.monotonic() - self.crashed_at < DOWN_AFTER_CRASH_S


@dataclass
class Runtime:
    """What a service's start-up gets: the pool, the broker, a started producer, and where to put its
    routes, background tasks, hooks and readiness checks."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    producer: AIOKafkaProducer
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    routes: list[BaseRoute] = field(default_factory=list)
    tasks: dict[str, _Task] = field(default_factory=dict)
    draining: list[Hook] = field(default_factory=list)
    closing: list[Hook] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)
    waits: dict[str, Waiting] = field(default_factory=dict)
    service: str = "service"
    ops: OpsHandlers = field(init=False)

    def __post_init__(self) -> None:
        self.ops = OpsHandlers(self.service)

    def dead_letters(self, consumer: str) -> DeadLetterWriter:
        return DeadLetterWriter(self.producer, consumer)

    def serve(self, *routes: BaseRoute) -> None:
        self.routes.extend(routes)

    def background(self, name: str, task: BackgroundTask) -> None:
        """Run `task(stop)` once the broker consumes; restarted after a crash (readiness says so meanwhile)."""
        self.tasks[name] = _Task(task)

    def on_drain(self, hook: Hook) -> None:
        """Before the consumers stop: finish what is in flight (and commit it)."""
        self.draining.append(hook)

    def on_close(self, hook: Hook) -> None:
        """After the consumers stopped: close clients and pools of the service's own."""
        self.closing.append(hook)

    def readiness(self, name: str, check: Check) -> None:
        """A check of the service's own: it answers "ok" or why not."""
        self.checks[name] = check

    def watch(self, name: str, waiting: Waiting) -> None:
        """A consumer's outage state: readiness is false while it waits on one."""
        self.waits[name] = waiting

    def on_ops(self, command_type: type, handler: OpsHandler, *, each_instance: bool = False) -> None:
        """Execute `command_type` from `ops.commands`: `handler(command, envelope)` returns counts for the answer,
        raises `OpsRejected` with the reason. `each_instance`: every running instance applies it (a log
        level, a configuration reload); else one instance of the service executes it (a rebuild)."""
        self.ops.on(command_type, handler, each_instance=each_instance)

    def on_desk_reload(self, reload: Callable[[], Awaitable[Counts]], *refusals: type[BaseException]) -> None:
        """`ReloadDeskConfig` in every instance: `reload()` reads and validates the desk files, swaps them
        in and returns counts; one of `refusals` (a broken file) leaves the running configuration as it
        is and rejects the command with the problem."""

        async def handler(command: ReloadDeskConfig, envelope: OpsCommandEnvelope) -> Counts:
            try:
                return await reload()
            except refusals as error:
                raise OpsRejected(f"desk configuration refused, the running one stays: {error}") from None

        self.on_ops(ReloadDeskConfig, handler, each_instance=True)

    def read_ops_commands(self) -> None:
        """The runtime's own: after the start-up registered the service's commands."""
        s = self.settings
        if not s.ops_topic:
            return
        executor = OpsExecutor(self.ops, OpsLedger(self.pool, this_instance()), self.producer, s.ops_events_topic)
        reader = OpsConsumer(executor, s.kafka_bootstrap, s.ops_topic, s.kafka_security())
        self.background(s.ops_topic, reader.run)
        self.watch(s.ops_topic, reader.waiting)


def make_broker(settings: ServiceSettings, service: str) -> KafkaBroker:
    """The service's FastStream broker (its subscribers are the patterns of ticketflow.messaging). Its
    "Received"/"Processed" lines, two per batch, are logged at DEBUG: at INFO they would be most of a busy
    consumer's log."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=settings.kafka_security().broker_security(),
        client_id=f"ticketflow-{service}",
        middlewares=(KafkaTelemetryMiddleware(),),
        enable_idempotence=True,
        acks="all",
        log_level=logging.DEBUG,
    )


async def _readiness(rt: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        checks["kafka"] = "ok" if await rt.broker.ping(timeout=2) else "unreachable"
    except Exception as exc:
        checks["kafka"] = f"error: {exc!r}"
    try:
        await asyncio.wait_for(rt.pool.fetchval("SELECT 1"), timeout=2)
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc!r}"
    for name, waiting in rt.waits.items():
        checks[f"consumer {name}"] = waiting.describe()
    for name, task in rt.tasks.items():
        if task.down():
            checks[f"task {name}"] = f"crashed, restarting: {task.error}"
    for name, check in rt.checks.items():
        try:
            checks[name] = await asyncio.wait_for(check(), timeout=2)
        except Exception as exc:
            checks[name] = f"error: {exc!r}"
    return checks


def asgi_app(service: Service) -> Starlette:
    s = service.settings
    holder: dict[str, Runtime] = {}

    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"service": service.name, "status": "live"})

    async def ready(_: Request) -> JSONResponse:
        rt = holder.get("runtime")
        checks = await _readiness(rt) if rt is not None else {"start-up": "not finished"}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"service": service.name, "ready": ok, "checks": checks}, 200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(s.pg_dsn, min_size=1, max_size=s.pool_size)
        assert pool is not None
        if s.ensure_topics:
            await ensure_topics(
                s.kafka_bootstrap, security=s.kafka_security(), replication_factor=s.kafka_replication_factor
            )
        producer = make_producer(s.kafka_bootstrap, s.kafka_security(), client_id=f"ticketflow-{service.name}")
        await producer.start()
        rt = Runtime(s, pool, make_broker(s, service.name), producer, service=service.name)
        running: list[asyncio.Task[None]] = []
        try:
            await service.start(rt)
            rt.read_ops_commands()
            app.router.routes.extend(rt.routes)  # before the first request: uvicorn serves after start-up
            await rt.broker.start()
            running += [asyncio.create_task(_supervised(name, task, rt.stop)) for name, task in rt.tasks.items()]
            holder["runtime"] = rt
            log.info("%s started on %s:%s", service.name, s.http_host, s.port)
            yield
        finally:
            rt.stop.set()
            await asyncio.gather(*running, return_exceptions=True)
            await _run_all("draining", rt.draining)
            await rt.broker.stop()
            await _run_all("closing", reversed(rt.closing))
            await producer.stop()
            await pool.close()

    routes: list[BaseRoute] = [Route("/health/live", live), Route("/health/ready", ready)]
    return Starlette(routes=routes, lifespan=lifespan)


async def _run_all(stage: str, hooks: Any) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:
            log.exception("%s hook %s failed", stage, getattr(hook, "__qualname__", hook))


async def _supervised(name: str, task: _Task, stop: asyncio.Event) -> None:
    """Keep a background loop alive: log a crash and restart it after a pause, until stopped."""
    while not stop.is_set():
        try:
            await task.run(stop)
            return
        except Exception as exc:
            task.crashed_at, task.error = time.monotonic(), repr(exc)
            log.exception("background task %s crashed; restarting", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def main(
    name: str,
    settings_type: type[S],
    build: Callable[[S], Service],
    *,
    refusals: tuple[type[BaseException], ...] = (),
) -> int:
    """`python -m ticketflow.<name>`: read the settings, compose the service, serve it. A bad setting, or a
    configuration file the service refuses (`refusals`), stops it with the problem (exit 2)."""
    refused: tuple[type[BaseException], ...] = (SettingsError, *refusals)
    try:
        service = build(load_settings(settings_type))
    except refused as error:
        text = str(error)
        print(f"{name}: refusing to start:{chr(10) if chr(10) in text else ' '}{text}", file=sys.stderr)
        return 2
    run(service)
    return 0


def run(service: Service) -> None:
    """Serve `service` until SIGTERM (uvicorn handles the signals and runs the lifespan)."""
    s = service.settings
    configure_logging(s.log_level, service.name)
    setup_tracing(service.name, console=s.otel_console)
    uvicorn.run(asgi_app(service), host=s.http_host, port=s.port, log_level=s.log_level.lower())
