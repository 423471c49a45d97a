"""The delivery engine: claim in the ledger, render, send with retries, record the outcome.

`await Deliverer.deliver(notification) -> DeliveryOutcome` never raises for a delivery problem
(bad template, no address, destination down or answering garbage): those become a dead-letter
outcome with the reason. It raises only when the ledger (PostgreSQL) itself fails, so the caller
leaves the event uncommitted and it comes again.

Memory stays bounded: nothing is queued in memory. A caller awaits its delivery (Kafka consumers
get back-pressure), a circuit breaker per destination makes calls to a destination that is down
fail fast, and at most `max_pending_per_destination` deliveries wait on one destination at once;
beyond that they are dead-lettered at once and can be redriven.

Counted (prometheus_client, served on the operations port): every delivery's outcome per channel
(`ticketflow_notification_deliveries_total`) and every failed call to a destination per channel and
kind (`ticketflow_notification_send_failures_total`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from prometheus_client import Counter

from ticketflow.notifications.adapters.channels.base import (
    ChannelClient,
    DeliveryFailure,
    PermanentFailure,
    TemporaryFailure,
    snippet,
)
from ticketflow.notifications.adapters.ledger import UNENCODABLE, ClaimStatus, PgLedger, encode_variables
from ticketflow.notifications.adapters.rendering import RenderError, TemplateCatalog
from ticketflow.notifications.adapters.resilience import BreakerState, CircuitBreaker, RetryPolicy, Sleep
from ticketflow.notifications.domain.markup import ESCAPES, escaped
from ticketflow.notifications.domain.model import (
    Channel,
    DeliveryOutcome,
    Notification,
    OutcomeStatus,
    OutgoingMessage,
)

# Channels whose receiver can drop a duplicate by our key (webhook Idempotency-Key header, e-mail
# Message-ID): after a crash between send and record they are sent again. Chat channels are not:
# there the unknown outcome becomes a dead letter for a person to check and redrive.
log = logging.getLogger("ticketflow.notifications")
RESEND_WHEN_IN_DOUBT = frozenset({Channel.WEBHOOK, Channel.EMAIL})

DELIVERIES = Counter(
    "ticketflow_notification_deliveries", "Deliveries by channel and outcome (delivered, duplicate, in_flight, "
    "dead_letter)", ["channel", "outcome"],
)  # fmt: skip
SEND_FAILURES = Counter(
    "ticketflow_notification_send_failures", "Failed calls to a destination, by channel and kind (temporary: "
    "retried; permanent: dead letter; unexpected: a client bug, dead letter)", ["channel", "kind"],
)  # fmt: skip

Refresh = Callable[[Notification], Awaitable[Notification]]
Prepared = tuple[ChannelClient, OutgoingMessage] | PermanentFailure  # rendered and routed, or why not


class Deliverer:
    def __init__(
        self,
        *,
        ledger: PgLedger,
        catalog: TemplateCatalog,
        channels: Iterable[ChannelClient],
        retry: RetryPolicy | None = None,
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
        max_pending_per_destination: int = 64,
        resend_when_in_doubt: frozenset[Channel] = RESEND_WHEN_IN_DOUBT,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._ledger = ledger
        self._catalog = catalog
        self._channels: Mapping[Channel, ChannelClient] = {c.channel: c for c in channels}
        self._retry = retry or RetryPolicy()
        self._breaker_factory = breaker_factory
        self._breakers: dict[tuple[Channel, str], CircuitBreaker] = {}
        self._pending: dict[tuple[Channel, str], int] = {}
        self._max_pending = max_pending_per_destination
        self._resend_when_in_doubt = resend_when_in_doubt
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._unsettled: set[asyncio.Task[bool]] = set()  # ledger records of record_later deliveries

    def breaker(self, channel: Channel, destination: str) -> CircuitBreaker:
        key = (channel, destination)
        if key not in self._breakers:
            self._breakers[key] = self._breaker_factory()
        return self._breakers[key]

    def pending(self, channel: Channel, destination: str) -> int:
        return self._pending.get((channel, destination), 0)

    def tracked_destinations(self) -> int:
        """Destinations holding in-memory state (pending deliveries or a non-idle breaker)."""
        return len(self._pending.keys() | self._breakers.keys())

    async def deliver(self, notification: Notification, *, record_later: bool = False) -> DeliveryOutcome:
        """Deliver once. With `record_later`, a successful send returns at once and its ledger record
        is written in the background: the caller must `await settle()` before it acknowledges the
        input (the batch consumer does, once per batch), so a lane does not wait for that round trip."""
        outcome = await self._deliver(notification, record_later)
        DELIVERIES.labels(notification.channel, outcome.status).inc()
        return outcome

    async def _deliver(self, notification: Notification, record_later: bool) -> DeliveryOutcome:
        # Rendered before the claim: when it renders and the destination takes calls, the claim is
        # also the first attempt's fence (one statement instead of two).
        prepared = self._try_prepare(notification)
        destination = (notification.channel, notification.destination)
        breaker = self._breakers.get(destination)
        fence = (
            not isinstance(prepared, PermanentFailure)
            and self._pending.get(destination, 0) < self._max_pending
            and (breaker is None or breaker.state is BreakerState.CLOSED)
        )
        claim = await self._ledger.claim(notification, fence=fence)
        key = notification.key
        if claim.status is ClaimStatus.DELIVERED:
            return DeliveryOutcome(key, OutcomeStatus.DUPLICATE, claim.attempts, None, claim.provider_message_id)
        if claim.status is ClaimStatus.DEAD:
            return DeliveryOutcome(key, OutcomeStatus.DEAD_LETTER, claim.attempts, claim.last_error)
        if claim.status is ClaimStatus.IN_FLIGHT:
            return DeliveryOutcome(key, OutcomeStatus.IN_FLIGHT, claim.attempts)
        if claim.in_doubt and notification.channel not in self._resend_when_in_doubt:
            reason = (
                "outcome unknown: a worker stopped between sending and recording attempt "
                f"{claim.attempts}; check the chat, then redrive if it did not arrive"
            )
            return await self._dead(key, reason, claim.attempts)
        return await self._send_with_retries(
            notification, claim.attempts, prepared, fenced=claim.fenced, record_later=record_later
        )

    async def settle(self) -> int:
        """Wait for the ledger records of `deliver(..., record_later=True)`; returns how many failed.
        A failed one leaves its row claimed and in doubt, which `recover_stale` finishes like a crash
        between send and record (logged here)."""
        failed = 0
        while self._unsettled:
            tasks = list(self._unsettled)
            self._unsettled.difference_update(tasks)
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):
                    failed += 1
                    log.warning("notifications: a delivered message was not recorded in the ledger: %r", result)
        return failed

    async def redrive(
        self,
        keys: Sequence[str] | None = None,
        *,
        limit: int = 100,
        refresh: Refresh | None = None,
        concurrency: int = 8,
    ) -> list[DeliveryOutcome]:
        """Send dead letters again after their cause is fixed (by default the oldest `limit`).

        Each is re-claimed atomically, so concurrent redrives never send one twice, and a delivered
        key is never touched. `refresh` may update a notification first (a corrected address).
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(notification: Notification) -> DeliveryOutcome:
            async with gate:
                if refresh is not None:
                    try:
                        notification = replace(await refresh(notification), key=notification.key)
                    except Exception as exc:
                        outcome = await self._dead(notification.key, f"refresh failed: {exc!r}", 0)
                    else:
                        outcome = await self._send_with_retries(notification, 0)
                else:
                    outcome = await self._send_with_retries(notification, 0)
                DELIVERIES.labels(notification.channel, outcome.status).inc()
                return outcome

        claimed = await self._ledger.claim_dead(keys, limit)
        return list(await asyncio.gather(*(one(n) for n in claimed)))

    async def redrive_temporary(self, *, older_than: float, limit: int = 500) -> list[DeliveryOutcome]:
        """Redrive the dead letters of temporary causes once they are `older_than` seconds old
        (`PgLedger.temporary_dead_letters`); permanent causes wait for a person."""
        keys = await self._ledger.temporary_dead_letters(older_than, limit)
        return await self.redrive(keys, limit=limit) if keys else []

    async def recover_stale(self, *, limit: int = 100, concurrency: int = 8) -> list[DeliveryOutcome]:
        """Finish deliveries whose worker stopped (run periodically; safe on many workers at once).

        Each goes through `deliver`, which takes the expired claim over atomically and applies the
        crash rule: resend where the receiver dedupes, dead letter where the outcome is unknown.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(notification: Notification) -> DeliveryOutcome:
            async with gate:
                return await self.deliver(notification)

        return list(await asyncio.gather(*(one(n) for n in await self._ledger.stale(limit))))

    async def _send_with_retries(
        self,
        notification: Notification,
        attempts_before: int,
        prepared: Prepared | None = None,
        *,
        fenced: bool = False,
        record_later: bool = False,
    ) -> DeliveryOutcome:
        destination = (notification.channel, notification.destination)
        if self._pending.get(destination, 0) >= self._max_pending:
            reason = f"destination backlog full ({self._max_pending} deliveries waiting)"
            return await self._dead(notification.key, reason, attempts_before)
        self._pending[destination] = self._pending.get(destination, 0) + 1
        try:
            return await self._attempts(notification, attempts_before, prepared, fenced, record_later)
        finally:
            self._pending[destination] -= 1
            if not self._pending[destination]:
                del self._pending[destination]
                # Keep breakers only for destinations that are failing: memory follows trouble,
                # not the number of destinations ever seen.
                if destination in self._breakers and self._breakers[destination].idle:
                    del self._breakers[destination]

    def _try_prepare(self, notification: Notification) -> Prepared:
        try:
            return self._prepare(notification)
        except PermanentFailure as unsendable:
            return unsendable

    def _prepare(self, notification: Notification) -> tuple[ChannelClient, OutgoingMessage]:
        if not notification.address:
            raise PermanentFailure(f"recipient {notification.recipient!r} has no {notification.channel} address")
        client = self._channels.get(notification.channel)
        if client is None:
            raise PermanentFailure(f"channel {notification.channel} is not configured")
        # Render from the stored JSON form, so a redrive renders exactly what the first try did.
        variables = json.loads(encode_variables(notification.variables))
        if UNENCODABLE in variables:
            raise PermanentFailure(str(variables[UNENCODABLE]))
        escape = ESCAPES.get(notification.channel)
        if escape is not None:  # people's text stays text in the channel's markup (domain/markup.py)
            variables = escaped(variables, escape)
        try:
            rendered = self._catalog.render(notification.template, notification.locale, variables)
        except RenderError as exc:
            raise PermanentFailure(exc.reason) from exc
        message = OutgoingMessage(
            key=notification.key,
            destination=notification.destination,
            address=notification.address,
            subject=rendered.subject,
            body=rendered.body,
            locale=rendered.locale,
            template=notification.template,
            event_id=notification.event_id,
            recipient=notification.recipient,
        )
        return client, message

    async def _attempts(
        self,
        notification: Notification,
        attempts_before: int,
        prepared: Prepared | None,
        fenced: bool,
        record_later: bool = False,
    ) -> DeliveryOutcome:
        key = notification.key
        if prepared is None:
            prepared = self._try_prepare(notification)
        if isinstance(prepared, PermanentFailure):
            return await self._dead(key, prepared.reason, attempts_before)
        client, message = prepared
        breaker = self.breaker(notification.channel, notification.destination)
        total = attempts_before
        last: DeliveryFailure | None = None
        # A try is a call to the destination; waiting on an open circuit uses none (it would let a
        # breaker with short open periods use up every try of a waiting delivery in seconds), but
        # counts toward the hold: a delivery waits at most `max_retry_after` s on a closed door.
        tries, held = 0, 0.0
        while True:
            failure: DeliveryFailure
            if not breaker.allow():
                failure = TemporaryFailure("circuit open")
                # Until the breaker half-opens; half-open with another delivery's probe in flight, a
                # short jittered wait for its answer.
                delay = breaker.remaining_open() or self._retry.base_delay + self._retry.backoff(1, self._rng)
                if held + delay > self._retry.max_retry_after:
                    reason = f"circuit open; waited {held:.0f}s, more than we hold a delivery"
                    return await self._dead(key, reason, total)
            else:
                tries += 1
                if not (fenced and tries == 1):  # else the claim fenced the first try already
                    attempts_now = await self._ledger.begin_attempt(key)
                    if attempts_now is None:  # our lease was taken over: the other worker owns it now
                        return DeliveryOutcome(key, OutcomeStatus.IN_FLIGHT, total, "claim lost")
                    total = attempts_now
                try:
                    provider_id = await client.send(message)
                except TemporaryFailure as exc:
                    breaker.record_failure()
                    SEND_FAILURES.labels(notification.channel, "temporary").inc()
                    failure = exc
                except PermanentFailure as exc:
                    breaker.record_neutral()
                    SEND_FAILURES.labels(notification.channel, "permanent").inc()
                    return await self._dead(key, exc.reason, total)
                except Exception as exc:  # a bug in a client must not take the consumer down
                    breaker.record_neutral()
                    SEND_FAILURES.labels(notification.channel, "unexpected").inc()
                    reason = f"unexpected {type(exc).__name__}: {snippet(str(exc))}"
                    return await self._dead(key, reason, total)
                else:
                    breaker.record_success()
                    if record_later:
                        task = asyncio.get_running_loop().create_task(self._ledger.record_delivered(key, provider_id))
                        self._unsettled.add(task)
                    else:
                        await self._ledger.record_delivered(key, provider_id)
                    return DeliveryOutcome(key, OutcomeStatus.DELIVERED, total, None, provider_id)
                last = failure
                if tries == self._retry.max_attempts:
                    break
                delay = self._retry.backoff(tries, self._rng)
                retry_after = failure.retry_after if isinstance(failure, TemporaryFailure) else None
                if retry_after is not None:
                    if retry_after > self._retry.max_retry_after:
                        reason = f"{failure.reason}; asked to wait {retry_after:.0f}s, more than we hold a delivery"
                        return await self._dead(key, reason, total)
                    delay = max(delay, retry_after)
            held += delay
            await self._ledger.record_retry(key, failure.reason, delay)
            await self._sleep(delay)
        reason = f"gave up after {self._retry.max_attempts} tries: {last.reason if last else 'unknown'}"
        return await self._dead(key, reason, total)

    async def _dead(self, key: str, reason: str, attempts: int) -> DeliveryOutcome:
        await self._ledger.record_dead(key, reason)
        return DeliveryOutcome(key, OutcomeStatus.DEAD_LETTER, attempts, reason)
