"""Thin Kafka subscribers: decode with msgspec, hand batches to the service, ack after storing.

- `ticket.events` + `agent.events` (one subscriber, so ticket and roster changes are applied in one
  order): an undecodable record goes to the topic's dead-letter topic with the cause.
- `ticket.commands`: manual overrides; a refused one goes to `ticket.commands.dlq` with the reason
  in the `x-dead-letter-reason` header and the command id in `x-command-id`.
A store outage leaves the batch unacknowledged (seek back, redelivered after a pause).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from ticketflow.contracts.commands import CommandEnvelope, command_envelope_decoder
from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder
from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_COMMANDS, TICKET_EVENTS
from ticketflow.eventstore.errors import RetryableStoreError
from ticketflow.routing.service import RoutingService
from ticketflow.runtime.kafka import DeadLetters

log = logging.getLogger("ticketflow.routing")
OUTAGES = (RetryableStoreError, OSError, asyncpg.PostgresError)
GROUP_ID = os.environ.get("TICKETFLOW_ROUTING_GROUP", "ticketflow-routing")


class RoutingHandlers:
    """Holds the service once its state is rebuilt; records wait (unacknowledged) until then."""

    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.service: RoutingService | None = None
        self.ready = asyncio.Event()

    async def _service(self) -> RoutingService:
        await self.ready.wait()
        assert self.service is not None
        return self.service

    async def events(self, records: Sequence[Any]) -> None:
        envelopes: list[EventEnvelope] = []
        for record in records:
            try:
                envelopes.append(envelope_decoder.decode(record.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                await self.dead_letters.send(record.topic, record.key, record.value, f"undecodable: {error}")
        await (await self._service()).on_events(envelopes)

    async def commands(self, records: Sequence[Any]) -> None:
        service = await self._service()
        for record in records:
            try:
                envelope: CommandEnvelope = command_envelope_decoder.decode(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                await self.dead_letters.send(record.topic, record.key, record.value, f"undecodable: {error}")
                continue
            reason = await service.on_command(envelope)
            if reason is not None:
                await self.dead_letters.send(
                    record.topic, record.key, record.value, reason, command_id=str(envelope.command_id)
                )


def subscribe(
    broker: KafkaBroker,
    handlers: RoutingHandlers,
    *,
    group_id: str = GROUP_ID,
    event_topics: Sequence[str] = (TICKET_EVENTS, AGENT_EVENTS),
    commands_topic: str = TICKET_COMMANDS,
    batch: int = 1000,
) -> None:
    async def raw(message: Any) -> Any:  # records are decoded by msgspec in the handlers
        return message.body

    async def handle(msg: KafkaMessage, work: Any) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        try:
            await work(records)
        except OUTAGES as outage:
            log.warning("routing batch not stored, will be redelivered: %r", outage)
            await asyncio.sleep(1.0)
            await msg.nack()  # seek back: the same records come again
            return
        await msg.ack()

    @broker.subscriber(
        *event_topics,
        group_id=group_id,
        batch=True,
        max_records=batch,
        batch_timeout_ms=20,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw,
    )
    async def on_events(body: Any, msg: KafkaMessage) -> None:
        await handle(msg, handlers.events)

    @broker.subscriber(
        commands_topic,
        group_id=group_id,
        batch=True,
        max_records=batch,
        batch_timeout_ms=20,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw,
    )
    async def on_commands(body: Any, msg: KafkaMessage) -> None:
        await handle(msg, handlers.commands)
