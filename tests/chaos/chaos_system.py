"""The system the chaos run breaks: every service a real process (tests/support/system.py) on a PRIVATE
broker (tests/support/kafka_broker.py) and a PRIVATE PostgreSQL cluster (tests/support/private_postgres.py),
so both may be stopped; nothing on the shared ones is touched.

The desks are the packaged ones with one change, so that SLA timers fall due during the run: the eXpress
client-support track (the public bot's) counts in the around-the-clock calendar and has a policy with a
one-minute first response for every priority (the packaged track has no SLA). Notifications keeps its
default send deadline (`SEND_DEADLINE_S`, 20 s: a shorter one turned answers that were merely late on
this loaded 2-core box into unknown outcomes), so a slow destination is one that answers after 20 s; its
automatic redrive is quick, so what a dead destination dead-lettered in the ledger goes out once it is
back.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from support.desks import client_track_with_sla
from support.eventstore import migrated_pool
from support.kafka_broker import PrivateKafka
from support.private_postgres import PrivatePostgres
from support.system import ChatPlatforms, PrivateTopics, System

SERVICES = ("projector", "intake", "preflight", "routing", "sla", "notifications")
SEND_DEADLINE_S = 20.0
FIRST_RESPONSE_MINUTES = 1


@dataclass
class ChaosSystem:
    kafka: PrivateKafka
    cluster: PrivatePostgres
    topics: PrivateTopics
    platforms: ChatPlatforms
    system: System

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap


@asynccontextmanager
async def chaos_system(directory: Path) -> AsyncIterator[ChaosSystem]:
    kafka = PrivateKafka()
    await asyncio.to_thread(kafka.start)
    cluster: PrivatePostgres | None = None
    try:
        cluster = await asyncio.to_thread(PrivatePostgres.create)
        pool = await migrated_pool(cluster.dsn)
        await pool.close()
        topics = PrivateTopics.named("chaos")
        await topics.create(kafka.bootstrap)
        desks = client_track_with_sla(directory / "desks", first_response_minutes=FIRST_RESPONSE_MINUTES)
        async with ChatPlatforms.running(directory) as platforms:
            overrides = {"notifications": {"SEND_DEADLINE_SECONDS": str(SEND_DEADLINE_S), "AUTO_REDRIVE_SECONDS": "10",
                                           "RECOVER_SECONDS": "5"}}  # fmt: skip
            system = System(cluster.dsn, kafka.bootstrap, topics, platforms, directory, overrides,
                            environment={"TICKETFLOW_DESK_CONFIG_DIR": str(desks)})  # fmt: skip
            try:
                await system.start(*SERVICES)
                yield ChaosSystem(kafka, cluster, topics, platforms, system)
            finally:
                system.stop()
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.destroy)
        await asyncio.to_thread(kafka.stop)
        shutil.rmtree(kafka.local_dir, ignore_errors=True)
