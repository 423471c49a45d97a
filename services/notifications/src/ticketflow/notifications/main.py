"""Composition: the desks, the channel accounts and staff (a TOML file of this service's own), the pool,
the ledger and this worker's liveness lock, the delivery engine, the application, the two subscriptions
and the recovery loop.

Run: `python -m ticketflow.notifications` (TICKETFLOW_NOTIFICATIONS_PORT, default 8005; every variable:
`settings.py`). The desks and the configuration file are read by `build`, so a broken one stops the
process with the problem before anything starts (exit 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from ticketflow.bitrix24 import Installs, OAuthServer, PortalRest, apps_from_desks
from ticketflow.deskconfig import DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.notifications.adapters.channels import ChannelClient
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.directory import Directory, build_channels, load_config
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.adapters.liveness import Liveness
from ticketflow.notifications.adapters.pool import make_pool
from ticketflow.notifications.adapters.rendering import TemplateCatalog
from ticketflow.notifications.app import Notifications
from ticketflow.notifications.consumer import subscribe
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.gc_tuning import tune_gc
from ticketflow.runtime.service import Runtime, Service


def make_app(pool: asyncpg.Pool, desks: DeskRegistry, directory: Directory, channels: Sequence[ChannelClient],
             catalog: TemplateCatalog | None = None, ledger: PgLedger | None = None,
             **deliverer_options: Any) -> Notifications:  # fmt: skip
    catalog = catalog or TemplateCatalog.from_directory()
    deliverer = Deliverer(ledger=ledger or PgLedger(pool), catalog=catalog, channels=channels, **deliverer_options)
    return Notifications(EventStore(pool), deliverer, desks, directory)


def portal_rest(settings: NotificationsSettings, pool: asyncpg.Pool, desks: DeskRegistry) -> PortalRest:
    """Bitrix24 portals through their installs (ticketflow.bitrix24); the caller closes `.http`."""
    http = settings.b24_http()
    installs = Installs(pool, ttl_s=settings.b24_install_ttl)
    return PortalRest(installs, apps_from_desks(desks), OAuthServer(http, settings.b24_oauth_server), http)


def build(settings: NotificationsSettings) -> Service:
    desks = load_desks(settings.desk_directory)
    config = load_config(settings.config_file)

    async def start(rt: Runtime) -> None:
        desks.warm_calendars()
        pool = await make_pool(settings.pg_dsn, settings.pool)
        rt.on_close(pool.close)  # closing hooks run last-registered first: the channels, then the pool
        portals = portal_rest(settings, pool, desks)
        rt.on_close(portals.http.aclose)
        channels = build_channels(config, bitrix24=portals)
        for channel in channels:
            rt.on_close(channel.aclose)
        ledger = PgLedger(pool, lease_seconds=settings.lease_seconds)
        # This process's claims are taken over at once if it is killed (before the first claim).
        liveness = Liveness(ledger.claimant, lambda: asyncpg.connect(settings.pg_dsn))
        await liveness.start()
        rt.on_close(liveness.close)
        rt.background("ledger liveness", liveness.keep)
        app = make_app(
            pool, desks, Directory.from_config(config), channels, ledger=ledger,
            per_destination=settings.per_destination, attempt_deadline=settings.send_deadline_seconds,
        )  # fmt: skip
        subscribe(rt, app, settings)
        rt.on_desk_reload(lambda: reload(app), DeskConfigError)
        rt.background("recovery", lambda stop: app.keep_recovering(
            stop, every=settings.recover_seconds, auto_redrive_after=settings.auto_redrive_seconds))  # fmt: skip
        # The batch consumers' collector thresholds, and the start-up heap (desks, calendars, templates)
        # out of the collector's reach: CPython's cost ~30 % of this process's CPU (runtime.gc_tuning).
        tune_gc(settings.gc_thresholds, freeze=True)

    async def reload(app: Notifications) -> dict[str, int]:
        fresh = await asyncio.to_thread(load_desks, settings.desk_directory)
        await asyncio.to_thread(fresh.warm_calendars)
        app.desks = fresh  # the next event is planned under it
        return {"desks": len(fresh.desks)}

    return Service("notifications", settings, start)
