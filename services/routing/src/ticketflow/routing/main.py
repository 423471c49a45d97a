"""Wiring: desk configuration, the event store, the broker, the reassignment clock.

Run: `python -m ticketflow.routing` (port TICKETFLOW_ROUTING_PORT, default 8003).
Start-up order: desk files are validated first (a broken one stops the process with file, line and
problem); then, once PostgreSQL is up, the routing state is rebuilt from the stored events, tickets
still undecided are routed, and only then are Kafka records handled (they wait unacknowledged).

One instance at a time: loads and round-robin cursors are global, so decisions must be serial.
A second instance in the same consumer group would get some partitions and decide on a partial
picture; run it as a stand-by only (see docs/routing.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys

from ticketflow.deskconfig import DeskConfigError
from ticketflow.eventstore import Checkpoint, EventStore
from ticketflow.routing import desks as routing_desks
from ticketflow.routing.config import ConfigError, Desks
from ticketflow.routing.handlers import RoutingHandlers, subscribe
from ticketflow.routing.service import RoutingService
from ticketflow.routing.state import RoutingState, apply_envelope
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, run

log = logging.getLogger("ticketflow.routing")
TICK_SECONDS = float(os.environ.get("TICKETFLOW_ROUTING_TICK_SECONDS", "15"))


async def rebuild_from_store(store: EventStore, desks: Desks, page: int = 5000, patience: float = 60.0) -> RoutingState:
    """Fold every event committed before this call. The store's log hides transactions newer than
    the oldest one still open on the server, so an empty page is not the end: wait for the head."""
    state = RoutingState(desks)
    target = await store.head()
    checkpoint = Checkpoint()
    deadline = asyncio.get_running_loop().time() + patience
    while checkpoint < target:
        batch = await store.read_all(checkpoint, page)
        if not batch:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"routing rebuild: the event log is still held back after {patience}s")
            await asyncio.sleep(0.05)
            continue
        for stored in batch:
            apply_envelope(state, stored.envelope)
        checkpoint = batch[-1].checkpoint
    return state


def tune_gc() -> None:
    """The rebuilt state is long-lived: keep full collections from rescanning it (freeze). Routing
    allocates a few objects per record and keeps one record per open ticket; with the default
    threshold (700) young collections ran every few records and cost 3-4x a record's decoding.
    Cycles are rare here (the state is trees of dicts and structs), so collect less often."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def build(desks: Desks | None = None) -> Service:
    desks = desks or routing_desks.load()
    service = new_service("routing")
    handlers = RoutingHandlers(DeadLetters(service.broker, "routing"))
    subscribe(service.broker, handlers)

    async def start() -> None:
        assert service.pool is not None
        store = EventStore(service.pool)
        state = await rebuild_from_store(store, desks)
        tune_gc()
        handlers.service = RoutingService(state, store)
        await handlers.service.tick()  # route what was left undecided while we were down
        handlers.ready.set()
        log.info("routing state rebuilt: %d tickets, %d agents", len(state.tickets), len(state.roster.agents))

    async def clock(stop: asyncio.Event) -> None:
        await handlers.ready.wait()
        assert handlers.service is not None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)
            await handlers.service.tick()

    service.on_start.append(start)
    service.background.append(clock)
    return service


def main() -> None:
    try:
        service = build()
    except (DeskConfigError, ConfigError) as error:
        print(f"routing: refusing to start: {error}", file=sys.stderr)
        sys.exit(2)
    run(service)


if __name__ == "__main__":
    main()
