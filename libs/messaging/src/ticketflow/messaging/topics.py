"""Topics as code: every Kafka topic, its partitions, retention and compaction, declared once, and their
creation (`make topics`, `python -m ticketflow.messaging.topics`; services also ensure them at start).

The names are contracts (`ticketflow.contracts.topics`: which topic carries what); how many partitions
and how long Kafka keeps them is this library's. Every topic a consumer reads has a dead-letter topic."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Literal

import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ticketflow.contracts.topics import AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS, TICKET_EVENTS
from ticketflow.messaging.dead_letters import dead_letter_topic

DAY_MS = 24 * 3600 * 1000


class TopicSpec(msgspec.Struct, frozen=True):
    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    dead_letter: str | None = None
    description: str = ""

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


def _consumed(name: str, partitions: int, days: int, description: str) -> TopicSpec:
    return TopicSpec(name, partitions, days * DAY_MS, dead_letter=dead_letter_topic(name), description=description)


CONSUMED: tuple[TopicSpec, ...] = (
    _consumed(TICKET_EVENTS, 12, 14, "every ticket, SLA and notification event from the store's relay, by ticket"),
    _consumed(AGENT_EVENTS, 3, 14, "agent roster events, keyed by agent id"),
    _consumed(CHAT_INBOUND, 6, 7, "normalised chat messages (chat.message/v1) from platforms that post to Kafka"),
    _consumed(CHAT_REPLIES, 6, 7, "bot replies outside the lifecycle (chat.reply/v1), keyed by conversation"),
    _consumed(TICKET_COMMANDS, 6, 7, "agents' and leads' commands (assign, move, reply, resolve, ...), by ticket"),
)
TOPICS: tuple[TopicSpec, ...] = (
    *CONSUMED,
    *(
        TopicSpec(dead_letter_topic(t.name), 1, 30 * DAY_MS, description=f"dead letters of {t.name}, cause in headers")
        for t in CONSUMED
    ),
)
TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


async def ensure_topics(bootstrap: str, topics: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create missing topics with their declared partitions and configs; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        created = []
        for spec in (t for t in topics if t.name not in existing):
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config())])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
        return created
    finally:
        await admin.close()


def main() -> int:
    bootstrap = os.environ.get("TICKETFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    try:
        created = asyncio.run(ensure_topics(bootstrap))
    except Exception as exc:
        print(f"topics: cannot reach Kafka at {bootstrap}: {exc!r}\n  start it with `make infra-up`")
        return 1
    for spec in TOPICS:
        mark = "created" if spec.name in created else "exists "
        print(f"{mark} {spec.name:24} partitions={spec.partitions:<3} {spec.cleanup_policy:8} {spec.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
