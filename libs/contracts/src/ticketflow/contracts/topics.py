"""Topics as code: every Kafka topic, its partitions, retention and compaction, declared once.

`make topics` (python -m ticketflow.runtime.topics) creates them idempotently; services also ensure
them at start-up. Every topic a consumer reads has a dead-letter topic from day one."""

from __future__ import annotations

from typing import Literal

import msgspec

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


TICKET_EVENTS = "ticket.events"
AGENT_EVENTS = "agent.events"
CHAT_INBOUND = "chat.inbound"
CHAT_REPLIES = "chat.replies"
TICKET_COMMANDS = "ticket.commands"
SLA_CHECKPOINTS = "sla.checkpoints"


def _dlq(name: str) -> str:
    return f"{name}.dlq"


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        TICKET_EVENTS,
        12,
        14 * DAY_MS,
        dead_letter=_dlq(TICKET_EVENTS),
        description="every ticket, SLA and notification event from the store's outbox, keyed by ticket id",
    ),
    TopicSpec(
        AGENT_EVENTS,
        3,
        14 * DAY_MS,
        dead_letter=_dlq(AGENT_EVENTS),
        description="agent roster events, keyed by agent id",
    ),
    TopicSpec(
        CHAT_INBOUND,
        6,
        7 * DAY_MS,
        dead_letter=_dlq(CHAT_INBOUND),
        description="normalised chat messages (chat.message/v1) from platforms that post to Kafka",
    ),
    TopicSpec(
        CHAT_REPLIES,
        6,
        7 * DAY_MS,
        dead_letter=_dlq(CHAT_REPLIES),
        description="bot replies outside the lifecycle (chat.reply/v1), intake to notifications, keyed by conversation",
    ),
    TopicSpec(
        TICKET_COMMANDS,
        6,
        7 * DAY_MS,
        dead_letter=_dlq(TICKET_COMMANDS),
        description="manual overrides and commands (assign, unassign, move queue, priority), keyed by ticket",
    ),
    TopicSpec(
        SLA_CHECKPOINTS,
        12,
        7 * DAY_MS,
        cleanup_policy="compact",
        description="SLA timer checkpoints per partition (compacted: latest per key survives)",
    ),
    *(
        TopicSpec(_dlq(name), 1, 30 * DAY_MS, description=f"dead letters of {name}, cause in headers")
        for name in (TICKET_EVENTS, AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS)
    ),
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def topic_for_stream(stream_id: str) -> str:
    """Agent streams go to agent.events; every ticket-keyed stream shares ticket.events so that
    per-ticket order holds across ticket, SLA and notification events."""
    return AGENT_EVENTS if stream_id.startswith("agent-") else TICKET_EVENTS


def key_for_stream(stream_id: str) -> bytes:
    """The Kafka key: the ticket (or agent) id, without the stream prefix. Bytes, as aiokafka needs."""
    return stream_id.split("-", 1)[1].encode()
