"""The delivery engine: claim in the ledger, render, send with retries, record the outcome.

`await Deliverer.deliver(notification) -> DeliveryOutcome` never raises for a delivery problem
(bad template, no address, destination down or answering garbage): those become a dead-letter
outcome with the reason. It raises only when the ledger (PostgreSQL) itself fails, so the caller
leaves the event uncommitted and it comes again; what this process had decided meanwhile is kept
(`own_claims.OwnClaims`), so the record coming again sends nothing twice.

Back-pressure, not dead letters: at most `per_destination` deliveries run at once on one destination
(the public eXpress bot is one destination for all its customers); the others wait for a slot
(`resilience.DestinationSlots`), and the Kafka batch waits with them, so a burst slows consumption down
and nothing is fetched meanwhile. Nothing is queued in memory beyond the batch being handled, and a
circuit breaker per destination makes calls to a destination that is down fail fast (a delivery waits
on an open circuit at most `max_retry_after`; with every slot taken by such waits, the next one is a dead
letter at once): dead letters are for destinations that fail, not for destinations that are busy.

Never twice to a person: each attempt has a hard deadline (`attempt_deadline`), shorter than the
ledger's lease, so a trickling destination cannot outlive the claim and be taken over mid-send. A
request whose answer is lost (the deadline, a dropped connection: `OutcomeUnknown`) is sent again only
on channels whose receiver drops a duplicate by our key (webhook Idempotency-Key, e-mail Message-ID);
on chat channels (eXpress, Bitrix24: no idempotency handle) it is recorded as UNKNOWN, which the agent
sees (NotificationOutcomeUnknown) and a person redrives after checking the chat.

Counted (prometheus_client, served on the operations port): every delivery's outcome per channel
(`ticketflow_notification_deliveries_total`) and every failed call to a destination per channel and
kind (`ticketflow_notification_send_failures_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from prometheus_client import Counter

from ticketflow.notifications.adapters.channels.base import (
    ChannelClient,
    DeliveryFailure,
    OutcomeUnknown,
    PermanentFailure,
    TemporaryFailure,
    snippet,
)
from ticketflow.notifications.adapters.ledger import UNENCODABLE, ClaimStatus, PgLedger, encode_variables
from ticketflow.notifications.adapters.own_claims import OwnClaims
from ticketflow.notifications.adapters.rendering import RenderError, TemplateCatalog
from ticketflow.notifications.adapters.resilience import (
    BreakerState,
    CircuitBreaker,
    DestinationSlots,
    RetryPolicy,
    Sleep,
)
from ticketflow.notifications.domain.markup import ESCAPES, escaped
from ticketflow.notifications.domain.model import (
    Channel,
    DeliveryOutcome,
    Notification,
    OutcomeStatus,
    OutgoingMessage,
)

# Channels whose receiver can drop a duplicate by our key (webhook Idempotency-Key header, e-mail
# Message-ID): a request whose outcome is unknown is sent again. Chat channels are not: there the
# outcome is recorded as unknown for a person to check (and redrive).
log = logging.getLogger("ticketflow.notifications")
RESEND_WHEN_IN_DOUBT = frozenset({Channel.WEBHOOK, Channel.EMAIL})
BUSY_LOG_EVERY_S = 30.0

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
Destination = tuple[Channel, str]


class Deliverer:
    def __init__(
        self,
        *,
        ledger: PgLedger,
        catalog: TemplateCatalog,
        channels: Iterable[ChannelClient],
        retry: RetryPolicy | None = None,
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
        per_destination: int = 64,
        attempt_deadline: float = 20.0,
        resend_when_in_doubt: frozenset[Channel] = RESEND_WHEN_IN_DOUBT,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < attempt_deadline < ledger.lease_seconds:
            raise ValueError(
                f"attempt_deadline ({attempt_deadline}s) must be shorter than the ledger's lease "
                f"({ledger.lease_seconds}s): a send must end before its claim can be taken over"
            )
        self._ledger = ledger
        self._catalog = catalog
        self._channels: Mapping[Channel, ChannelClient] = {c.channel: c for c in channels}
        self._retry = retry or RetryPolicy()
        self._breaker_factory = breaker_factory
        self._breakers: dict[Destination, CircuitBreaker] = {}
        self._slots: DestinationSlots[Destination] = DestinationSlots(per_destination)
        self._deadline = attempt_deadline
        self._resend_when_in_doubt = resend_when_in_doubt
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._own = OwnClaims()
        self._unsettled: set[asyncio.Task[DeliveryOutcome]] = set()  # ledger records of record_later deliveries
        self._busy_logged: dict[Destination, float] = {}

    def breaker(self, channel: Channel, destination: str) -> CircuitBreaker:
        key = (channel, destination)
        if key not in self._breakers:
            self._breakers[key] = self._breaker_factory()
        return self._breakers[key]

    def pending(self, channel: Channel, destination: str) -> int:
        """Deliveries on the destination now: sending, or waiting for one of its slots."""
        return self._slots.users((channel, destination))

    def busy(self) -> dict[Destination, int]:
        """Destinations where deliveries wait for a slot, and how many wait."""
        return self._slots.busy()

    def tracked_destinations(self) -> int:
        """Destinations holding in-memory state (deliveries on them, or a non-idle breaker)."""
        return len(self._slots.destinations() | self._breakers.keys())

    async def deliver(self, notification: Notification, *, record_later: bool = False) -> DeliveryOutcome:
        """Deliver once. With `record_later`, a successful send returns at once and its ledger record
        is written in the background: the caller must `await settle()` before it acknowledges the
        input (the batch consumer does, once per batch), so a lane does not wait for that round trip."""
        outcome = await self._deliver(notification, record_later)
        DELIVERIES.labels(notification.channel, outcome.status).inc()
        return outcome

    async def _deliver(self, notification: Notification, record_later: bool) -> DeliveryOutcome:
        key = notification.key
        if key in self._own.working:  # the same key twice at once in this process: the first one delivers
            return DeliveryOutcome(key, OutcomeStatus.IN_FLIGHT)
        # A destination that fails (circuit open) with every slot taken: waiting would hold the batch for
        # one hold after another; this one is a dead letter now (a temporary cause: redriven later).
        failing = self._failing_and_full((notification.channel, notification.destination))
        async with self._working(notification, slot=not failing):
            unwritten = self._own.unwritten.get(key)
            if unwritten is not None:  # decided, not yet in the ledger (an outage, a write in flight): send nothing
                written = await self._write(unwritten)
                return replace(written, status=OutcomeStatus.DUPLICATE) if written.sent_now else written
            return await self._claim_and_send(notification, record_later, failing)

    def _failing_and_full(self, destination: Destination) -> bool:
        breaker = self._breakers.get(destination)
        full = self._slots.users(destination) >= self._slots.limit
        return full and breaker is not None and breaker.state is BreakerState.OPEN

    async def _claim_and_send(self, notification: Notification, record_later: bool, failing: bool) -> DeliveryOutcome:
        # Rendered before the claim: when it renders, the destination takes calls and its rate limit has
        # a token now, the claim is also the first attempt's fence (one statement instead of two).
        prepared = self._try_prepare(notification)
        breaker = self._breakers.get((notification.channel, notification.destination))
        fence = (
            not isinstance(prepared, PermanentFailure)
            and (breaker is None or breaker.state is BreakerState.CLOSED)
            and prepared[0].ready(prepared[1])
        )
        claim = await self._ledger.claim(notification, fence=fence)
        key = notification.key
        if claim.status is ClaimStatus.DELIVERED:
            return DeliveryOutcome(key, OutcomeStatus.DUPLICATE, claim.attempts, None, claim.provider_message_id)
        if claim.status is ClaimStatus.DEAD:
            return DeliveryOutcome(key, OutcomeStatus.DEAD_LETTER, claim.attempts, claim.last_error)
        if claim.status is ClaimStatus.UNKNOWN:
            return DeliveryOutcome(key, OutcomeStatus.UNKNOWN, claim.attempts, claim.last_error)
        if claim.status is ClaimStatus.IN_FLIGHT:
            return DeliveryOutcome(key, OutcomeStatus.IN_FLIGHT, claim.attempts)
        # A claim of our own taken back (the batch came again after an outage) is in doubt only if a
        # request of ours may have left; another worker's, if it had fenced an attempt.
        in_doubt = key in self._own.may_have_sent if claim.own else claim.in_doubt
        if in_doubt and notification.channel not in self._resend_when_in_doubt:
            who = "the database went away" if claim.own else "a worker stopped"
            reason = (
                f"outcome unknown: {who} between sending attempt {claim.attempts} and recording its answer; "
                "check the chat, then redrive if it did not arrive"
            )
            return await self._write(DeliveryOutcome(key, OutcomeStatus.UNKNOWN, claim.attempts, reason))
        if failing:
            reason = f"circuit open and all {self._slots.limit} slots taken; more than we hold a delivery"
            return await self._dead(key, reason, claim.attempts)
        return await self._attempts(notification, claim.attempts, prepared, claim.fenced, record_later)

    async def settle(self) -> None:
        """Wait for the ledger records of `deliver(..., record_later=True)`, then write whatever an
        outage left unwritten. Raises the ledger's error while something cannot be written: the caller
        then does not acknowledge its input, which comes again and finds the outcome here (nothing is
        sent twice)."""
        while self._unsettled:
            tasks = list(self._unsettled)
            self._unsettled.difference_update(tasks)
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):
                    log.warning("notifications: an outcome was not recorded in the ledger (kept): %r", result)
        for outcome in list(self._own.unwritten.values()):
            await self._write(outcome)

    async def redrive(
        self,
        keys: Sequence[str] | None = None,
        *,
        limit: int = 100,
        refresh: Refresh | None = None,
        concurrency: int = 8,
    ) -> list[DeliveryOutcome]:
        """Send dead letters again after their cause is fixed (by default the oldest `limit`); named
        `keys` may also be unknown outcomes a person checked (it did not arrive).

        Each is re-claimed atomically, so concurrent redrives never send one twice, and a delivered
        key is never touched. `refresh` may update a notification first (a corrected address).
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(notification: Notification) -> DeliveryOutcome:
            async with gate, self._working(notification):
                if refresh is not None:
                    try:
                        notification = replace(await refresh(notification), key=notification.key)
                    except Exception as exc:
                        outcome = await self._dead(notification.key, f"refresh failed: {exc!r}", 0)
                    else:
                        outcome = await self._attempts(notification, 0, None, fenced=False)
                else:
                    outcome = await self._attempts(notification, 0, None, fenced=False)
                DELIVERIES.labels(notification.channel, outcome.status).inc()
                return outcome

        claimed = await self._ledger.claim_dead(keys, limit)
        return list(await asyncio.gather(*(one(n) for n in claimed)))

    async def redrive_temporary(self, *, older_than: float, limit: int = 500) -> list[DeliveryOutcome]:
        """Redrive the dead letters of temporary causes once they are `older_than` seconds old
        (`PgLedger.temporary_dead_letters`); permanent causes and unknown outcomes wait for a person."""
        keys = await self._ledger.temporary_dead_letters(older_than, limit)
        return await self.redrive(keys, limit=limit) if keys else []

    async def recover_stale(self, *, limit: int = 100, concurrency: int = 8) -> list[DeliveryOutcome]:
        """Finish deliveries whose worker stopped (run periodically; safe on many workers at once).

        Each goes through `deliver`, which takes the claim over atomically and applies the crash rule:
        resend where the receiver dedupes, an unknown outcome where it cannot.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(notification: Notification) -> DeliveryOutcome:
            async with gate:
                return await self.deliver(notification)

        return list(await asyncio.gather(*(one(n) for n in await self._ledger.stale(limit))))

    @contextlib.asynccontextmanager
    async def _working(self, notification: Notification, *, slot: bool = True) -> AsyncIterator[None]:
        """This task works on the key, holding one of its destination's slots (waiting for one first)."""
        key, destination = notification.key, (notification.channel, notification.destination)
        self._own.working.add(key)
        try:
            if not slot:  # it will not call the destination
                yield
                return
            if self._slots.users(destination) >= self._slots.limit:
                self._say_busy(destination)
            async with self._slots.hold(destination):
                yield
        finally:
            self._own.working.discard(key)
            if not self._slots.users(destination):
                # Keep breakers only for destinations that are failing: memory follows trouble, not the
                # number of destinations ever seen.
                breaker = self._breakers.get(destination)
                if breaker is not None and breaker.idle:
                    del self._breakers[destination]

    def _say_busy(self, destination: Destination) -> None:
        now = time.monotonic()
        if now - self._busy_logged.get(destination, -BUSY_LOG_EVERY_S) >= BUSY_LOG_EVERY_S:
            self._busy_logged[destination] = now
            log.info("notifications: %s %s busy (%d deliveries at once): the next ones wait, and so does"
                     " consumption", destination[0], destination[1], self._slots.limit)  # fmt: skip
        for old in [d for d, at in self._busy_logged.items() if now - at > BUSY_LOG_EVERY_S * 10]:
            del self._busy_logged[old]

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
                    await client.pace(message)  # a rate limit's wait: before the fence, not part of the attempt
                    attempts_now = await self._ledger.begin_attempt(key)
                    if attempts_now is None:  # our lease was taken over: the other worker owns it now
                        self._own.recorded(key)
                        return DeliveryOutcome(key, OutcomeStatus.IN_FLIGHT, total, "claim lost")
                    total = attempts_now
                self._own.may_have_sent.add(key)
                try:
                    provider_id = await self._send(client, message)
                except TemporaryFailure as exc:  # not sent, or refused: safe to send again
                    self._own.may_have_sent.discard(key)
                    breaker.record_failure()
                    SEND_FAILURES.labels(notification.channel, "temporary").inc()
                    failure = exc
                except OutcomeUnknown as exc:
                    breaker.record_failure()
                    if notification.channel not in self._resend_when_in_doubt:
                        reason = f"outcome unknown: {exc.reason}; check the chat, then redrive if it did not arrive"
                        return await self._write(DeliveryOutcome(key, OutcomeStatus.UNKNOWN, total, reason))
                    failure = TemporaryFailure(exc.reason)  # the receiver drops the duplicate by our key
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
                    outcome = DeliveryOutcome(key, OutcomeStatus.DELIVERED, total, None, provider_id)
                    if not record_later:
                        return await self._write(outcome)
                    self._own.unwritten[key] = outcome  # now: the key's next record must not claim it again
                    task = asyncio.get_running_loop().create_task(self._write(outcome))
                    self._unsettled.add(task)
                    return outcome
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

    async def _send(self, client: ChannelClient, message: OutgoingMessage) -> str:
        """One request, within the attempt's deadline (shorter than the claim's lease)."""
        try:
            async with asyncio.timeout(self._deadline):
                return await client.send(message)
        except TimeoutError:
            raise OutcomeUnknown(f"no answer within {self._deadline:g}s (the attempt's deadline)") from None

    async def _dead(self, key: str, reason: str, attempts: int) -> DeliveryOutcome:
        return await self._write(DeliveryOutcome(key, OutcomeStatus.DEAD_LETTER, attempts, reason))

    async def _write(self, outcome: DeliveryOutcome) -> DeliveryOutcome:
        """Record a final outcome in the ledger. Kept in memory until written: if the ledger is away,
        this raises, and the record coming again (or `settle`) writes it without sending anything."""
        key = outcome.key
        self._own.unwritten[key] = outcome
        if outcome.status is OutcomeStatus.DELIVERED:
            await self._ledger.record_delivered(key, outcome.provider_message_id or "")
        elif outcome.status is OutcomeStatus.UNKNOWN:
            await self._ledger.record_unknown(key, outcome.reason or "outcome unknown")
            log.warning("notifications: %s: %s", key, outcome.reason)
        else:
            await self._ledger.record_dead(key, outcome.reason or "unknown")
        self._own.recorded(key)
        return outcome
