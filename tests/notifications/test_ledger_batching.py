"""Coalesced ledger writes: many concurrent deliveries, few statements, still exactly once.

Real PostgreSQL ledger and the local webhook receiver (tests/fakes); assertions are on what the
receiver got and on the ledger rows.
"""

from __future__ import annotations

import asyncio

import pytest

from ticketflow.notifications.adapters.batching import Coalescer
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.domain.model import Channel, OutcomeStatus

from .platform_stack import Stack, note

pytestmark = pytest.mark.pg


async def test_concurrent_deliveries_share_statements_and_each_is_sent_once(stack: Stack) -> None:
    deliverer = stack.deliverer()
    notifications = [note(Channel.WEBHOOK) for _ in range(40)]
    outcomes = await asyncio.gather(*(deliverer.deliver(n) for n in notifications))
    assert {o.status for o in outcomes} == {OutcomeStatus.DELIVERED}
    assert sorted(h.idempotency_key for h in stack.hooks.received) == sorted(n.key for n in notifications)
    counts = deliverer._ledger.batch_counts()
    assert counts["claim"][1] == counts["record_delivered"][1] == 40
    assert counts["begin_attempt"] == (0, 0)  # each fresh claim fenced its first attempt itself
    assert counts["claim"][0] < 40 and counts["record_delivered"][0] < 40, counts  # rows shared statements
    ledger = PgLedger(stack.pool)
    rows = [await ledger.row(n.key) for n in notifications]
    assert all(r is not None and r["status"] == "delivered" and r["attempts"] == 1 for r in rows)

    again = await asyncio.gather(*(deliverer.deliver(n) for n in notifications))  # a redelivered batch
    assert {o.status for o in again} == {OutcomeStatus.DUPLICATE}
    assert len(stack.hooks.received) == 40


async def test_a_fenced_claim_left_by_a_stopped_worker_is_in_doubt(stack: Stack) -> None:
    notification = note(Channel.BITRIX24)
    stopped = PgLedger(stack.pool, lease_seconds=0.2)
    first = await stopped.claim(notification, fence=True)  # then the worker dies before sending/recording
    assert first.fenced and first.attempts == 1 and not first.in_doubt
    await asyncio.sleep(0.4)
    outcome = await stack.deliverer().deliver(notification)  # takes the expired claim over
    assert outcome.status is OutcomeStatus.UNKNOWN and "outcome unknown" in (outcome.reason or "")
    assert stack.bitrix.received == []  # a chat message is not sent a second time on a guess
    unfenced = note(Channel.BITRIX24)
    claim = await stopped.claim(unfenced)  # not fenced: nothing was about to be sent
    await asyncio.sleep(0.4)
    assert not claim.fenced and claim.attempts == 0
    assert (await stack.deliverer().deliver(unfenced)).status is OutcomeStatus.DELIVERED
    assert len(stack.bitrix.received) == 1


async def test_the_same_key_twice_in_one_turn_is_sent_once(stack: Stack) -> None:
    deliverer = stack.deliverer()
    notification = note(Channel.BITRIX24)
    outcomes = await asyncio.gather(*(deliverer.deliver(notification) for _ in range(5)))
    statuses = [o.status for o in outcomes]
    assert statuses.count(OutcomeStatus.DELIVERED) == 1
    assert set(statuses) <= {OutcomeStatus.DELIVERED, OutcomeStatus.DUPLICATE, OutcomeStatus.IN_FLIGHT}
    assert len(stack.bitrix.received) == 1


async def test_a_row_postgres_refuses_fails_alone(stack: Stack) -> None:
    deliverer = stack.deliverer()
    good = [note(Channel.WEBHOOK) for _ in range(5)]
    bad = note(Channel.WEBHOOK, address="ext\x00nul")  # text columns cannot hold NUL
    results = await asyncio.gather(*(deliverer.deliver(n) for n in [*good, bad]), return_exceptions=True)
    assert all(getattr(r, "status", None) is OutcomeStatus.DELIVERED for r in results[:5]), results
    assert isinstance(results[5], Exception) and "0x00" in str(results[5])
    assert len(stack.hooks.received) == 5


async def test_a_failed_batch_call_fails_each_caller_and_the_next_batch_runs() -> None:
    calls: list[list[int]] = []

    async def call(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        if 13 in items:
            raise ConnectionError("database went away")
        return [i * 2 if i % 5 else ValueError(f"refused {i}") for i in items]

    coalescer: Coalescer[int, int] = Coalescer(call, key=lambda i: i % 10, max_inflight=1)
    first = await asyncio.gather(*(coalescer.submit(i) for i in (1, 2, 11, 13)), return_exceptions=True)
    # 11 shares a key with 1: it waits for the next batch, which also holds 13 and fails.
    assert calls[0] == [1, 2, 13]
    assert all(isinstance(r, ConnectionError) for r in (first[0], first[1], first[3]))
    assert first[2] == 22 and calls[1] == [11]
    second = await asyncio.gather(coalescer.submit(3), coalescer.submit(5), return_exceptions=True)
    assert second[0] == 6 and isinstance(second[1], ValueError) and str(second[1]) == "refused 5"
    assert calls[2] == [3, 5] and coalescer.batches == 3 and coalescer.items == 6
