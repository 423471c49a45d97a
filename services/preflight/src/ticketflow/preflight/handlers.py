"""The thin Kafka side: decode the envelope with msgspec, hand it to the service, never let an
exception escape. `ticket.events` is read in batches with group "preflight" and AckPolicy.ACK: a
batch is acknowledged once each record is handled, dead-lettered, or retried out (exactly one effect
is the store's job: the service claims each event id). Tickets of a batch are examined concurrently.
Dead letters go to `<topic>.dlq` with the cause in `x-dead-letter-reason`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from faststream.kafka import KafkaBroker

from ticketflow.contracts.envelope import envelope_decoder
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.eventstore import ConcurrencyError, RetryableStoreError
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.preflight.service import PreflightService, Rejected
from ticketflow.runtime.kafka import DeadLetters, subscribe_raw_batches, with_retries

log = logging.getLogger("ticketflow.preflight")
GROUP_ID = "preflight"
OUTAGES = (RetryableStoreError, ConcurrencyError, asyncpg.DeadlockDetectedError, *retryable_errors())


class PreflightHandlers:
    """Records wait (unacknowledged) until the service is attached: the pool exists only once the
    service's lifespan has started, after the broker."""

    def __init__(
        self, dead_letters: DeadLetters, service: PreflightService | None = None, *, retry_attempts: int = 5
    ) -> None:
        self.dead_letters = dead_letters
        self.retry_attempts = retry_attempts
        self.outcomes: deque[str] = deque(maxlen=1000)  # what the latest records led to (tests, logs)
        self._ready = asyncio.Event()
        self._service = service
        if service is not None:
            self._ready.set()

    def attach(self, service: PreflightService) -> None:
        self._service = service
        self._ready.set()

    @property
    def service(self) -> PreflightService:
        assert self._service is not None, "PreflightHandlers.attach() first"
        return self._service

    async def on_record(self, topic: str, key: bytes | None, value: bytes) -> None:
        await self._ready.wait()
        try:
            envelope = envelope_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await self._dead_letter(topic, key, value, f"undecodable envelope: {error}")
            return
        try:
            outcome = await with_retries(lambda: self.service.handle(envelope), OUTAGES, attempts=self.retry_attempts)
        except Rejected as rejected:
            await self._dead_letter(topic, key, value, str(rejected), event_id=str(envelope.event_id))
            return
        except OUTAGES as outage:
            await self._dead_letter(
                topic, key, value, f"retries exhausted: {outage!r}", event_id=str(envelope.event_id)
            )
            return
        except Exception as error:  # a bug must not stop the consumer: keep the record and the cause
            log.exception("preflight: unexpected failure on event %s", envelope.event_id)
            await self._dead_letter(topic, key, value, f"unexpected: {error!r}", event_id=str(envelope.event_id))
            return
        self.outcomes.append(outcome)
        log.info("preflight: %s %s -> %s", type(envelope.event).__name__, envelope.stream_id, outcome)

    async def on_batch(self, records: Sequence[Any]) -> None:
        """Different tickets concurrently, so one slow portal holds only its own tickets; one ticket's
        records in order (they share a key, hence a partition)."""
        by_ticket: dict[bytes | None, list[Any]] = {}
        for record in records:
            by_ticket.setdefault(record.key, []).append(record)

        async def in_order(group: list[Any]) -> None:
            for record in group:
                await self.on_record(record.topic, record.key, record.value)

        await asyncio.gather(*(in_order(group) for group in by_ticket.values()))

    async def _dead_letter(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> None:
        self.outcomes.append(f"dead letter: {reason}")
        await self.dead_letters.send(topic, key, value, reason, **context)  # logs, never raises


def subscribe(
    broker: KafkaBroker,
    handlers: PreflightHandlers,
    *,
    topic: str = TICKET_EVENTS,
    group_id: str = GROUP_ID,
    batch: int = 64,
) -> None:
    """Batches of up to `batch` records, acknowledged (AckPolicy.ACK) once every record in them is
    handled or dead-lettered; `batch` bounds how many tickets are examined at once."""

    subscribe_raw_batches(broker, topic, group_id, handlers.on_batch, max_records=batch, batch_timeout_ms=20)
