"""The SLA service: consumes ticket.events, keeps per-ticket SLA clocks in a timer wheel (owned per
partition), appends SlaClock*/SlaWarning/SlaBreached/SlaMet to the event store.

Env: TICKETFLOW_KAFKA_BOOTSTRAP, TICKETFLOW_PG_DSN, TICKETFLOW_SLA_PORT (8004); optional
TICKETFLOW_SLA_TOPIC (default ticket.events), TICKETFLOW_SLA_CHECKPOINT_SECONDS (5),
TICKETFLOW_DESK_CONFIG_DIR (desk files)."""

from __future__ import annotations

import asyncio
import os

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, run
from ticketflow.sla import calendar_versions
from ticketflow.sla.engine import SlaEngine
from ticketflow.sla.handlers import SlaConsumer, describe
from ticketflow.sla.policies import DeskRules
from ticketflow.sla.writer import SlaWriter


def build() -> Service:
    service = new_service("sla")
    topic = os.environ.get("TICKETFLOW_SLA_TOPIC", TICKET_EVENTS)
    every = float(os.environ.get("TICKETFLOW_SLA_CHECKPOINT_SECONDS", "5"))
    registry = load_desks()
    dead_letters = DeadLetters(service.broker, "sla")
    consumers: list[SlaConsumer] = []

    async def dead_letter(key: bytes | None, value: bytes, reason: str) -> None:
        await dead_letters.send(topic, key, value, reason)

    async def consume(stop: asyncio.Event) -> None:
        assert service.pool is not None
        # Calendars by version: those stored by earlier runs (a configuration changed since still
        # finds the calendar the clocks counted in), and this configuration's, stored before any
        # state records them.
        rules = DeskRules(registry, await calendar_versions.load(service.pool))
        await calendar_versions.save(service.pool, rules.definitions())
        await asyncio.to_thread(rules.warm_calendars)  # the first event does not pay for expanding a year
        engine = SlaEngine(rules, SlaWriter(EventStore(service.pool)), dead_letter)
        consumer = SlaConsumer(engine, service.pool, service.settings.kafka_bootstrap, topic, checkpoint_every_s=every)
        consumers[:] = [consumer]
        await consumer.run(stop)

    async def status(_: Request) -> JSONResponse:
        return JSONResponse(describe(consumers[0]) if consumers else {"starting": True})

    service.background.append(consume)
    service.routes.append(Route("/sla/status", status))
    return service


def main() -> None:
    run(build())


if __name__ == "__main__":
    main()
