"""Composition: the support lead's page and the agent's workspace (docs/dashboard.md).

Run: `python -m ticketflow.dashboard` (TICKETFLOW_DASHBOARD_PORT, default 8008). It reads through the query
API with each visitor's own token, reads ticket streams from the store to check and follow an action, and
sends agents' commands on `ticket.commands`."""

from __future__ import annotations

from ticketflow.dashboard.adapters.commands import CommandSender, TicketStreams
from ticketflow.dashboard.adapters.query_api import QueryApi
from ticketflow.dashboard.app import Dashboard
from ticketflow.dashboard.http import routes
from ticketflow.dashboard.pages import Pages
from ticketflow.dashboard.settings import DashboardSettings
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.eventstore.store import EventStore
from ticketflow.runtime.service import Runtime, Service


def build(settings: DashboardSettings, desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks(settings.desk_folder())

    async def start(rt: Runtime) -> None:
        api = QueryApi(settings.queries_url)
        rt.on_close(api.close)
        sender = CommandSender(rt.producer, settings.commands_topic)
        dashboard = Dashboard(api, sender, TicketStreams(EventStore(rt.pool)), settings.action_wait_s, desks)
        rt.serve(
            *routes(dashboard, Pages(desks), live_wait_ms=settings.live_wait_ms, secure_cookie=settings.secure_cookie)
        )

    return Service("dashboard", settings, start)
