"""What exactly-once costs: deliveries/s through the engine (PostgreSQL ledger claim, fence and
record per message) against the baseline of the bare webhook channel POSTing to the same local
receiver, and a redelivery storm (every event delivered again: ledger only, nothing sent).

Run: make bench-notifications   (or: .venv/bin/python tests/load/notifications/bench_delivery.py --n 2000)
Needs PostgreSQL at TICKETFLOW_PG_DSN (a temporary schema is created and dropped). Traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for the fakes
from fakes.webhook import FakeWebhookReceiver

from ticketflow.eventstore.connection import dsn_from_env
from ticketflow.notifications.adapters.channels import WebhookChannel, WebhookEndpoint
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.ledger import PgLedger, migration_sql
from ticketflow.notifications.adapters.rendering import TemplateCatalog
from ticketflow.notifications.domain.model import Channel, Notification, OutcomeStatus, OutgoingMessage

DSN = dsn_from_env()
VARIABLES = {"ticket_number": "B24-1", "agent_name": "Anna", "message": "Please clear the cache."}


async def timed(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with semaphore:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(n)))
    return time.perf_counter() - start


def notification(i: int, run_id: str) -> Notification:
    return Notification.for_event(
        event_id=f"{run_id}-{i}", channel=Channel.WEBHOOK, recipient="client-1", destination="crm",
        address="ext-1", template="agent_reply", locale="ru", variables=VARIABLES,
    )  # fmt: skip


async def main(n: int, concurrency: int) -> None:
    schema = f"notif_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pool = await asyncpg.create_pool(DSN, min_size=4, max_size=concurrency, server_settings={"search_path": schema})
    try:
        async with pool.acquire() as connection:
            for _name, sql in migration_sql():
                await connection.execute(sql)
        async with FakeWebhookReceiver(secret="s").running() as receiver:
            channel = WebhookChannel([WebhookEndpoint("crm", receiver.url, "s")])
            catalog = TemplateCatalog.from_directory()
            deliverer = Deliverer(ledger=PgLedger(pool), catalog=catalog, channels=[channel])
            rendered = catalog.render("agent_reply", "ru", VARIABLES)
            run_id = uuid.uuid4().hex[:8]

            async def bare(i: int) -> object:
                message = OutgoingMessage(f"bare-{i}", "crm", "ext-1", rendered.subject, rendered.body, "ru",
                                          "agent_reply", f"e{i}", "client-1")  # fmt: skip
                return await channel.send(message)

            async def engine(i: int) -> object:
                outcome = await deliverer.deliver(notification(i, run_id))
                assert outcome.status is OutcomeStatus.DELIVERED, outcome
                return outcome

            async def redelivery(i: int) -> object:
                outcome = await deliverer.deliver(notification(i, run_id))
                assert outcome.status is OutcomeStatus.DUPLICATE, outcome
                return outcome

            rows = []
            baseline = None
            for name, one in [("bare webhook POST (baseline)", bare), ("engine: claim+render+send+record", engine),
                              ("engine: redelivered events (nothing sent)", redelivery)]:  # fmt: skip
                received_before = len(receiver.received)
                seconds = await timed(n, concurrency, one)
                rate = n / seconds
                baseline = baseline or rate
                sent = len(receiver.received) - received_before
                rows.append([name, n, concurrency, f"{rate:,.0f}", f"{rate / baseline:.2f}x", sent])
            await channel.aclose()
        assert len(receiver.unique_keys) == len(receiver.received) == 2 * n, "something was sent twice"
        print(tabulate(rows, headers=["path", "N", "concurrency", "msgs/s", "vs baseline", "POSTs received"]))
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
