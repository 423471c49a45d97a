"""Wiring: settings from the environment, PostgreSQL pool, Kafka producer and consumer, HTTP routes.

Run: `python -m ticketflow.intake.main` (or `uvicorn --factory ticketflow.intake.main:create_app`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ticketflow.contracts.topics import CHAT_INBOUND, TICKET_COMMANDS
from ticketflow.eventstore.store import EventStore
from ticketflow.intake.adapters import agent_commands
from ticketflow.intake.adapters.botx import BotxGateway
from ticketflow.intake.adapters.desks import Tenants, load_tenants
from ticketflow.intake.adapters.http import json_response
from ticketflow.intake.adapters.inbound import Acceptor, InboundProducer, KafkaAcceptor, StoreAcceptor
from ticketflow.intake.adapters.metrics import Metrics
from ticketflow.intake.adapters.portals import PortalTokens
from ticketflow.intake.adapters.store import IntakeStore
from ticketflow.intake.handlers import InboundConsumer, Intake
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.settings import Settings as RuntimeSettings

log = logging.getLogger("ticketflow.intake")


@dataclass(frozen=True)
class Settings:
    pg_dsn: str
    kafka_bootstrap: str
    accept: str  # "kafka": durable on chat.inbound before 202; "store": recorded in PostgreSQL before 202
    consume: bool  # run the chat.inbound consumer in this process
    topic: str
    group_id: str
    batch: int
    lanes: int  # concurrent transactions per chat.inbound batch
    pool_size: int
    noop_route: bool  # POST /noop: the do-nothing endpoint benchmarks use as the ceiling
    commands_topic: str  # agents' lifecycle commands (ticket.commands); "" = not consumed here
    commands_group: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        common = RuntimeSettings.from_env("intake")
        return cls(
            pg_dsn=common.pg_dsn,
            kafka_bootstrap=common.kafka_bootstrap,
            accept=env("TICKETFLOW_INTAKE_ACCEPT", "kafka"),
            consume=env("TICKETFLOW_INTAKE_CONSUME", "1") == "1",
            topic=env("TICKETFLOW_INTAKE_TOPIC", CHAT_INBOUND),
            group_id=env("TICKETFLOW_INTAKE_GROUP", "ticketflow-intake"),
            # Small batches keep webhook latency low when HTTP and the consumer share a process;
            # a consumer-only process records faster with TICKETFLOW_INTAKE_BATCH=2000.
            batch=int(env("TICKETFLOW_INTAKE_BATCH", "1000")),
            lanes=int(env("TICKETFLOW_INTAKE_LANES", "4")),
            pool_size=int(env("TICKETFLOW_INTAKE_POOL", "8")),
            noop_route=env("TICKETFLOW_INTAKE_NOOP", "0") == "1",
            commands_topic=env("TICKETFLOW_INTAKE_COMMANDS_TOPIC", TICKET_COMMANDS),
            commands_group=env("TICKETFLOW_INTAKE_COMMANDS_GROUP", agent_commands.GROUP_ID),
        )


def build_broker(settings: Settings, consumer: InboundConsumer, store: EventStore) -> KafkaBroker:
    broker = KafkaBroker(settings.kafka_bootstrap, client_id="ticketflow-intake-consumer")

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
            await consumer.handle(records)
        except Exception as exc:  # whatever failed, the batch must come again, never be skipped
            # With manual acks, leaving a batch un-acked is not enough: the next batch's commit would
            # move the offset past it. Seek back so the same records are delivered again.
            log.warning("chat.inbound batch not recorded, will be redelivered: %r", exc)
            await asyncio.sleep(1.0)
            await msg.nack()
            return
        await msg.ack()

    if settings.commands_topic:  # StartWork, ReplyAsAgent, WaitForCustomer, Resolve/Reopen/Close/MergeTicket
        handler = agent_commands.AgentCommandHandler(store, DeadLetters(broker, "intake-commands"))
        agent_commands.subscribe(broker, handler, topic=settings.commands_topic, group_id=settings.commands_group)
    return broker


def create_app(settings: Settings | None = None, tenants: Tenants | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    tenants = tenants or load_tenants()
    metrics = Metrics()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(settings.pg_dsn, min_size=2, max_size=settings.pool_size)
        assert pool is not None
        store = IntakeStore(pool, EventStore(pool), lambda m: tenants.route(m.platform, m.tenant_id))
        producer = InboundProducer(settings.kafka_bootstrap, settings.topic)
        await producer.start()
        acceptor: Acceptor = KafkaAcceptor(producer) if settings.accept == "kafka" else StoreAcceptor(store)
        intake = Intake(tenants, BotxGateway(tenants), PortalTokens(pool), acceptor, metrics)
        consumer = InboundConsumer(store, producer, tenants, metrics, settings.lanes)
        broker = build_broker(settings, consumer, store.events)
        if settings.consume:
            await broker.start()
        state.update(intake=intake, pool=pool, producer=producer)
        try:
            yield
        finally:
            if settings.consume:
                await broker.stop()
            await producer.stop()
            await intake.botx.close()
            await pool.close()

    def route(name: str, method: str) -> Any:
        async def endpoint(request: Request) -> Response:
            intake: Intake = state["intake"]
            handler = getattr(intake, name)
            return await intake.guarded(name, handler)(request)

        return endpoint

    async def noop(request: Request) -> Response:
        await request.body()
        return json_response({"result": "accepted"}, 202)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await state["pool"].fetchval("SELECT 1")
            await state["producer"]._producer.partitions_for(settings.topic)
        except Exception as exc:  # any failure means "not ready"; the reason is in the body
            return json_response({"status": "unavailable", "detail": repr(exc)}, 503)
        return json_response({"status": "ready", "disabled_tenants": list(tenants.disabled)})

    routes = [
        Route("/command", route("botx_command", "POST"), methods=["POST"]),
        Route("/status", route("botx_status", "GET"), methods=["GET"]),
        Route("/notification/callback", route("botx_callback", "POST"), methods=["POST"]),
        Route("/bitrix24/events", route("bitrix24_event", "POST"), methods=["POST"]),
        Route("/v1/messages", route("generic_message", "POST"), methods=["POST"]),
        Route("/openapi.json", route("openapi", "GET"), methods=["GET"]),
        Route("/metrics", route("metrics_text", "GET"), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/health/live", healthz, methods=["GET"]),  # the names deploy/scripts/services.sh polls
        Route("/health/ready", readyz, methods=["GET"]),
    ]
    if settings.noop_route:
        routes.append(Route("/noop", noop, methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app


def main() -> None:
    import uvicorn

    common = RuntimeSettings.from_env("intake")  # host, port (TICKETFLOW_INTAKE_PORT, 8001), log level
    logging.basicConfig(level=common.log_level)
    uvicorn.run(
        create_app(),
        host=common.http_host,
        port=common.http_port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
