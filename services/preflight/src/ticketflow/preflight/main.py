"""Composition: desk configuration, the portal checks' configuration and each desk's stable-versions feed
(validated first: a broken desk, scope rule or feed file stops the process), the Bitrix24 installs' REST
(license and updates), the application service, its subscription.

Run: `python -m ticketflow.preflight` (TICKETFLOW_PREFLIGHT_PORT, default 8002)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ticketflow.bitrix24 import Installs, OAuthServer, PortalRest, apps_from_desks
from ticketflow.deskconfig import Desk, DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight import consumer
from ticketflow.preflight.adapters.checks import ChecksConfig, ConfigError, Resolver, SystemResolver, checks_config_for
from ticketflow.preflight.adapters.stable_versions import StableVersionsFeed, stable_versions_feed
from ticketflow.preflight.app import Preflight
from ticketflow.preflight.domain.desk_rules import scope_for
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import Runtime, Service

REFUSALS = (DeskConfigError, ConfigError, OSError, ValueError)  # a desk, scope rule or feed file preflight cannot use


def checks_configs(
    desks: DeskRegistry, settings: PreflightSettings, resolver: Resolver | None = None
) -> tuple[dict[str, ChecksConfig], dict[str, StableVersionsFeed]]:
    """Every desk's checks configuration and stable-versions feed, built (and so validated) at start-up."""
    configs, feeds = {}, {}
    for desk in desks.desks.values():
        configs[desk.id] = config = checks_config_for(desk, {})
        feeds[desk.id] = stable_versions_feed(
            desk, settings.stable_versions, config, resolver or SystemResolver(),
            ttl_s=settings.feed_ttl, retry_s=settings.feed_retry,
        )  # fmt: skip
    return configs, feeds


def configure(
    desks: DeskRegistry, settings: PreflightSettings
) -> tuple[Callable[[Desk], ChecksConfig], dict[str, StableVersionsFeed]]:
    """Every desk's checks configuration, feed and scope rules, built (and so validated) now: a broken one
    stops start-up (or refuses a reload), not the first ticket."""
    configs, feeds = checks_configs(desks, settings)
    for desk in desks.desks.values():
        scope_for(desk)
    return lambda desk: configs[desk.id], feeds


def build(settings: PreflightSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    checks_config, feeds = configure(desks, settings)

    async def start(rt: Runtime) -> None:
        http = settings.b24_http()
        rt.on_close(http.aclose)
        installs = Installs(rt.pool, ttl_s=settings.b24_install_ttl)
        portals = PortalRest(installs, apps_from_desks(desks), OAuthServer(http, settings.b24_oauth_server), http)
        preflight = Preflight(EventStore(rt.pool), desks, SystemResolver(), checks_config,
                              portal_call=portals.call, feeds=feeds)  # fmt: skip
        consumer.subscribe(rt, preflight, settings)
        rt.on_desk_reload(lambda: reload(preflight), *REFUSALS)

    async def reload(preflight: Preflight) -> dict[str, int]:
        fresh = await asyncio.to_thread(load_desks)
        preflight.reconfigure(fresh, *await asyncio.to_thread(configure, fresh, settings))
        return {"desks": len(fresh.desks)}

    return Service("preflight", settings, start)
