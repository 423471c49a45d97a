"""Topics as code: every Kafka topic, its partitions, retention and compaction, declared once, and their
creation (`make topics`, `ticketflow topics create`; services also ensure them at start).

The names are contracts (`ticketflow.contracts.topics`: which topic carries what); how many partitions
and how long Kafka keeps them is this library's. Every topic a consumer reads has a dead-letter topic
(`ops.commands` too: a record there that is not a command is answered on `ops.events` and dead-lettered).

Creating topics from the services is for development (replication factor 1 by default): in production
the topics are Strimzi `KafkaTopic` resources rendered from these declarations (`deploy/k8s`, replication
factor 3, `min.insync.replicas` 2) and the services run with TICKETFLOW_ENSURE_TOPICS=false."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ticketflow.contracts.chat import ChatMessage, ChatReply
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ops import SERVICES, OpsCommandEnvelope, OpsEvent
from ticketflow.contracts.topics import (
    AGENT_EVENTS,
    CHAT_INBOUND,
    CHAT_REPLIES,
    OPS_COMMANDS,
    OPS_EVENTS,
    TICKET_COMMANDS,
    TICKET_EVENTS,
)
from ticketflow.messaging.dead_letters import dead_letter_topic
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

DAY_MS = 24 * 3600 * 1000


class TopicSpec(msgspec.Struct, frozen=True):
    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    dead_letter: str | None = None
    description: str = ""
    written_by: tuple[str, ...] = ()  # who publishes to it (services, "operators")
    read_by: tuple[str, ...] = ()  # who consumes it
    key: str = ""  # what the record key is

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


def _consumed(name: str, partitions: int, days: int, description: str, **who: Any) -> TopicSpec:
    dead_letter = dead_letter_topic(name)
    return TopicSpec(name, partitions, days * DAY_MS, dead_letter=dead_letter, description=description, **who)


RELAY = ("projector",)  # the relay runs in the projector
CONSUMED: tuple[TopicSpec, ...] = (
    _consumed(TICKET_EVENTS, 12, 14, "every ticket, SLA and notification event from the store's relay, by ticket",
              written_by=RELAY, read_by=("preflight", "routing", "sla", "notifications"), key="ticket id"),
    _consumed(AGENT_EVENTS, 3, 14, "agent roster events, keyed by agent id", written_by=RELAY, read_by=("routing",),
              key="agent id"),
    _consumed(CHAT_INBOUND, 6, 7, "normalised chat messages (chat.message/v1) from platforms that post to Kafka",
              written_by=("intake", "chat platforms"), read_by=("intake",), key="platform:tenant:conversation"),
    _consumed(CHAT_REPLIES, 6, 7, "bot replies outside the lifecycle (chat.reply/v1), keyed by conversation",
              written_by=("intake",), read_by=("notifications",), key="platform:tenant:conversation"),
    _consumed(TICKET_COMMANDS, 6, 7, "agents' and leads' commands (assign, move, reply, resolve, ...), by ticket",
              written_by=("operators",), read_by=("intake", "routing"), key="ticket id"),
    # One partition: commands are executed in the order they were written, by every service reading all.
    _consumed(OPS_COMMANDS, 1, 30, "operators' commands to the services (contracts.ops)", written_by=("operators",),
              read_by=SERVICES, key="free (the console producer sends none)"),
)  # fmt: skip
TOPICS: tuple[TopicSpec, ...] = (
    *CONSUMED,
    *(
        TopicSpec(
            dead_letter_topic(t.name),
            1,
            30 * DAY_MS,
            description=f"dead letters of {t.name}, cause in headers",
            # The relay too: a stored event too large for Kafka (messaging.relay).
            written_by=tuple(dict.fromkeys((*t.read_by, *(RELAY if t.written_by == RELAY else ())))),
            read_by=("operators",),
            key=t.key,
        )
        for t in CONSUMED
    ),
    TopicSpec(
        OPS_EVENTS,
        1,
        30 * DAY_MS,
        description="the services' answers to ops.commands, by command id",
        written_by=SERVICES,
        read_by=("operators",),
        key="command id",
    ),
)
# The contract each topic's records are (a dead-letter topic's: its topic's).
CONTRACTS: dict[str, Any] = {
    TICKET_EVENTS: EventEnvelope, AGENT_EVENTS: EventEnvelope, CHAT_INBOUND: ChatMessage, CHAT_REPLIES: ChatReply,
    TICKET_COMMANDS: CommandEnvelope, OPS_COMMANDS: OpsCommandEnvelope, OPS_EVENTS: OpsEvent,
}  # fmt: skip
TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


async def ensure_topics(
    bootstrap: str,
    topics: tuple[TopicSpec, ...] = TOPICS,
    *,
    security: KafkaSecurity = PLAINTEXT,
    replication_factor: int = 1,
) -> list[str]:
    """Create missing topics with their declared partitions and configs; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        created = []
        for spec in (t for t in topics if t.name not in existing):
            try:
                topic = NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=spec.config())
                await admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
        return created
    finally:
        await admin.close()
