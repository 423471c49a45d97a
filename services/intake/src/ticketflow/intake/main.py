"""Wiring: tenants, the standard service (settings, broker, pool, `/health/live` and `/health/ready`
from `ticketflow.runtime.service`), intake's own routes, the `chat.inbound` consumer, the reply relay.

Run: `python -m ticketflow.intake` (port TICKETFLOW_INTAKE_PORT, default 8001). Tenants and desk files
are validated first; a broken one stops the process with the problem (exit 2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ticketflow.contracts.topics import CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS
from ticketflow.deskconfig import DeskConfigError
from ticketflow.eventstore.store import EventStore
from ticketflow.intake.adapters import agent_commands
from ticketflow.intake.adapters.botx import BotxGateway
from ticketflow.intake.adapters.desks import Tenants, load_tenants
from ticketflow.intake.adapters.http import json_response
from ticketflow.intake.adapters.inbound import Acceptor, InboundProducer, KafkaAcceptor, StoreAcceptor
from ticketflow.intake.adapters.metrics import Metrics
from ticketflow.intake.adapters.pipeline import InboundPipeline
from ticketflow.intake.adapters.portal_admin import AdminCheck
from ticketflow.intake.adapters.portals import PortalTokens
from ticketflow.intake.adapters.replies import ReplyRelay
from ticketflow.intake.adapters.store import IntakeStore
from ticketflow.intake.handlers import InboundConsumer, Intake
from ticketflow.runtime.gc_tuning import tune_gc
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, ready, run

log = logging.getLogger("ticketflow.intake")


@dataclass(frozen=True)
class Settings:
    """Intake's own settings; the common ones (DSN, bootstrap, host, port, log level) are the service's."""

    accept: str  # "kafka": durable on chat.inbound before 202; "store": recorded in PostgreSQL before 202
    consume: bool  # run the chat.inbound consumer (and the ticket.commands subscriber) in this process
    topic: str
    group_id: str
    batch: int
    lanes: int  # concurrent transactions per chat.inbound batch
    in_flight: int  # chat.inbound batches recorded at once (adapters/pipeline.py)
    noop_route: bool  # POST /noop: the do-nothing endpoint benchmarks use as the ceiling
    commands_topic: str  # agents' lifecycle commands (ticket.commands); "" = not consumed here
    commands_group: str
    replies_topic: str  # where queued replies are published; "" = no relay in this process
    admin_check: bool  # Bitrix24: ask the portal (user.admin) whether a message's author is an admin

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            accept=env("TICKETFLOW_INTAKE_ACCEPT", "kafka"),
            consume=env("TICKETFLOW_INTAKE_CONSUME", "1") == "1",
            topic=env("TICKETFLOW_INTAKE_TOPIC", CHAT_INBOUND),
            group_id=env("TICKETFLOW_INTAKE_GROUP", "ticketflow-intake"),
            # Small batches keep webhook latency low when HTTP and the consumer share a process;
            # a consumer-only process records faster with TICKETFLOW_INTAKE_BATCH=2000.
            batch=int(env("TICKETFLOW_INTAKE_BATCH", "1000")),
            lanes=int(env("TICKETFLOW_INTAKE_LANES", "4")),
            in_flight=int(env("TICKETFLOW_INTAKE_IN_FLIGHT", "2")),
            noop_route=env("TICKETFLOW_INTAKE_NOOP", "0") == "1",
            commands_topic=env("TICKETFLOW_INTAKE_COMMANDS_TOPIC", TICKET_COMMANDS),
            commands_group=env("TICKETFLOW_INTAKE_COMMANDS_GROUP", agent_commands.GROUP_ID),
            replies_topic=env("TICKETFLOW_INTAKE_REPLIES_TOPIC", CHAT_REPLIES),
            admin_check=env("TICKETFLOW_INTAKE_B24_ADMIN_CHECK", "1") == "1",
        )


def subscribe_inbound(broker: KafkaBroker, settings: Settings, consumer: InboundPipeline | _WhenStarted) -> None:
    async def raw(message: Any) -> Any:  # skip FastStream's JSON decoding: records are decoded by msgspec
        return message.body

    @broker.subscriber(
        settings.topic,
        group_id=settings.group_id,
        batch=True,
        max_records=settings.batch,
        batch_timeout_ms=10,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw,
    )
    async def on_chat_inbound(body: Any, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        try:
            # Returns once the batch is admitted: it is recorded, and its offsets committed in order, by the
            # pipeline (adapters/pipeline.py) while the next batch is fetched. Never msg.ack(): that would
            # commit the consumer's position, past batches still in flight.
            await consumer.handle(records, msg.consumer)  # type: ignore[arg-type]  # an AIOKafkaConsumer
        except Exception as exc:  # not admitted: the batch must come again, never be skipped
            log.warning("chat.inbound batch not recorded, will be redelivered: %r", exc)
            await asyncio.sleep(1.0)
            await msg.nack()  # seeks each partition back to this batch's first record


class _WhenStarted:
    """A subscriber's handler that exists only once the pool does: the runtime starts the broker before
    the start hooks, so a record that arrives first waits here (unacknowledged) instead of failing."""

    def __init__(self, started: asyncio.Event, state: dict[str, Any], name: str) -> None:
        self.started = started
        self.state = state
        self.name = name

    async def handle(self, *args: Any) -> Any:
        await self.started.wait()
        return await self.state[self.name].handle(*args)


def build(settings: Settings | None = None, tenants: Tenants | None = None) -> Service:
    settings = settings or Settings.from_env()
    tenants = tenants or load_tenants()  # start-up check: broken desk or tenant files stop the process here
    metrics = Metrics()
    admin = AdminCheck.from_env(metrics) if settings.admin_check else None
    service = new_service("intake")
    state: dict[str, Any] = {}
    started = asyncio.Event()

    async def start() -> None:
        pool = service.pool
        assert pool is not None
        # No uvicorn access log (run() has no switch for it): a line per webhook costs throughput, and
        # /metrics counts requests.
        logging.getLogger("uvicorn.access").handlers = []
        logging.getLogger("uvicorn.access").propagate = False
        store = IntakeStore(pool, EventStore(pool), lambda m: tenants.route(m.platform, m.tenant_id))
        producer = InboundProducer(service.settings.kafka_bootstrap, settings.topic)
        await producer.start()
        acceptor: Acceptor = KafkaAcceptor(producer) if settings.accept == "kafka" else StoreAcceptor(store)
        state["producer"] = producer
        state["intake"] = Intake(tenants, BotxGateway(tenants), PortalTokens(pool), acceptor, metrics, admin)
        consumer = InboundConsumer(store, producer, tenants, metrics, settings.lanes)
        state["consumer"] = InboundPipeline(consumer, settings.in_flight)
        dead_letters = DeadLetters(service.broker, "intake-commands")
        state["commands"] = agent_commands.AgentCommandHandler(store.events, dead_letters)
        if settings.replies_topic:
            relay = ReplyRelay(pool, service.settings.kafka_bootstrap, settings.replies_topic)
            state["relay"] = relay
            service.background.append(relay.run)  # the lifespan starts the background tasks after this hook
        started.set()

    async def close(stop: asyncio.Event) -> None:
        await stop.wait()
        if "consumer" in state:
            await state["consumer"].drain()  # batches in flight: recorded and committed, or left to redeliver
        await state["producer"].stop()
        await state["intake"].botx.close()

    if settings.consume:
        subscribe_inbound(service.broker, settings, _WhenStarted(started, state, "consumer"))
        if settings.commands_topic:  # StartWork, ReplyAsAgent, WaitForCustomer, Resolve/Reopen/Close/MergeTicket
            commands = _WhenStarted(started, state, "commands")
            topic, group = settings.commands_topic, settings.commands_group
            agent_commands.subscribe(service.broker, commands, topic=topic, group_id=group)  # type: ignore[arg-type]
    service.on_start.append(start)
    service.background.append(close)
    service.routes.extend(_routes(service, settings, tenants, state))
    return service


def _routes(service: Service, settings: Settings, tenants: Tenants, state: dict[str, Any]) -> list[BaseRoute]:
    def route(name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            intake: Intake = state["intake"]
            return await intake.guarded(name, getattr(intake, name))(request)

        return endpoint

    async def noop(request: Request) -> Response:
        await request.body()
        return json_response({"result": "accepted"}, 202)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """The standard checks, plus chat.inbound's producer, plus which tenants are disabled."""
        checks = await ready(service)
        try:
            await state["producer"]._producer.partitions_for(settings.topic)
            checks["chat_inbound"] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is in the body
            checks["chat_inbound"] = f"error: {exc!r}"
        ok = all(v == "ok" for v in checks.values())
        body = {
            "status": "ready" if ok else "unavailable",
            "checks": checks,
            "disabled_tenants": list(tenants.disabled),
        }
        return json_response(body, 200 if ok else 503)

    routes: list[BaseRoute] = [
        Route("/command", route("botx_command"), methods=["POST"]),
        Route("/status", route("botx_status"), methods=["GET"]),
        Route("/notification/callback", route("botx_callback"), methods=["POST"]),
        Route("/bitrix24/events", route("bitrix24_event"), methods=["POST"]),
        Route("/v1/messages", route("generic_message"), methods=["POST"]),
        Route("/openapi.json", route("openapi"), methods=["GET"]),
        Route("/metrics", route("metrics_text"), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),  # older names of /health/live and a detailed /health/ready
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if settings.noop_route:
        routes.append(Route("/noop", noop, methods=["POST"]))
    return routes


def main() -> None:
    try:
        service = build()
    except (DeskConfigError, ValueError, OSError, RuntimeError) as error:
        print(f"intake: refusing to start: {error}", file=sys.stderr)
        sys.exit(2)
    tune_gc("intake")  # the default thresholds cost ~30 % of the chat.inbound CPU (runtime.gc_tuning)
    run(service)


if __name__ == "__main__":
    main()
