"""Run a service: one HTTP server whose lifespan does every service's start-up in one order.

    pool -> topics -> producer -> the service's own start-up (`Service.start(runtime)`: load state,
    lead, build the application, subscribe, register its operators' commands) -> the broker starts
    consuming -> background tasks, the `ops.commands` reader among them (`ops_commands.py`)

Start-up work finishes before the first record is consumed and before the first request is served, so
no service needs a "not ready yet" handshake. Stopping runs backwards: background tasks end, `draining`
hooks finish what is in flight (their offsets are committed while the consumers still run), the broker
stops, `closing` hooks close clients, then the producer and the pool.

Readiness (`/health/ready`) pings the broker and the database (the ASGI app keeps serving with a dead
broker, so liveness alone would lie), reports a consumer waiting on an outage or whose consumption loop
stopped, and turns false while a background task is down: it crashed, or it returned while the service
was not stopping (it is restarted after a pause either way, and counts as down for `DOWN_AFTER_CRASH_S`
after each death).

A process started by `run` also serves the operations port (`operations.py`: `/metrics`, `/health/*`)
and measures its consumers' lag (and the projector its relay's backlog); its public routes are traced and counted
(`http_telemetry.py`); its logs are JSON lines (`logs.py`); tracing follows the `OTEL_*` variables
(`tracing.py`)."""

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
from faststream.kafka import KafkaBroker
from prometheus_client import Counter, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ticketflow.contracts.ops import OpsCommandEnvelope, ReloadDeskConfig
from ticketflow.messaging import tracing as messaging_tracing
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.lag import ConsumerLag
from ticketflow.messaging.outages import Waiting
from ticketflow.messaging.producer import RenewingProducer, make_producer
from ticketflow.messaging.subscriptions import stopped_consumers
from ticketflow.messaging.topics import ensure_topics
from ticketflow.runtime.http_telemetry import HttpTelemetry
from ticketflow.runtime.logs import configure_logging
from ticketflow.runtime.operations import OperationsServer
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
from ticketflow.runtime.tracing import TracingSettingsError, edge_spans, setup_tracing

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
TASK_UP = Gauge("ticketflow_background_task_up", "1 while a background task runs, 0 after it died", ["task"])
TASK_DEATHS = Counter(
    "ticketflow_background_task_deaths", "Background tasks that crashed or returned unasked (then restarted)", ["task"]
)


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
    producer: RenewingProducer  # `shared_producer`
    measuring: bool = False  # metrics are served: background measurements (lag, relay backlog) are wanted
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
        ledger = OpsLedger(self.pool, this_instance())
        executor = OpsExecutor(self.ops, ledger, self.producer, s.ops_events_topic, self.dead_letters(self.service))
        reader = OpsConsumer(executor, s.kafka_bootstrap, s.ops_topic, s.kafka_security())
        self.background(s.ops_topic, reader.run)
        self.watch(s.ops_topic, reader.waiting)


