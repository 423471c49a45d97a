"""Wiring: desk configuration, the event store, the broker, the leader lock, the reassignment clock.

Run: `python -m ticketflow.routing` (port TICKETFLOW_ROUTING_PORT, default 8003).
Start-up order: desk files are validated first (a broken one stops the process with file, line and
problem). Then the instance waits to lead (`leader.py`): one instance decides, others stand by,
following the event log. The leader reads the log up to its head, routes tickets still undecided,
and only then starts its Kafka subscribers. Running two instances is safe: the second stands by and
takes over within about a second of the leader's death (see docs/routing.md, "Running two").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_COMMANDS, TICKET_EVENTS
from ticketflow.deskconfig import DeskConfigError
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.leadership import Leadership, LeadershipLost
from ticketflow.routing import desks as routing_desks
from ticketflow.routing.config import ConfigError, Desks
from ticketflow.routing.handlers import RoutingHandlers, subscribe
from ticketflow.routing.leader import FencedStore, LogFollower, stand_by
from ticketflow.routing.service import RoutingService
from ticketflow.routing.state import RoutingState
from ticketflow.runtime.gc_tuning import tune_gc as runtime_tune_gc
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, run

log = logging.getLogger("ticketflow.routing")
TICK_SECONDS = float(os.environ.get("TICKETFLOW_ROUTING_TICK_SECONDS", "15"))
LEADER_POLL_SECONDS = float(os.environ.get("TICKETFLOW_ROUTING_LEADER_POLL_SECONDS", "1"))
LEADER_NAME = os.environ.get("TICKETFLOW_ROUTING_LEADER_NAME", "routing")
# Topic names (defaults: the contracts'); tests run instances on topics of their own.
EVENT_TOPICS = tuple(os.environ.get("TICKETFLOW_ROUTING_EVENT_TOPICS", f"{TICKET_EVENTS},{AGENT_EVENTS}").split(","))
COMMANDS_TOPIC = os.environ.get("TICKETFLOW_ROUTING_COMMANDS_TOPIC", TICKET_COMMANDS)


async def rebuild_from_store(store: EventStore, desks: Desks, page: int = 5000, patience: float = 60.0) -> RoutingState:
    """Fold every event committed before this call (what a restart does before consuming)."""
    follower = LogFollower(store, desks)
    await follower.catch_up(page, patience)
    return follower.state


def tune_gc() -> None:
    """The rebuilt state is long-lived: keep full collections from rescanning it (freeze). Routing
    allocates a few objects per record and keeps one record per open ticket; with the default
    threshold (700) young collections ran every few records and cost 3-4x a record's decoding.
    Cycles are rare here (the state is trees of dicts and structs), so collect less often."""
    runtime_tune_gc("routing", freeze=True)


async def first_of(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Return when any of the events is set (or after `seconds`)."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def build(desks: Desks | None = None) -> Service:
    desks = desks or routing_desks.load()
    service = new_service("routing")
    handlers = RoutingHandlers(DeadLetters(service.broker, "routing"))
    # Created and started only while leading: a stand-by in the consumer group would hold partitions
    # it does not handle. (`persistent=False`: the broker keeps them weakly, forgets them once dropped.)
    subscribers: list[Any] = []

    lost = asyncio.Event()

    def step_down(why: object) -> None:
        """Leadership lost (another instance leads, or our lock's session is gone): stop consuming and
        go back to standing by. Nothing is lost: what was not stored is decided again by the leader."""
        if not lost.is_set():
            log.critical("routing is no longer the leader (%s): stepping down to stand-by", why)
        lost.set()

    async def lead(stop: asyncio.Event) -> None:
        """Stand by until this instance leads, lead until it may not, and again (supervised: an error
        ends the term and the task starts over as a stand-by)."""
        assert service.pool is not None
        store = EventStore(service.pool)
        while not stop.is_set():
            leadership = Leadership(service.pool, LEADER_NAME, service.settings.pg_dsn)
            follower = LogFollower(store, desks)
            lost.clear()
            try:
                if await stand_by(leadership, follower, stop, LEADER_POLL_SECONDS):
                    await serve(store, leadership, follower, stop)
            finally:
                await quit_leading(leadership)

    async def serve(store: EventStore, leadership: Leadership, follower: LogFollower, stop: asyncio.Event) -> None:
        await follower.catch_up()
        tune_gc()
        state = follower.state
        routing = RoutingService(state, FencedStore(store, leadership, step_down))
        handlers.begin(routing)
        await routing.tick()  # route what was left undecided while nobody led
        subscribers[:] = subscribe(
            service.broker, handlers, event_topics=EVENT_TOPICS, commands_topic=COMMANDS_TOPIC, persistent=False
        )
        for subscriber in subscribers:
            await subscriber.start()
        handlers.ready.set()
        log.info(
            "routing leads (epoch %s): %d tickets, %d agents", leadership.epoch, len(state.tickets),
            len(state.roster.agents),
        )  # fmt: skip
        while not stop.is_set() and not lost.is_set():
            await first_of(stop, lost, seconds=LEADER_POLL_SECONDS)
            if not stop.is_set() and not await leadership.still_leading():
                step_down(LeadershipLost("the lock's session is gone"))

    async def quit_leading(leadership: Leadership) -> None:
        handlers.reset()
        for subscriber in subscribers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(subscriber.stop(), 15)
        subscribers.clear()
        await leadership.release()

    async def clock(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await first_of(stop, handlers.ready)
            await first_of(stop, seconds=TICK_SECONDS)
            routing = handlers.service
            if routing is not None and handlers.ready.is_set() and not stop.is_set():
                await routing.tick()

    service.background.append(lead)
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
