"""Re-send dead-lettered deliveries after their cause is fixed, and record the outcomes (the command line:
`ticketflow notifications dead` and `ticketflow notifications redrive --key K | --all`).

An unknown outcome (a request left, no answer said whether the chat got it) is redriven only by its key,
after a person checked the chat: `--all` never sends one again blindly.

Uses the same settings as the service (`NotificationsSettings`: TICKETFLOW_NOTIFICATIONS_CONFIG,
TICKETFLOW_DESK_CONFIG_DIR, TICKETFLOW_PG_DSN) and the channel secrets its configuration file names.
Each dead letter is re-claimed atomically, so running it twice, or next to the service, never sends one
twice; a delivered key is never touched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ticketflow.deskconfig import load_desks
from ticketflow.notifications.adapters.directory import Directory, build_channels, load_config
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.adapters.liveness import Liveness
from ticketflow.notifications.domain.model import DeliveryOutcome, OutcomeStatus
from ticketflow.notifications.main import make_app, portal_rest
from ticketflow.notifications.settings import NotificationsSettings


@dataclass(frozen=True)
class Redriven:
    outcomes: list[DeliveryOutcome]
    recorded: int  # outcome events appended

    @property
    def failed(self) -> int:
        """Deliveries dead again, or whose outcome is unknown again."""
        return sum(o.status in (OutcomeStatus.DEAD_LETTER, OutcomeStatus.UNKNOWN) for o in self.outcomes)


async def dead_deliveries(settings: NotificationsSettings, limit: int) -> list[dict[str, Any]]:
    """The oldest `limit` dead deliveries and unknown outcomes, with their status and causes."""
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        return [dict(r) for r in await PgLedger(pool).dead(limit)]
    finally:
        await pool.close()


async def redrive_deliveries(settings: NotificationsSettings, keys: Sequence[str] | None, limit: int) -> Redriven:
    """Send these deliveries again (dead or unknown; None: the oldest `limit` dead ones) and record their
    outcomes. Raises `ConfigError` / `DeskConfigError` for a file it cannot run with."""
    config = load_config(settings.config_file)
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=8)
    assert pool is not None
    desks = load_desks(settings.desk_directory)
    portals = portal_rest(settings, pool, desks)
    channels = build_channels(config, bitrix24=portals)
    try:
        ledger = PgLedger(pool, lease_seconds=settings.lease_seconds)
        app = make_app(pool, desks, Directory.from_config(config), channels,
                       ledger=ledger, attempt_deadline=settings.send_deadline_seconds)  # fmt: skip
        liveness = Liveness(ledger.claimant, lambda: asyncpg.connect(settings.pg_dsn))
        await liveness.start()  # the service must not take this run's claims over while it runs
        try:
            outcomes = await app.deliverer.redrive(keys, limit=limit)
            return Redriven(outcomes, await app.record_by_keys(outcomes))
        finally:
            await liveness.close()
    finally:
        for channel in channels:
            await channel.aclose()
        await portals.http.aclose()
        await pool.close()
