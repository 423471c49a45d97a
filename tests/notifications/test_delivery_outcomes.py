"""Issue 16, items 3 and 4, on the engine: a busy destination is met with back-pressure (never dead
letters), a send has a hard deadline and an answer after it is an unknown outcome (never sent twice to a
chat), a database outage between a send and its record sends nothing twice, and a killed worker's claims
are taken over at once. Real PostgreSQL ledger, real local platform servers; "once" is counted on what
the servers received."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from ticketflow.notifications.adapters.channels import ChannelClient
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.ledger import PgLedger, is_temporary_cause
from ticketflow.notifications.adapters.liveness import Liveness
from ticketflow.notifications.adapters.resilience import BreakerState, CircuitBreaker, RetryPolicy
from ticketflow.notifications.domain.model import Channel, Notification, OutcomeStatus, OutgoingMessage

from .platform_stack import BOT_ID, VARIABLES, Stack, note

pytestmark = pytest.mark.pg


class Counting:
    """A channel that counts how many of its sends run at once (what the destination sees)."""

    def __init__(self, inner: ChannelClient) -> None:
        self.inner, self.channel = inner, inner.channel
        self.now = self.most = 0

    def ready(self, message: OutgoingMessage) -> bool:
        return self.inner.ready(message)

    async def pace(self, message: OutgoingMessage) -> None:
        await self.inner.pace(message)

    async def send(self, message: OutgoingMessage) -> str:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self.inner.send(message)
        finally:
            self.now -= 1

    async def aclose(self) -> None:
        return None  # the stack closes the inner channel


def notes(channel: Channel, count: int) -> list[Notification]:
    return [note(channel, variables={**VARIABLES, "message": f"message {n}"}) for n in range(count)]


async def statuses(pool: asyncpg.Pool, items: list[Notification]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) FROM notification_deliveries WHERE idempotency_key = ANY($1::text[]) GROUP BY 1",
        [n.key for n in items],
    )
    return {r[0]: r[1] for r in rows}


async def test_a_burst_to_one_destination_waits_for_its_slots_and_every_message_arrives_once(stack: Stack) -> None:
    """The public eXpress bot is one destination for all its customers: 60 deliveries at once to it, with
    4 slots, are sent 4 at a time; the others wait (their batch with them). None is a dead letter."""
    stack.botx.answer_delay = 0.05
    express = next(c for c in stack.channels if c.channel is Channel.EXPRESS)
    counting = Counting(express)
    deliverer = stack.deliverer(per_destination=4)
    deliverer._channels = {**deliverer._channels, Channel.EXPRESS: counting}
    burst = notes(Channel.EXPRESS, 60)
    outcomes = await asyncio.gather(*(deliverer.deliver(n) for n in burst))
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 60
    assert counting.most == 4  # the destination never saw more than its slots, and all of them were used
    bodies = sorted(m.body for m in stack.botx.received)
    assert len(bodies) == 60 and len(set(bodies)) == 60  # each once
    assert await statuses(stack.pool, burst) == {"delivered": 60}
    assert deliverer.tracked_destinations() == 0 and deliverer.busy() == {}


async def test_a_failing_destination_with_every_slot_taken_is_a_dead_letter_not_a_wait(stack: Stack) -> None:
    """Busy waits; failing does not: with the circuit open and both slots held by deliveries waiting on it,
    a third one is a dead letter at once (a temporary cause, redriven later) instead of holding its batch
    for one hold after another."""
    stack.botx.fail_next(503, times=100)
    deliverer = Deliverer(
        ledger=PgLedger(stack.pool, lease_seconds=60.0), catalog=stack.catalog, channels=stack.channels,
        retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1, max_retry_after=3.0),
        breaker_factory=lambda: CircuitBreaker(failure_threshold=1, reset_timeout=0.5, max_reset_timeout=0.5),
        per_destination=2,
    )  # fmt: skip
    holding = [asyncio.create_task(deliverer.deliver(n)) for n in notes(Channel.EXPRESS, 2)]
    for _ in range(200):  # until both hold a slot and the circuit is open
        if deliverer.pending(Channel.EXPRESS, str(BOT_ID)) == 2 and deliverer.breaker(
            Channel.EXPRESS, str(BOT_ID)).state is BreakerState.OPEN:  # fmt: skip
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    third = await deliverer.deliver(note(Channel.EXPRESS))
    assert time.monotonic() - started < 1.0 and not all(t.done() for t in holding)
    assert third.status is OutcomeStatus.DEAD_LETTER and "slots taken" in (third.reason or "")
    assert third.key in await PgLedger(stack.pool).temporary_dead_letters(0, 100)  # redriven automatically
    await asyncio.gather(*holding)


async def test_an_answer_after_the_deadline_is_an_unknown_outcome_never_sent_again_blindly(stack: Stack) -> None:
    """BotX posts the message, then answers after the attempt's deadline: one request reached the chat,
    the outcome is unknown (not a dead letter, not retried), the record coming again sends nothing, an
    operator's "redrive all" leaves it alone; only a person's redrive by key sends it again."""
    stack.botx.answer_delay = 1.5
    deliverer = stack.deliverer(attempt_deadline=0.3)
    notification = note(Channel.EXPRESS)
    outcome = await deliverer.deliver(notification)
    assert outcome.status is OutcomeStatus.UNKNOWN and outcome.attempts == 1
    assert "no answer within 0.3s" in (outcome.reason or "") and "check the chat" in (outcome.reason or "")
    assert len(stack.botx.received) == 1  # it did reach the platform
    row = await PgLedger(stack.pool).row(notification.key)
    assert row is not None and row["status"] == "unknown" and row["claimed_by"] is None

    stack.botx.answer_delay = 0.0
    assert (await deliverer.deliver(notification)).status is OutcomeStatus.UNKNOWN  # the event again
    assert (await stack.deliverer().deliver(notification)).status is OutcomeStatus.UNKNOWN  # another worker
    assert notification.key not in {o.key for o in await deliverer.recover_stale()}
    ledger = PgLedger(stack.pool)
    assert notification.key not in await ledger.temporary_dead_letters(0, 10_000)  # no automatic redrive
    assert notification.key not in {n.key for n in await ledger.claim_dead(None, 10_000)}  # nor `redrive --all`
    assert len(stack.botx.received) == 1
    [redriven] = await deliverer.redrive([notification.key])  # a person checked: it did not arrive
    assert redriven.status is OutcomeStatus.DELIVERED and len(stack.botx.received) == 2


async def test_the_next_delivery_goes_on_while_a_trickling_destination_is_cut_at_the_deadline(stack: Stack) -> None:
    """A destination that trickles can hold a delivery no longer than its deadline (shorter than the
    lease, so its claim is never taken over mid-send); other destinations are not held at all."""
    stack.botx.answer_delay = 30.0
    deliverer = stack.deliverer(lease=4.0, attempt_deadline=1.0)
    slow = asyncio.create_task(deliverer.deliver(note(Channel.EXPRESS)))
    other = await asyncio.wait_for(deliverer.deliver(note(Channel.BITRIX24)), 5)
    assert other.status is OutcomeStatus.DELIVERED and not slow.done()
    outcome = await asyncio.wait_for(slow, 5)
    assert outcome.status is OutcomeStatus.UNKNOWN and "no answer within 1s" in (outcome.reason or "")
    assert len(stack.botx.received) == 1


async def test_a_webhook_answering_after_the_deadline_is_sent_again_with_the_same_key(stack: Stack) -> None:
    """Webhook receivers drop a duplicate by our Idempotency-Key: there, an unknown outcome is retried."""
    from fakes.asgi import Fault

    stack.hooks.faults.add(Fault(202, b"", {}, delay=1.5))  # the first request stalls past the deadline
    notification = note(Channel.WEBHOOK)
    outcome = await stack.deliverer(attempt_deadline=0.3).deliver(notification)
    assert outcome.status is OutcomeStatus.DELIVERED and outcome.attempts == 2
    assert stack.hooks.faults.served == 1 and stack.hooks.unique_keys == {notification.key}


class LedgerAway(PgLedger):
    """The ledger's next `failures` writes of `which` fail as a database outage does."""

    def __init__(self, pool: asyncpg.Pool, which: str, failures: int = 1, **kw: Any) -> None:
        super().__init__(pool, **kw)
        self.which, self.failures = which, failures

    async def _away(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("the database is away")

    async def record_delivered(self, key: str, provider_message_id: str) -> bool:
        if self.which == "record_delivered":
            await self._away()
        return await super().record_delivered(key, provider_message_id)

    async def record_retry(self, key: str, reason: str, wait_seconds: float) -> bool:
        if self.which == "record_retry":
            await self._away()
        return await super().record_retry(key, reason, wait_seconds)


@pytest.mark.parametrize("record_later", [False, True])
async def test_an_outage_between_sending_and_recording_sends_nothing_twice(stack: Stack, record_later: bool) -> None:
    """PostgreSQL goes away after the platform took the message: the record comes again (the batch was
    not committed) and finds the outcome in the process's memory; it is written, nothing is sent."""
    deliverer = stack.deliverer()
    # With record_later the write happens in the background, and `settle` tries it once more.
    deliverer._ledger = LedgerAway(stack.pool, "record_delivered", 1 + record_later, lease_seconds=60.0)
    notification = note(Channel.EXPRESS)
    if record_later:
        first = await deliverer.deliver(notification, record_later=True)
        assert first.status is OutcomeStatus.DELIVERED
        with pytest.raises(ConnectionRefusedError):
            await deliverer.settle()  # still away: the batch is not acknowledged
    else:
        with pytest.raises(ConnectionRefusedError):
            await deliverer.deliver(notification)
    again = await deliverer.deliver(notification)
    assert again.status is OutcomeStatus.DUPLICATE  # delivered before; nothing sent now
    await deliverer.settle()
    assert len(stack.botx.received) == 1
    assert await statuses(stack.pool, [notification]) == {"delivered": 1}


async def test_the_same_record_again_before_its_delivery_is_recorded_sends_nothing_and_doubts_nothing(
    stack: Stack,
) -> None:
    """A batch with the same record twice: the second comes while the first one's "delivered" write is
    still on its way (record_later). It is a duplicate, not an outcome in doubt."""
    deliverer = stack.deliverer()
    notification = note(Channel.EXPRESS)
    first = await deliverer.deliver(notification, record_later=True)
    second = await deliverer.deliver(notification, record_later=True)
    await deliverer.settle()
    assert (first.status, second.status) == (OutcomeStatus.DELIVERED, OutcomeStatus.DUPLICATE)
    assert len(stack.botx.received) == 1 and await statuses(stack.pool, [notification]) == {"delivered": 1}


async def test_an_outage_after_a_refused_attempt_leaves_no_doubt_and_the_message_goes_out(stack: Stack) -> None:
    """BotX refused the first try (503); recording the retry fails (the database went away). The claim
    is ours and we know nothing left: the record coming again sends it, once, and no outcome is unknown."""
    stack.botx.fail_next(503)
    deliverer = stack.deliverer()
    deliverer._ledger = LedgerAway(stack.pool, "record_retry", lease_seconds=60.0)
    notification = note(Channel.EXPRESS)
    with pytest.raises(ConnectionRefusedError):
        await deliverer.deliver(notification)
    again = await deliverer.deliver(notification)
    assert again.status is OutcomeStatus.DELIVERED and len(stack.botx.received) == 1


async def test_a_killed_workers_claims_are_taken_over_at_once(stack: Stack, pg_database: str) -> None:
    """A registered worker holds its liveness lock. Killed (its session gone), its claims do not wait for
    their lease (60 s here): one it had not sent is sent by the next worker at once; one it was sending
    is an unknown outcome at once (never sent twice). While it lives, they stay its own."""
    victim = stack.deliverer(lease=60.0)
    liveness = Liveness(victim._ledger.claimant, lambda: asyncpg.connect(pg_database))
    await liveness.start()
    try:
        claimed, sending = note(Channel.EXPRESS), note(Channel.BITRIX24)
        await victim._ledger.claim(claimed)  # claimed, not yet sent
        await victim._ledger.claim(sending, fence=True)  # fenced: the request may have left
        survivor = stack.deliverer(lease=60.0)
        assert (await survivor.deliver(claimed)).status is OutcomeStatus.IN_FLIGHT  # alive: still its own
        assert liveness._session is not None
        liveness._session.terminate()  # killed: the session ends without a word
        gone = "SELECT notification_worker_gone($1)"
        for _ in range(100):  # PostgreSQL notices the closed socket and ends the session
            if await stack.pool.fetchval(gone, victim._ledger.claimant):
                break
            await asyncio.sleep(0.05)
        taken = await survivor.deliver(claimed)
        unknown = await survivor.deliver(sending)
    finally:
        await liveness.close()
    assert taken.status is OutcomeStatus.DELIVERED and len(stack.botx.received) == 1
    assert unknown.status is OutcomeStatus.UNKNOWN and "a worker stopped" in (unknown.reason or "")
    assert stack.bitrix.received == []


REASONS = [
    "gave up after 5 attempts: HTTP 503",
    "destination backlog full (64 waiting)",
    "circuit open and all 64 slots taken; more than we hold a delivery",
    "circuit open; waited 31s, more than we hold a delivery",
    "bitrix24: portal 'no-such-portal': not_installed",
    "template missing: farewell",
    "outcome unknown: a worker stopped between sending attempt 1 and recording its answer",
    "HTTP 401: gave up after the token was refused",
]


async def test_the_causes_redriven_by_themselves_are_those_the_replies_consumer_keeps_out_of_its_dead_letters(
    stack: Stack,
) -> None:
    """`chat.replies` dead-letters a reply's delivery only when no automatic redrive will send it
    (`is_temporary_cause`); the redrive's query (`temporary_dead_letters`) must agree with it on every cause."""
    ledger = PgLedger(stack.pool, lease_seconds=60.0)
    items = notes(Channel.EXPRESS, len(REASONS))
    for item, reason in zip(items, REASONS, strict=True):
        await ledger.claim(item)
        assert await ledger.record_dead(item.key, reason)
    redriven = set(await ledger.temporary_dead_letters(0, 10_000))
    by_query = {reason for item, reason in zip(items, REASONS, strict=True) if item.key in redriven}
    assert by_query == {reason for reason in REASONS if is_temporary_cause(reason)}
    assert by_query == set(REASONS[:4])  # the destination down or slow; the rest wait for a person
