"""Composition: desk configuration and the portal checks' configuration (validated first: a broken desk,
scope rule or feed file stops the process), the application service, its subscription.

Run: `python -m ticketflow.preflight` (TICKETFLOW_PREFLIGHT_PORT, default 8002)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ticketflow.deskconfig import Desk, DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight import consumer
from ticketflow.preflight.adapters.checks import ChecksConfig, ConfigError, SystemResolver, checks_config_for
from ticketflow.preflight.adapters.stable_versions import stable_versions_for
from ticketflow.preflight.app import Preflight
from ticketflow.preflight.domain.desk_rules import scope_for
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import Runtime, Service

REFUSALS = (DeskConfigError, ConfigError, OSError, ValueError)  # a desk, scope rule or feed file preflight cannot use


def checks_configs(desks: DeskRegistry, settings: PreflightSettings) -> dict[str, ChecksConfig]:
    """Every desk's checks configuration, built (and so validated) at start-up."""
    return {d.id: checks_config_for(d, stable_versions_for(d, settings.stable_versions)) for d in desks.desks.values()}


def configure(desks: DeskRegistry, settings: PreflightSettings) -> Callable[[Desk], ChecksConfig]:
    """Every desk's checks configuration and scope rules, built (and so validated) now: a broken one stops
    start-up (or refuses a reload), not the first ticket."""
    configs = checks_configs(desks, settings)
    for desk in desks.desks.values():
        scope_for(desk)
    return lambda desk: configs[desk.id]


def build(settings: PreflightSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    checks_config = configure(desks, settings)

    async def start(rt: Runtime) -> None:
        preflight = Preflight(EventStore(rt.pool), desks, SystemResolver(), checks_config)
        consumer.subscribe(rt, preflight, settings)
        rt.on_desk_reload(lambda: reload(preflight), *REFUSALS)

    async def reload(preflight: Preflight) -> dict[str, int]:
        fresh = await asyncio.to_thread(load_desks)
        preflight.reconfigure(fresh, await asyncio.to_thread(configure, fresh, settings))
        return {"desks": len(fresh.desks)}

    return Service("preflight", settings, start)
