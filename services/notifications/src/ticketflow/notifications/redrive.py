"""Re-send dead-lettered deliveries after their cause is fixed, and record the outcomes.

    python -m ticketflow.notifications.redrive --list             # what is dead or unknown, and why
    python -m ticketflow.notifications.redrive --key K [--key K2]  # these deliveries (dead or unknown)
    python -m ticketflow.notifications.redrive --all [--limit N]   # the oldest N dead letters

An unknown outcome (a request left, no answer said whether the chat got it) is redriven only by its key,
after a person checked the chat: `--all` never sends one again blindly.

Uses the same settings as the service (`NotificationsSettings`: TICKETFLOW_NOTIFICATIONS_CONFIG,
TICKETFLOW_DESK_CONFIG_DIR, TICKETFLOW_PG_DSN) and the channel secrets its configuration file names.
Each dead letter is re-claimed atomically, so running it twice, or next to the service, never sends one
twice; a delivered key is never touched. Exit status 1 if any failed again, 2 for a bad setting or file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ticketflow.deskconfig import DeskConfigError, load_desks
from ticketflow.notifications.adapters.directory import ConfigError, Directory, build_channels, load_config
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.adapters.liveness import Liveness
from ticketflow.notifications.domain.model import OutcomeStatus
from ticketflow.notifications.main import make_app, portal_rest
from ticketflow.notifications.settings import NotificationsSettings
from ticketflow.runtime.settings import SettingsError, load_settings


def table(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [[r["idempotency_key"], r["status"], r["channel"], r["recipient"], r["template"], str(r["attempts"]),
             f"{r['updated_at']:%Y-%m-%d %H:%M:%S}", (r["last_error"] or "")[:80]] for r in rows]  # fmt: skip


async def run(settings: NotificationsSettings, keys: Sequence[str] | None, limit: int, listing: bool) -> int:
    config = load_config(settings.config_file)
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=8)
    desks = load_desks(settings.desk_directory)
    portals = portal_rest(settings, pool, desks)
    channels = build_channels(config, bitrix24=portals)
    try:
        if listing:
            rows = table(await PgLedger(pool).dead(limit))
            for row in [["key", "status", "channel", "recipient", "template", "tries", "since", "reason"], *rows]:
                print("  ".join(row))
            return 0
        ledger = PgLedger(pool, lease_seconds=settings.lease_seconds)
        app = make_app(pool, desks, Directory.from_config(config), channels,
                       ledger=ledger, attempt_deadline=settings.send_deadline_seconds)  # fmt: skip
        liveness = Liveness(ledger.claimant, lambda: asyncpg.connect(settings.pg_dsn))
        await liveness.start()  # the service must not take this run's claims over while it runs
        try:
            outcomes = await app.deliverer.redrive(keys, limit=limit)
            recorded = await app.record_by_keys(outcomes)
        finally:
            await liveness.close()
        for o in outcomes:
            print(f"{o.key}  {o.status.value}  {o.reason or ''}")
        failed = sum(o.status in (OutcomeStatus.DEAD_LETTER, OutcomeStatus.UNKNOWN) for o in outcomes)
        print(f"redriven: {len(outcomes)}, delivered: {len(outcomes) - failed}, dead or unknown again: {failed}, "
              f"outcome events recorded: {recorded}")  # fmt: skip
        return 1 if failed else 0
    finally:
        for channel in channels:
            await channel.aclose()
        await portals.http.aclose()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketflow.notifications.redrive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", action="append", help="key of a dead letter or unknown outcome (repeatable)")
    which.add_argument("--all", action="store_true", help="the oldest --limit dead letters")
    which.add_argument("--list", action="store_true", help="list dead letters and unknown outcomes with their causes")
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(NotificationsSettings)
        return asyncio.run(run(settings, None if args.all or args.list else args.key, args.limit, args.list))
    except (SettingsError, ConfigError, DeskConfigError) as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
