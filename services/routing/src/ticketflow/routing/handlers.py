"""Thin Kafka subscribers: decode with msgspec, hand batches to the service, commit after storing.

- `ticket.events` + `agent.events` (one subscriber, so ticket and roster changes are applied in one
  order): an undecodable record goes to the topic's dead-letter topic with the cause. Pipelined:
  a batch is decided at once and stored while the next one is decided; its offsets (exactly its
  records', not the consumer's position) are committed once it is stored, in batch order. If storing
  fails, every partition is rewound to the first record not stored and nothing later is committed.
- `ticket.commands`: manual overrides; a refused one goes to `ticket.commands.dlq` with the reason
  in the `x-dead-letter-reason` header and the command id in `x-command-id`.
A store outage leaves the batch unacknowledged (seek back, redelivered after a pause).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from aiokafka import TopicPartition
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


class NotLeading(Exception):
    """This instance stepped down while records waited: they are left unacknowledged (for the leader)."""


class RoutingHandlers:
    """Holds the service once its state is rebuilt; records wait (unacknowledged) until then."""

    def __init__(self, dead_letters: DeadLetters, max_in_flight: int = 2) -> None:
        self.dead_letters = dead_letters
        self.service: RoutingService | None = None
        self.ready = asyncio.Event()
        self.max_in_flight = max_in_flight
        self.retry_pause = 1.0  # seconds before redelivery after a failed store
        self._in_flight: deque[tuple[asyncio.Task[None], Sequence[Any]]] = deque()
        self._epoch = 0  # bumped by a rewind: batches read before it are neither committed nor rewound again
        self._stepped_down = asyncio.Event()

    def begin(self, service: RoutingService) -> None:
        """A term as leader begins (records are handled once `ready` is set)."""
        self.service = service
        self._stepped_down.clear()

    def reset(self) -> None:
        """No longer leading: forget the service and the batches in flight (they are neither committed
        nor rewound here; the next leader reads them again from the last committed offsets), and let
        handlers waiting for `ready` give up, so the subscribers can stop."""
        self.ready.clear()
        self.service = None
        self._in_flight.clear()
        self._epoch += 1
        self._stepped_down.set()

    async def _service(self) -> RoutingService:
        if not self.ready.is_set():
            waits = [asyncio.create_task(self.ready.wait()), asyncio.create_task(self._stepped_down.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if self.service is None or not self.ready.is_set():
            raise NotLeading("routing stepped down")
        return self.service

    async def _decode(self, records: Sequence[Any]) -> list[EventEnvelope]:
        envelopes: list[EventEnvelope] = []
        for record in records:
            try:
                envelopes.append(envelope_decoder.decode(record.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                await self.dead_letters.send(record.topic, record.key, record.value, f"undecodable: {error}")
        return envelopes

    async def events(self, records: Sequence[Any]) -> None:
        """One batch, stored when this returns (no pipelining)."""
        await (await self._service()).on_events(await self._decode(records))

    async def events_pipelined(self, records: Sequence[Any], consumer: Any) -> None:
        service = await self._service()
        while self._in_flight and (len(self._in_flight) >= self.max_in_flight or self._in_flight[0][0].done()):
            await asyncio.wait([self._in_flight.popleft()[0]])
        service.decide_events(await self._decode(records))
        stored = service.flush_later()
        previous = self._in_flight[-1][0] if self._in_flight else None
        settle = asyncio.create_task(self._settle(stored, records, consumer, previous, self._epoch))
        self._in_flight.append((settle, records))

    async def _settle(
        self,
        stored: asyncio.Task[None],
        records: Sequence[Any],
        consumer: Any,
        previous: asyncio.Task[None] | None,
        epoch: int,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # commits in batch order
        try:
            await stored
        except Exception as error:
            if epoch == self._epoch:
                self._epoch += 1
                log.warning("routing batch not stored, rewinding to redeliver it: %r", error)
                await asyncio.sleep(self.retry_pause)
                self._rewind(records, consumer)
            return
        if epoch != self._epoch:
            return  # an earlier batch failed: this one comes again
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            await consumer.commit(offsets)
        except Exception as error:  # e.g. a rebalance: the records come again, and are skipped
            log.warning("routing could not commit offsets: %r", error)

    def _rewind(self, failed: Sequence[Any], consumer: Any) -> None:
        """Seek every partition back to its first record in the failed batch or any later one."""
        earliest: dict[TopicPartition, int] = {}
        in_flight = [records for _, records in self._in_flight]
        position = next((i for i, records in enumerate(in_flight) if records is failed), -1)
        for records in [failed, *in_flight[position + 1 :]]:  # (-1: all in flight came later)
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                earliest[tp] = min(earliest.get(tp, r.offset), r.offset)
        for tp, offset in earliest.items():
            consumer.seek(tp, offset)

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
    batch: int = 4000,
    persistent: bool = True,
) -> list[Any]:
    """Register the two subscribers. `persistent=False`: not started with the broker; the caller
    starts them (`await sub.start()`) once it may consume, e.g. when it became the leader."""

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

    options: dict[str, Any] = {
        "group_id": group_id,
        "batch": True,
        "max_records": batch,
        "batch_timeout_ms": 20,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.MANUAL,
        "decoder": raw,
        "persistent": persistent,
    }
    events = broker.subscriber(*event_topics, **options)
    commands = broker.subscriber(commands_topic, **options)

    async def on_events(body: Any, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await handlers.events_pipelined(records, msg.consumer)

    async def on_commands(body: Any, msg: KafkaMessage) -> None:
        await handle(msg, handlers.commands)

    events(on_events)
    commands(on_commands)
    return [events, commands]
