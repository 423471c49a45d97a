"""Composition: intake serves the chat platforms' webhooks, records `chat.inbound` into tickets, applies
agents' commands from `ticket.commands`, and relays queued replies to `chat.replies`.

Run: `python -m ticketflow.intake` (TICKETFLOW_INTAKE_PORT, default 8001). A broken tenant or desk file
stops the process with the problem (exit 2), before anything starts."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from ticketflow.bitrix24 import BotProfile, Installs, OAuthServer, PortalRest
from ticketflow.eventstore import EventStore
from ticketflow.intake import ops
from ticketflow.intake.adapters.chat_inbound import ChatInbound
from ticketflow.intake.adapters.desk_pauses import DeskPauses
from ticketflow.intake.adapters.intake_tables import IntakeTables
from ticketflow.intake.adapters.portal_admin import AdminCheck
from ticketflow.intake.adapters.portals import Portals
from ticketflow.intake.adapters.replies import ReplyRelay
from ticketflow.intake.app import Intake
from ticketflow.intake.consumer import INBOUND_CONSUMER, subscribe
from ticketflow.intake.http import Webhooks, routes
from ticketflow.intake.metrics import Metrics
from ticketflow.intake.platforms.botx import BotxGateway
from ticketflow.intake.settings import IntakeSettings
from ticketflow.intake.tenants import Tenants, load_tenants
from ticketflow.runtime.gc_tuning import tune_gc
from ticketflow.runtime.netguard import AddressPolicy
from ticketflow.runtime.service import Runtime, Service

log = logging.getLogger("ticketflow.intake")


def build(settings: IntakeSettings, tenants: Tenants | None = None) -> Service:
    """Raises `tenants.ConfigError` for a tenant or desk file intake cannot serve from."""
    tenants = tenants or load_tenants(settings.tenants)
    metrics = Metrics(REGISTRY)  # served on the operations port

    async def start(rt: Runtime) -> None:
        # The batch consumer's collector thresholds (ticketflow.runtime.gc_tuning: ~30 % of its CPU), and
        # no access log: a line per webhook costs throughput; the runtime counts requests by route and status.
        tune_gc(settings.gc_thresholds)
        access_log = logging.getLogger("uvicorn.access")
        access_log.handlers, access_log.propagate = [], False  # uvicorn then skips the access log's work
        inbound = None
        if settings.accept == "kafka":
            inbound = ChatInbound(settings.kafka_bootstrap, settings.topic, settings.kafka_security())
            await inbound.start()
            rt.on_close(inbound.stop)
            rt.readiness("chat.inbound producer", inbound.ready)
        events, pauses = EventStore(rt.pool), DeskPauses(rt.pool)
        await pauses.load()
        dead_letters = rt.dead_letters(INBOUND_CONSUMER)
        intake = Intake(tenants, events, IntakeTables(rt.pool, events), metrics, inbound=inbound,
                        dead_letters=dead_letters, lanes=settings.lanes, pauses=pauses)  # fmt: skip
        http = settings.b24_http()
        rt.on_close(http.aclose)
        installs = Installs(rt.pool, ttl_s=settings.b24_install_ttl)
        rest = PortalRest(installs, tenants.b24_apps, OAuthServer(http, settings.b24_oauth_server), http)
        bot = BotProfile(settings.b24_events_url) if settings.b24_events_url else None
        if bot is None and tenants.bitrix24:
            log.warning("TICKETFLOW_INTAKE_B24_EVENTS_URL is not set: Bitrix24 installs register no chat bot")
        webhooks = Webhooks(intake, BotxGateway(tenants), Portals(rest, bot), admin_check())
        rt.on_close(lambda: webhooks.botx.close())  # the one in use: a desk reload replaces it
        rt.serve(*routes(webhooks, noop=settings.noop))
        ops.register(rt, settings, intake, webhooks)
        if settings.consume:
            subscribe(rt, settings, intake)
        if settings.replies_topic:
            relay = ReplyRelay(
                rt.pool, settings.kafka_bootstrap, settings.replies_topic, security=settings.kafka_security()
            )
            rt.background("reply relay", relay.run)

    def admin_check() -> AdminCheck | None:
        if not settings.b24_admin_check:
            return None
        policy = AddressPolicy(settings.b24_allowed_networks)
        return AdminCheck(metrics, policy=policy, ca_file=settings.b24_ca_file,
                          ports=frozenset(settings.b24_allowed_ports),
                          timeout_s=settings.b24_admin_timeout, ttl_s=settings.b24_admin_ttl)  # fmt: skip

    return Service("intake", settings, start)
