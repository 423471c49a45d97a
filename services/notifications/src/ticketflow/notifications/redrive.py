"""Re-send dead-lettered deliveries after their cause is fixed, and record the outcomes.

    python -m ticketflow.notifications.redrive --list             # what is dead, and why
    python -m ticketflow.notifications.redrive --key K [--key K2]  # these deliveries
    python -m ticketflow.notifications.redrive --all [--limit N]   # the oldest N dead letters

Uses the same configuration as the service (TICKETFLOW_NOTIFICATIONS_CONFIG, TICKETFLOW_PG_DSN, the
channel secrets). Each dead letter is re-claimed atomically, so running it twice, or next to the
service, never sends one twice; a delivered key is never touched. Exit status 1 if any failed again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from ticketflow.deskconfig import load_desks
from ticketflow.notifications.directory import ConfigError, Directory, build_channels, load_config
from ticketflow.notifications.main import make_service
from ticketflow.notifications.model import OutcomeStatus
from ticketflow.runtime.settings import Settings


async def list_dead(pool: asyncpg.Pool, limit: int) -> list[list[str]]:
    rows = await pool.fetch(
        "SELECT idempotency_key, channel, recipient, template, attempts, last_error, updated_at"
        " FROM notification_deliveries WHERE status = 'dead' ORDER BY updated_at LIMIT $1",
        limit,
    )
    return [[r["idempotency_key"], r["channel"], r["recipient"], r["template"], str(r["attempts"]),
             f"{r['updated_at']:%Y-%m-%d %H:%M:%S}", (r["last_error"] or "")[:80]] for r in rows]  # fmt: skip


async def run(keys: Sequence[str] | None, limit: int, listing: bool) -> int:
    config = load_config()
    pool = await asyncpg.create_pool(Settings.from_env("notifications").pg_dsn, min_size=1, max_size=8)
    channels = build_channels(config)
    try:
        if listing:
            rows = await list_dead(pool, limit)
            for row in [["key", "channel", "recipient", "template", "tries", "since", "reason"], *rows]:
                print("  ".join(row))
            return 0
        service = make_service(pool, load_desks(), Directory.from_config(config), channels)
        outcomes = await service.deliverer.redrive(keys, limit=limit)
        recorded = await service.record_by_keys(outcomes)
        for o in outcomes:
            print(f"{o.key}  {o.status.value}  {o.reason or ''}")
        failed = sum(o.status is OutcomeStatus.DEAD_LETTER for o in outcomes)
        print(f"redriven: {len(outcomes)}, delivered: {len(outcomes) - failed}, dead again: {failed}, "
              f"outcome events recorded: {recorded}")  # fmt: skip
        return 1 if failed else 0
    finally:
        for channel in channels:
            await channel.aclose()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketflow.notifications.redrive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", action="append", help="idempotency key of a dead letter (repeatable)")
    which.add_argument("--all", action="store_true", help="the oldest --limit dead letters")
    which.add_argument("--list", action="store_true", help="list dead letters with their causes")
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(None if args.all or args.list else args.key, args.limit, args.list))
    except ConfigError as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