def make_broker(settings: ServiceSettings, service: str) -> KafkaBroker:
    """The service's FastStream broker (its subscribers are the patterns of ticketflow.messaging). Its
    "Received"/"Processed" lines, two per batch, are logged at DEBUG: at INFO they would be most of a busy
    consumer's log. No FastStream telemetry middleware: the patterns span the records themselves
    (`ticketflow.messaging.tracing`), per record or per batch, at the cost the benchmarks allow."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=settings.kafka_security().broker_security(),
        client_id=f"ticketflow-{service}",
        enable_idempotence=True,
        acks="all",
        log_level=logging.DEBUG,
        logger=logging.getLogger("faststream.kafka"),  # through the root handler: JSON lines
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
    for name in stopped_consumers(rt.broker):
        checks[f"consumer {name}"] = "stopped: its consumption loop is not running"

    for name, task in rt.tasks.items():
        if task.down():
            checks[f"task {name}"] = f"crashed, restarting: {task.error}"
    for name, check in rt.checks.items():
        try:
            checks[name] = await asyncio.wait_for(check(), timeout=2)
        except Exception as exc:
            checks[name] = f"error: {exc!r}"
    return checks


def asgi_app(service: Service, *, operations: bool = False) -> Starlette:
    """The service's ASGI app. `operations` (a process started by `run`): also serve the operations port
    and measure consumer lag; tests that run several services in one process leave it off."""
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
        port = s.operations_port if operations else None
        ops = OperationsServer(s.http_host, port, live, ready, metrics=s.metrics) if port else None
        if ops is not None:
            await ops.start()  # before start-up: readiness answers "not finished" meanwhile
        try:
            async with _running(service, s, app, holder, operations):
                yield
        finally:
            if ops is not None:
                await ops.stop()

    routes: list[BaseRoute] = [Route("/health/live", live), Route("/health/ready", ready)]
    app = Starlette(routes=routes, lifespan=lifespan)
    traced = messaging_tracing.enabled()
    if traced or s.metrics:
        app.add_middleware(HttpTelemetry, routes=app.router.routes, traced=traced, metered=s.metrics, edge=edge_spans())
    return app


def shared_producer(s: ServiceSettings, name: str) -> RenewingProducer:
    """The producer of a service's dead letters, ops answers and (dashboard) commands. It renews itself:
    after a broker restart a plain idempotent producer may refuse every later send to a partition
    (`OutOfOrderSequenceNumber`), and a consumer that must dead-letter a record would wait on it forever."""
    return RenewingProducer(
        lambda: make_producer(s.kafka_bootstrap, s.kafka_security(), client_id=f"ticketflow-{name}")
    )


@contextlib.asynccontextmanager
async def _running(
    service: Service, s: ServiceSettings, app: Starlette, holder: dict[str, Runtime], operations: bool
) -> AsyncIterator[None]:
    """Start-up in order, serve, stop backwards (the module's docstring)."""
    pool = await asyncpg.create_pool(s.pg_dsn, min_size=1, max_size=s.pool_size)
    assert pool is not None
    if s.ensure_topics:
        await ensure_topics(
            s.kafka_bootstrap, security=s.kafka_security(), replication_factor=s.kafka_replication_factor
        )
    producer = shared_producer(s, service.name)
    await producer.start()
    broker = make_broker(s, service.name)
    rt = Runtime(s, pool, broker, producer, service=service.name, measuring=operations and s.metrics)
    running: list[asyncio.Task[None]] = []
    try:
        await service.start(rt)
        rt.read_ops_commands()
        if rt.measuring:
            lag = ConsumerLag(s.kafka_bootstrap, security=s.kafka_security(), every_s=s.metrics_interval_seconds)
            rt.background("consumer lag", lag.run)
        app.router.routes.extend(rt.routes)  # before the first request: uvicorn serves after start-up
        await rt.broker.start()
        running += [asyncio.create_task(_supervised(name, task, rt.stop)) for name, task in rt.tasks.items()]
        holder["runtime"] = rt
        log.info("%s started on %s:%s (operations port %s)", service.name, s.http_host, s.port,
                 s.operations_port if operations else "none")  # fmt: skip
        yield
    finally:
        rt.stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        await _run_all("draining", rt.draining)
        await rt.broker.stop()
        await _run_all("closing", reversed(rt.closing))
        await producer.stop()
        await pool.close()


async def _run_all(stage: str, hooks: Any) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:
            log.exception("%s hook %s failed", stage, getattr(hook, "__qualname__", hook))


async def _supervised(name: str, task: _Task, stop: asyncio.Event, restart_after_s: float = 1.0) -> None:
    """Keep a background loop alive until stopped: a crash, or a return while not stopping, is a death
    (logged, counted, readiness false for a while) and the loop is restarted after a pause."""
    while not stop.is_set():
        TASK_UP.labels(name).set(1)
        try:
            await task.run(stop)
            if stop.is_set():
                return
            task.error = "returned while the service was not stopping"
            log.error("background task %s ended on its own; restarting", name)
        except Exception as exc:
            task.error = repr(exc)
            log.exception("background task %s crashed; restarting", name)
        task.crashed_at = time.monotonic()
        TASK_UP.labels(name).set(0)
        TASK_DEATHS.labels(name).inc()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=restart_after_s)


def main(
    name: str,
    settings_type: type[S],
    build: Callable[[S], Service],
    *,
    refusals: tuple[type[BaseException], ...] = (),
) -> int:
    """`python -m ticketflow.<name>`: read the settings, compose the service, serve it. A bad setting, or a
    configuration file the service refuses (`refusals`), stops it with the problem (exit 2)."""
    refused: tuple[type[BaseException], ...] = (SettingsError, TracingSettingsError, *refusals)
    try:
        settings = load_settings(settings_type)
        start_logging(name, settings)  # what `build` logs is a JSON line too
        run(build(settings))
    except refused as error:
        text = str(error)
        print(f"{name}: refusing to start:{chr(10) if chr(10) in text else ' '}{text}", file=sys.stderr)
        return 2
    return 0


def start_logging(name: str, settings: ServiceSettings) -> None:
    """JSON lines on stderr (or text), with the settings' secret values redacted too."""
    secrets = [str(getattr(settings, field)) for field in type(settings).secret_fields]
    configure_logging(settings.log_level, name, json=settings.log_format == "json", secrets=secrets)


def run(service: Service) -> None:
    """Serve `service` until SIGTERM (uvicorn handles the signals and runs the lifespan): JSON logs,
    tracing as the OTEL_* variables say, the operations port. Raises `TracingSettingsError`."""
    s = service.settings
    start_logging(service.name, s)
    provider = setup_tracing(service.name)
    try:
        uvicorn.run(asgi_app(service, operations=True), host=s.http_host, port=s.port,
                    log_level=s.log_level.lower(), log_config=None)  # fmt: skip
    finally:
        if provider is not None:
            provider.shutdown()  # the spans still queued are exported
