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
import gc
import logging
import os
import signal
import sys

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
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def build(desks: Desks | None = None) -> Service:
    desks = desks or routing_desks.load()
    service = new_service("routing")
    handlers = RoutingHandlers(DeadLetters(service.broker, "routing"))
    # Not started with the broker: only the leader consumes (a stand-by in the group would hold
    # partitions it does not handle).
    subscribers = subscribe(
        service.broker, handlers, event_topics=EVENT_TOPICS, commands_topic=COMMANDS_TOPIC, persistent=False
    )

    def give_up(why: object) -> None:
        """Leadership lost: stop this process (its state may be stale); a supervisor restarts it as
        a stand-by. Nothing is lost: unstored decisions are decided again by the new leader."""
        log.critical("routing is no longer the leader (%s): stopping", why)
        os.kill(os.getpid(), signal.SIGTERM)

    async def lead(stop: asyncio.Event) -> None:
        assert service.pool is not None
        store = EventStore(service.pool)
        leadership = Leadership(service.pool, LEADER_NAME, service.settings.pg_dsn)
        follower = LogFollower(store, desks)
        if not await stand_by(leadership, follower, stop, LEADER_POLL_SECONDS):
            return
        try:
            await follower.catch_up()
            tune_gc()
            state = follower.state
            handlers.service = RoutingService(state, FencedStore(store, leadership, give_up))
            await handlers.service.tick()  # route what was left undecided while nobody led
            for subscriber in subscribers:
                await subscriber.start()
            handlers.ready.set()
            log.info(
                "routing leads (epoch %s): %d tickets, %d agents", leadership.epoch, len(state.tickets),
                len(state.roster.agents),
            )  # fmt: skip
        except Exception as error:
            give_up(error)
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=LEADER_POLL_SECONDS)
            if not stop.is_set() and not await leadership.still_leading():
                give_up(LeadershipLost("the lock's connection is gone"))
                return
        await leadership.release()

    async def clock(stop: asyncio.Event) -> None:
        await handlers.ready.wait()
        assert handlers.service is not None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)
            await handlers.service.tick()

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
