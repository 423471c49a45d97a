"""Composition: desk configuration, the portal checks' configuration and each desk's stable-versions feed
(validated first: a broken desk, scope rule or feed file stops the process), the Bitrix24 installs' REST
(license and updates), the application service, its subscription.

Run: `python -m ticketflow.preflight` (TICKETFLOW_PREFLIGHT_PORT, default 8002)."""

from __future__ import annotations

from ticketflow.bitrix24 import Installs, OAuthServer, PortalRest, apps_from_desks
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight import consumer
from ticketflow.preflight.adapters.checks import ChecksConfig, Resolver, SystemResolver, checks_config_for
from ticketflow.preflight.adapters.stable_versions import StableVersionsFeed, stable_versions_feed
from ticketflow.preflight.app import Preflight
from ticketflow.preflight.domain.desk_rules import scope_for
from ticketflow.preflight.settings import PreflightSettings
from ticketflow.runtime.service import Runtime, Service


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


def build(settings: PreflightSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    configs, feeds = checks_configs(desks, settings)
    for desk in desks.desks.values():
        scope_for(desk)  # a bad scope rule stops start-up, not the first ticket

    async def start(rt: Runtime) -> None:
        http = settings.b24_http()
        rt.on_close(http.aclose)
        installs = Installs(rt.pool, ttl_s=settings.b24_install_ttl)
        portals = PortalRest(installs, apps_from_desks(desks), OAuthServer(http, settings.b24_oauth_server), http)
        preflight = Preflight(EventStore(rt.pool), desks, SystemResolver(), lambda desk: configs[desk.id],
                              portal_call=portals.call, feeds=feeds)  # fmt: skip
        consumer.subscribe(rt, preflight, settings)

    return Service("preflight", settings, start)
