"""The thin Kafka side: `ticket.events` in batches (group "notifications", AckPolicy.ACK), and the bot's
replies outside the lifecycle on `chat.replies` (group "notifications.replies", `ReplyHandlers`).

A batch is grouped by record key (the ticket id): one ticket's records are handled in order, tickets
concurrently (at most `parallel`), so per-ticket order holds and one slow destination does not stall
the rest. Nothing escapes: a record that is not an envelope is dead-lettered to `<topic>.dlq` with
the cause; a PostgreSQL outage is retried with backoff, and after bounded retries the record is
dead-lettered with "retries exhausted" (redelivering it from `.dlq` later is safe: handling is
idempotent). Delivery failures are not dead letters here: they stay in the ledger for `redrive`.
The batch's NotificationDelivered/Failed events are written together after its deliveries.

`chat.replies` works the same way (records grouped by key, the conversation), with one difference:
a reply has no ticket stream to show a failed delivery in, so a reply whose delivery became a dead
letter (in the ledger, redrivable by its key) is also published to `chat.replies.dlq` with the cause.
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

from ticketflow.contracts.chat import chat_reply_decoder
from ticketflow.contracts.envelope import envelope_decoder
from ticketflow.contracts.topics import CHAT_REPLIES, TICKET_EVENTS
from ticketflow.eventstore import ConcurrencyError, RetryableStoreError
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.notifications.outcomes import Result
from ticketflow.notifications.service import Handled, NotificationService
from ticketflow.runtime.kafka import DeadLetters, subscribe_raw_batches, with_retries

log = logging.getLogger("ticketflow.notifications")
GROUP_ID = "notifications"
REPLIES_GROUP_ID = "notifications.replies"
OUTAGES = (
    RetryableStoreError,
    ConcurrencyError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    *retryable_errors(),
)


class NotificationHandlers:
    """Records wait (unacknowledged) until the service is attached: the pool exists only once the
    service's lifespan has started, after the broker."""

    def __init__(
        self,
        dead_letters: DeadLetters,
        service: NotificationService | None = None,
        *,
        parallel: int = 64,
        retry_attempts: int = 6,
        retry_base_delay: float = 0.2,
    ) -> None:
        self.dead_letters = dead_letters
        self.parallel = parallel
        self.retry_attempts = retry_attempts
        self.retry_base_delay = retry_base_delay
        self.outcomes: deque[str] = deque(maxlen=1000)  # what the latest records led to (tests, logs)
        self.handled = 0
        self._ready = asyncio.Event()
        self._service = service
        if service is not None:
            self._ready.set()

    @property
    def attached(self) -> asyncio.Event:
        return self._ready

    def attach(self, service: NotificationService) -> None:
        self._service = service
        self._ready.set()

    @property
    def service(self) -> NotificationService:
        assert self._service is not None, "NotificationHandlers.attach() first"
        return self._service

    async def on_batch(self, records: Sequence[Any]) -> None:
        """Handle every record (tickets in parallel, each ticket in order), then write the batch's
        outcome events at once, before the batch is acknowledged."""
        await self._ready.wait()
        by_ticket: dict[bytes | None, list[Any]] = {}
        for record in records:
            by_ticket.setdefault(record.key, []).append(record)
        gate = asyncio.Semaphore(self.parallel)
        pending: list[tuple[Any, tuple[Result, ...]]] = []

        async def lane(ticket_records: list[Any]) -> None:
            async with gate:
                for record in ticket_records:
                    results = await self.on_record(record.topic, record.key, record.value, record_outcomes=False)
                    if results:
                        pending.append((record, results))

        await asyncio.gather(*(lane(rs) for rs in by_ticket.values()))
        await self.service.deliverer.settle()  # the deliveries' ledger records, before outcomes and the ack
        if pending:
            await self._record(pending)

    async def _record(self, pending: list[tuple[Any, tuple[Result, ...]]]) -> None:
        results = [r for _, rs in pending for r in rs]
        try:
            await with_retries(lambda: self.service.recorder.record(results), OUTAGES,
                               attempts=self.retry_attempts, base_delay=self.retry_base_delay)  # fmt: skip
        except Exception as error:  # deliveries are settled in the ledger; a redelivery records them
            log.exception("notifications: outcome events of %d records not recorded", len(pending))
            for record, _ in pending:
                await self._dead_letter(record.topic, record.key, record.value,
                                        f"outcome events not recorded: {error!r}")  # fmt: skip

    async def on_record(
        self, topic: str, key: bytes | None, value: bytes, *, record_outcomes: bool = True
    ) -> tuple[Result, ...]:
        """Handle one record; without `record_outcomes`, return the outcomes for the caller to record."""
        try:
            envelope = envelope_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await self._dead_letter(topic, key, value, f"undecodable envelope: {error}")
            return ()
        event_id = str(envelope.event_id)
        try:
            handled: Handled = await with_retries(
                lambda: self.service.handle(envelope, record=record_outcomes), OUTAGES,
                attempts=self.retry_attempts, base_delay=self.retry_base_delay,
            )  # fmt: skip
        except OUTAGES as outage:
            await self._dead_letter(topic, key, value, f"retries exhausted: {outage!r}", event_id=event_id)
            return ()
        except Exception as error:  # a bug must not stop the consumer: keep the record and the cause
            log.exception("notifications: unexpected failure on event %s", event_id)
            await self._dead_letter(topic, key, value, f"unexpected: {error!r}", event_id=event_id)
            return ()
        self.handled += 1
        if handled.skipped:
            self.outcomes.append(f"skipped: {handled.skipped}")
        else:
            self.outcomes.append(f"sent {handled.sent}, dead {handled.dead}")
            log.debug("notifications: %s %s -> %s", type(envelope.event).__name__, envelope.stream_id, handled)
        return handled.results

    async def _dead_letter(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> None:
        self.outcomes.append(f"dead letter: {reason}")
        await self.dead_letters.send(topic, key, value, reason, **context)  # logs, never raises


class ReplyHandlers(NotificationHandlers):
    """`chat.replies`: decode a `ChatReply`, deliver it to its chat (`NotificationService.reply`)."""

    async def on_record(
        self, topic: str, key: bytes | None, value: bytes, *, record_outcomes: bool = True
    ) -> tuple[Result, ...]:
        try:
            reply = chat_reply_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await self._dead_letter(topic, key, value, f"undecodable chat reply: {error}")
            return ()
        try:
            handled: Handled = await with_retries(
                lambda: self.service.reply(reply, record=record_outcomes), OUTAGES,
                attempts=self.retry_attempts, base_delay=self.retry_base_delay,
            )  # fmt: skip
        except OUTAGES as outage:
            await self._dead_letter(topic, key, value, f"retries exhausted: {outage!r}", reply_key=reply.reply_key)
            return ()
        except Exception as error:  # a bug must not stop the consumer: keep the record and the cause
            log.exception("notifications: unexpected failure on chat reply %s", reply.reply_key)
            await self._dead_letter(topic, key, value, f"unexpected: {error!r}", reply_key=reply.reply_key)
            return ()
        self.handled += 1
        for idempotency_key, reason in handled.failures:  # in the ledger; redrive --key after fixing the cause
            await self._dead_letter(topic, key, value, f"delivery failed: {reason}", reply_key=reply.reply_key,
                                    idempotency_key=idempotency_key)  # fmt: skip
        if not handled.failures:
            self.outcomes.append(f"sent {handled.sent}" if handled.sent else "already delivered")
        return handled.results


def subscribe_replies(
    broker: KafkaBroker,
    handlers: ReplyHandlers,
    *,
    topic: str = CHAT_REPLIES,
    group_id: str = REPLIES_GROUP_ID,
    batch: int = 500,
) -> None:
    subscribe_raw_batches(broker, topic, group_id, handlers.on_batch, max_records=batch, batch_timeout_ms=10)


def subscribe(
    broker: KafkaBroker,
    handlers: NotificationHandlers,
    *,
    topic: str = TICKET_EVENTS,
    group_id: str = GROUP_ID,
    batch: int = 500,
) -> None:
    subscribe_raw_batches(broker, topic, group_id, handlers.on_batch, max_records=batch, batch_timeout_ms=10)
