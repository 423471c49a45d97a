"""Routing's subscriptions, made for one term of leadership (leader.py starts and stops them).

- `ticket.events` + `agent.events`, one subscriber (ticket and roster changes are applied in one order):
  the ordered pipeline (`ticketflow.messaging.ordered`). A batch is decoded and decided at once and
  stored while the next one is decided; its offsets are committed once it is stored, in batch order; a
  failed store seeks every partition back to the first record not stored. An undecodable record goes
  to `<topic>.dlq` ("undecodable").
- `ticket.commands`: per-key batches (`ticketflow.messaging.per_key`), one command at a time (routing's
  decisions are serial). A command routing refuses goes to `ticket.commands.dlq` ("rejected", the
  reason as detail, the command id as context); a store outage, or this instance losing the lead, waits
  and retries (the batch comes again), never a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker

from ticketflow.contracts.commands import CommandEnvelope, command_envelope_decoder
from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder
from ticketflow.eventstore.leadership import LeadershipLost
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.ordered import OrderedPipeline, ordered_pipeline
from ticketflow.messaging.outages import OUTAGES
from ticketflow.messaging.per_key import DECODE_ERRORS, PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record
from ticketflow.routing.app import Routing
from ticketflow.routing.domain.decisions import Rejected
from ticketflow.routing.settings import RoutingSettings

log = logging.getLogger("ticketflow.routing")
BATCH = 4000  # records per fetch
BATCH_TIMEOUT_MS = 20


def events_pipeline(app: Routing, dead_letters: DeadLetterWriter) -> OrderedPipeline:
    def begin(records: Sequence[Record]) -> Awaitable[None]:
        envelopes: list[EventEnvelope] = []
        undecodable: list[tuple[Record, str]] = []
        for record in records:
            try:
                envelopes.append(envelope_decoder.decode(record.value or b""))
            except DECODE_ERRORS as error:
                undecodable.append((record, str(error)))
        app.decide_events(envelopes)
        return _durable(app.flush_later(), undecodable, dead_letters)

    return OrderedPipeline("routing events", begin, depth=2, retry_after_s=1.0)


async def _durable(stored: Awaitable[None], undecodable: list[tuple[Record, str]], dead: DeadLetterWriter) -> None:
    await stored
    for record, error in undecodable:
        await dead.send(record, "undecodable", error)


def commands_worker(app: Routing, dead_letters: DeadLetterWriter) -> PerKeyBatches[CommandEnvelope]:
    async def handle(command: CommandEnvelope, record: Record) -> None:
        await app.on_command(command)  # Rejected: dead-lettered with the reason

    return PerKeyBatches(
        "routing commands", command_envelope_decoder.decode, handle, dead_letters, bad_input=(Rejected,),
        parallel=1, outages=(*OUTAGES, LeadershipLost),
    )  # fmt: skip


@dataclass
class Subscriptions:
    """One term's subscribers (`persistent=False`: created, started and stopped by the leader loop, so
    a stand-by never joins the consumer group)."""

    events: OrderedPipeline
    commands: PerKeyBatches[CommandEnvelope]
    subscribers: list[Any]

    async def start(self) -> None:
        for subscriber in self.subscribers:
            await subscriber.start()

    def describe(self) -> str:
        """For readiness: "ok", or what the subscriptions wait for (a store outage)."""
        waiting = [f"{w.name}: {w.waiting.describe()}" for w in (self.events, self.commands) if w.waiting.waiting]
        return "; ".join(waiting) or "ok"

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Commit what is stored of the batches in flight, then leave the group."""
        await self.events.drain(timeout_s)
        for subscriber in self.subscribers:
            try:
                await asyncio.wait_for(subscriber.stop(), timeout_s)
            except Exception as error:
                log.warning("routing: a subscriber did not stop cleanly: %r", error)


def subscribe(
    broker: KafkaBroker, app: Routing, dead_letters: DeadLetterWriter, settings: RoutingSettings
) -> Subscriptions:
    events, commands = events_pipeline(app, dead_letters), commands_worker(app, dead_letters)
    options: dict[str, Any] = {"max_records": BATCH, "batch_timeout_ms": BATCH_TIMEOUT_MS, "persistent": False}
    subscribers = [
        ordered_pipeline(broker, settings.event_topics, settings.group, events, **options),
        per_key_batches(broker, [settings.commands_topic], settings.group, commands, **options),
    ]
    return Subscriptions(events, commands, subscribers)
