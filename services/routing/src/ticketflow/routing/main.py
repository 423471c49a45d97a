"""Composition: the desk configuration, the leader (terms of leadership, each with its application
service and subscriptions), the clock.

Run: `python -m ticketflow.routing` (TICKETFLOW_ROUTING_PORT, default 8003). Desk files are validated
first (a broken one stops the process with file, line and problem). Then the instance stands by until
it leads (leader.py): one instance decides, the others follow the event log. Running two instances is
safe: the second takes over within about a second of the leader's death (docs/routing.md)."""

from __future__ import annotations

import asyncio

from ticketflow.deskconfig import DeskConfigError
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.leadership import Leadership
from ticketflow.routing import consumer, desks
from ticketflow.routing.app import Routing
from ticketflow.routing.domain.config import ConfigError
from ticketflow.routing.leader import Leader
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.service import Runtime, Service


def build(settings: RoutingSettings) -> Service:
    """Raises `DeskConfigError` / `ConfigError` on a broken desk configuration (before anything runs)."""
    configured = desks.load(settings.desk_directory)

    async def start(rt: Runtime) -> None:
        dead_letters = rt.dead_letters("routing")

        def subscribe(app: Routing) -> consumer.Subscriptions:
            return consumer.subscribe(rt.broker, app, dead_letters, settings)

        def elect() -> Leadership:
            return Leadership(rt.pool, settings.leader_name, settings.pg_dsn)

        leader = Leader(EventStore(rt.pool), configured, settings, elect=elect, subscribe=subscribe)
        rt.on_desk_reload(lambda: reload(leader), DeskConfigError, ConfigError)
        rt.background("leader", leader.run)
        rt.background("clock", leader.clock)
        rt.readiness("routing", leader.readiness)

    async def reload(leader: Leader) -> dict[str, int]:
        fresh = await asyncio.to_thread(desks.load, settings.desk_directory)
        leader.reconfigure(fresh)
        return {"queues": len(fresh.queues)}

    return Service("routing", settings, start)
