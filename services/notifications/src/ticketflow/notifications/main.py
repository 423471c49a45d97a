"""Wiring: desk configuration, channel accounts and staff, the ledger, the broker.

Run: `python -m ticketflow.notifications` (port TICKETFLOW_NOTIFICATIONS_PORT, default 8005).
Environment (besides TICKETFLOW_KAFKA_BOOTSTRAP / TICKETFLOW_PG_DSN):
- TICKETFLOW_NOTIFICATIONS_CONFIG: channel accounts and staff (default: the packaged local.toml);
- TICKETFLOW_DESK_CONFIG_DIR: desk files (default: the packaged desks);
- TICKETFLOW_NOTIFICATIONS_PARALLEL (64): tickets handled at once; TICKETFLOW_NOTIFICATIONS_POOL (24):
  PostgreSQL connections; TICKETFLOW_NOTIFICATIONS_RECOVER_SECONDS (60): how often stale claims are
  finished (`Deliverer.recover_stale`); TICKETFLOW_NOTIFICATIONS_AUTO_REDRIVE_SECONDS (300, 0 = off):
  dead letters of temporary causes (destination down) older than this are redriven automatically;
  TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS (50000,20,100; "700,10,10" restores CPython's): `runtime.gc_tuning`;
- TICKETFLOW_NOTIFICATIONS_TOPIC / _GROUP: the topic and consumer group (ticket.events / notifications);
- TICKETFLOW_NOTIFICATIONS_REPLIES_TOPIC / _REPLIES_GROUP: the bot's replies outside the lifecycle
  (chat.replies / notifications.replies).
A broken configuration file stops the process with the problem (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg

from ticketflow.contracts.topics import CHAT_REPLIES, TICKET_EVENTS
from ticketflow.deskconfig import DeskConfigError, DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.notifications.channels import ChannelClient
from ticketflow.notifications.delivery import Deliverer
from ticketflow.notifications.directory import ConfigError, Directory, build_channels, load_config
from ticketflow.notifications.handlers import (
    GROUP_ID,
    REPLIES_GROUP_ID,
    NotificationHandlers,
    ReplyHandlers,
    subscribe,
    subscribe_replies,
)
from ticketflow.notifications.ledger import PgLedger
from ticketflow.notifications.rendering import TemplateCatalog
from ticketflow.notifications.service import NotificationService
from ticketflow.runtime.gc_tuning import tune_gc
from ticketflow.runtime.kafka import DeadLetters
from ticketflow.runtime.service import Service, new_service, run

log = logging.getLogger("ticketflow.notifications")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def make_service(pool: asyncpg.Pool, desks: DeskRegistry, directory: Directory, channels: Sequence[ChannelClient],
                 catalog: TemplateCatalog | None = None, **deliverer_options: Any) -> NotificationService:  # fmt: skip
    catalog = catalog or TemplateCatalog.from_directory()
    deliverer = Deliverer(ledger=PgLedger(pool), catalog=catalog, channels=channels, **deliverer_options)
    return NotificationService(EventStore(pool), deliverer, desks, directory)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's default reset query (a round trip per statement): this
    service sets no session state, takes no advisory locks and never LISTENs; an open transaction
    is still rolled back by the pool before this is called."""


async def make_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=2, max_size=size, reset=_keep_session)
    return pool


async def recover_periodically(
    service: NotificationService, stop: asyncio.Event, every: float, auto_redrive_after: float
) -> None:
    """Finish claims whose worker went away; redrive dead letters of temporary causes (0: never)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        try:
            outcomes = await service.deliverer.recover_stale()
            if outcomes:
                await service.record_by_keys(outcomes)
                log.info("notifications: recovered %d stale deliveries", len(outcomes))
            if auto_redrive_after > 0 and (redriven := await service.redrive_temporary(older_than=auto_redrive_after)):
                log.info("notifications: redrove %d dead letters of temporary causes", redriven)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("notifications: recovery round failed, next in %.0fs: %r", every, exc)


def build(desks: DeskRegistry | None = None) -> Service:
    desks = desks or load_desks()
    config = load_config()
    directory = Directory.from_config(config)
    service = new_service("notifications")
    dead_letters = DeadLetters(service.broker, "notifications")
    parallel = _int("TICKETFLOW_NOTIFICATIONS_PARALLEL", 64)
    handlers = NotificationHandlers(dead_letters, parallel=parallel)
    replies = ReplyHandlers(dead_letters, parallel=parallel)
    subscribe(
        service.broker,
        handlers,
        topic=os.environ.get("TICKETFLOW_NOTIFICATIONS_TOPIC", TICKET_EVENTS),
        group_id=os.environ.get("TICKETFLOW_NOTIFICATIONS_GROUP", GROUP_ID),
    )
    subscribe_replies(
        service.broker,
        replies,
        topic=os.environ.get("TICKETFLOW_NOTIFICATIONS_REPLIES_TOPIC", CHAT_REPLIES),
        group_id=os.environ.get("TICKETFLOW_NOTIFICATIONS_REPLIES_GROUP", REPLIES_GROUP_ID),
    )
    state: dict[str, NotificationService] = {}
    channels: list[ChannelClient] = []

    async def start() -> None:
        desks.warm_calendars()
        pool = await make_pool(service.settings.pg_dsn, _int("TICKETFLOW_NOTIFICATIONS_POOL", 24))
        channels.extend(build_channels(config))
        state["service"] = make_service(pool, desks, directory, channels)
        handlers.attach(state["service"])
        replies.attach(state["service"])

    async def recover(stop: asyncio.Event) -> None:
        await handlers.attached.wait()  # background tasks start after on_start; this is a guard
        notifications = state["service"]
        try:
            every = float(os.environ.get("TICKETFLOW_NOTIFICATIONS_RECOVER_SECONDS", 60))
            auto_redrive = float(os.environ.get("TICKETFLOW_NOTIFICATIONS_AUTO_REDRIVE_SECONDS", 300))
            await recover_periodically(notifications, stop, every, auto_redrive)
        finally:
            if stop.is_set():  # shutting down: close the channels' connections and our pool
                for channel in channels:
                    with contextlib.suppress(Exception):
                        await channel.aclose()
                await notifications.store.pool.close()

    service.on_start.append(start)
    service.background.append(recover)
    return service


def main() -> None:
    try:
        service = build()
    except (DeskConfigError, ConfigError, OSError, ValueError) as error:
        print(f"notifications: refusing to start: {error}", file=sys.stderr)
        sys.exit(2)
    # CPython's collector thresholds cost ~30 % of this process's CPU at 2,000 messages/s (every Kafka
    # record, context and request allocates; full collections rescanned the start-up heap): the batch
    # consumers' thresholds, and the heap built so far (modules, templates, desks) frozen out of reach.
    tune_gc("notifications", freeze=True)
    run(service)


if __name__ == "__main__":
    main()
