"""Topic names as contracts: which topic carries what, and which stream's events go where.

How many partitions each has and how long Kafka keeps them is declared with the rest of Kafka in
`ticketflow.messaging.topics`."""

from __future__ import annotations

TICKET_EVENTS = "ticket.events"
AGENT_EVENTS = "agent.events"
CHAT_INBOUND = "chat.inbound"
CHAT_REPLIES = "chat.replies"
TICKET_COMMANDS = "ticket.commands"
OPS_COMMANDS = "ops.commands"  # operators' commands to the services (contracts.ops)
OPS_EVENTS = "ops.events"  # the services' answers to them

# A chat message or a command becomes an event that carries its text. Above this size that event might
# not fit in one Kafka record (the broker's limit is 1 MiB by default), and an event the relay
# cannot publish holds up every event after it. Intake dead-letters bigger records on `chat.inbound` and
# `ticket.commands`; its webhooks' bodies are smaller still (256 KiB).
MAX_INPUT_RECORD_BYTES = 512 * 1024


def topic_for_stream(stream_id: str) -> str:
    """Agent streams go to agent.events; every ticket-keyed stream shares ticket.events so that
    per-ticket order holds across ticket, SLA and notification events."""
    return AGENT_EVENTS if stream_id.startswith("agent-") else TICKET_EVENTS


def key_for_stream(stream_id: str) -> bytes:
    """The Kafka key: the ticket (or agent) id, without the stream prefix. Bytes, as aiokafka needs."""
    return stream_id.split("-", 1)[1].encode()
