"""`/sla/status`: what this instance owns and has done (JSON)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer


def describe(engine: SlaEngine) -> dict[str, Any]:
    return {
        "partitions": sorted(engine.partitions),
        "live": sorted(n for n, p in engine.partitions.items() if p.live),
        "timers": engine.timers(),
        "events": engine.stats.events,
        "fired": engine.stats.fired,
        "queued_events": engine.queue.pending(),  # decided, not yet in the store
        "flushes": engine.queue.flushes,
        "dead_letters": engine.stats.dead_letters,
        "checkpoints": engine.stats.checkpoints,
    }


def routes(consumer: SlaConsumer) -> list[Route]:
    async def status(_: Request) -> JSONResponse:
        owner = consumer.current
        return JSONResponse(describe(owner.engine) if owner is not None else {"starting": True})

    return [Route("/sla/status", status)]
