"""Composition: desk configuration and the portal checks' configuration (validated first: a broken desk,
scope rule or feed file stops the process), the application service, its subscription.

Run: `python -m ticketflow.preflight` (TICKETFLOW_PREFLIGHT_PORT, default 8002)."""

from __future__ import annotations

from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight import consumer
from ticketflow.preflight.adapters.checks import ChecksConfig, SystemResolver, checks_config_for
from ticketflow.preflight.adapters.stable_versions import stable_versions_for
from ticketflow.preflight.app import Preflight
from ticketflow.preflight.domain.desk_rules import scope_for
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import Runtime, Service


def checks_configs(desks: DeskRegistry, settings: PreflightSettings) -> dict[str, ChecksConfig]:
    """Every desk's checks configuration, built (and so validated) at start-up."""
    return {d.id: checks_config_for(d, stable_versions_for(d, settings.stable_versions)) for d in desks.desks.values()}


def build(settings: PreflightSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    configs = checks_configs(desks, settings)
    for desk in desks.desks.values():
        scope_for(desk)  # a bad scope rule stops start-up, not the first ticket

    async def start(rt: Runtime) -> None:
        preflight = Preflight(EventStore(rt.pool), desks, SystemResolver(), lambda desk: configs[desk.id])
        consumer.subscribe(rt, preflight, settings)

    return Service("preflight", settings, start)
