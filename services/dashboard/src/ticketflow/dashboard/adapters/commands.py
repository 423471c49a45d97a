"""Agents' commands out to `ticket.commands` (keyed by ticket, like every command), and the ticket's stream
read back to see whether a command was applied (its events carry the command id as their causation)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from ticketflow.contracts.commands import CommandEnvelope, TicketCommand
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.eventstore.store import EventStore
from ticketflow.messaging.producer import Sender

_encode = msgspec.json.Encoder().encode


class CommandSender:
    def __init__(self, producer: Sender, topic: str) -> None:
        self.producer, self.topic = producer, topic

    async def send(self, command_id: uuid.UUID, actor: str, command: TicketCommand) -> None:
        envelope = CommandEnvelope(command_id, datetime.now(UTC), actor, command, correlation_id=command_id)
        await self.producer.send_and_wait(self.topic, _encode(envelope), key=str(command.ticket_id).encode())


class TicketStreams:
    """The ticket's events as the store holds them (read only)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def history(self, ticket_id: uuid.UUID) -> list[EventEnvelope]:
        return await self.store.read_stream(ticket_stream(ticket_id))
