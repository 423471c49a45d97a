"""The delivery engine end to end: real PostgreSQL ledger, real local platform servers.

Every assertion about "exactly once" is made on what the servers received.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any

import pytest
from fakes.asgi import Fault

from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.adapters.resilience import CircuitBreaker, RetryPolicy
from ticketflow.notifications.domain.model import Channel, Notification, OutcomeStatus
from ticketflow.notifications.domain.policy import Address, Kind, Person, Role, Schedule, Window, plan

from .platform_stack import ADDRESSES, Stack, note

pytestmark = pytest.mark.pg
LEASE = 1.0  # short claim leases for the crash tests; long enough for a loaded machine


@pytest.mark.parametrize("channel", list(Channel))
async def test_each_channel_delivers_once_even_when_the_event_comes_again(stack: Stack, channel: Channel) -> None:
    deliverer = stack.deliverer()
    notification = note(channel)
    first = await deliverer.deliver(notification)
    again = await deliverer.deliver(notification)
    other_worker = await stack.deliverer().deliver(notification)
    assert first.status is OutcomeStatus.DELIVERED and first.attempts == 1
    assert again.status is other_worker.status is OutcomeStatus.DUPLICATE
    assert again.provider_message_id == first.provider_message_id
    assert stack.total_received() == 1
    assert "Clear the cache, please." in _received_text(stack, channel)


def _received_text(stack: Stack, channel: Channel) -> str:
    if channel is Channel.EXPRESS:
        return str(stack.botx.received[0].body)
    if channel is Channel.BITRIX24:
        return str(stack.bitrix.received[0].message)
    if channel is Channel.EMAIL:
        return str(stack.smtp.received[0].body)
    return str(stack.hooks.received[0].payload["body"])


@pytest.mark.parametrize("channel", [Channel.BITRIX24, Channel.EXPRESS])
async def test_a_persons_text_is_never_read_as_bitrix24_markup(stack: Stack, channel: Channel) -> None:
    """Issue 16: an agent's reply (or a customer's title) with BBCode in it is sent to Bitrix24 as the
    text it is: a WORD JOINER after each "[" keeps the portal from reading "[url=...]" as a link."""
    sneaky = "Откройте [url=https://evil.example]ваш портал[/url] и [b]нажмите[/b]"
    variables = {"ticket_number": "TF-1", "agent_name": "Анна [i]Смирнова[/i]", "message": sneaky}
    outcome = await stack.deliverer().deliver(note(channel, variables=variables))
    assert outcome.status is OutcomeStatus.DELIVERED
    received = _received_text(stack, channel)
    if channel is Channel.BITRIX24:
        assert "[url=" not in received and "[b]" not in received and "[i]" not in received
        assert received.replace("\u2060", "").count("[url=https://evil.example]ваш портал[/url]") == 1
    else:  # other channels get the text untouched
        assert sneaky in received


async def test_concurrent_duplicates_send_once(stack: Stack) -> None:
    notification = note(Channel.BITRIX24)
    workers = [stack.deliverer() for _ in range(6)]
    outcomes = await asyncio.gather(*(w.deliver(notification) for w in workers))
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count(OutcomeStatus.DELIVERED) == 1
    assert set(statuses) <= {OutcomeStatus.DELIVERED, OutcomeStatus.DUPLICATE, OutcomeStatus.IN_FLIGHT}
    assert len(stack.bitrix.received) == 1


async def test_temporary_failures_are_retried_and_sent_once(stack: Stack) -> None:
    stack.bitrix.query_limit_next(2)
    stack.botx.fail_next(503)
    stack.botx.fail_next(429, retry_after="2")
    deliverer = stack.deliverer()
    b24 = await deliverer.deliver(note(Channel.BITRIX24))
    express = await deliverer.deliver(note(Channel.EXPRESS))
    assert (b24.status, b24.attempts) == (OutcomeStatus.DELIVERED, 3)
    assert (express.status, express.attempts) == (OutcomeStatus.DELIVERED, 3)
    assert len(stack.bitrix.received) == 1 and len(stack.botx.received) == 1
    assert max(stack.sleeps) >= 2.0  # Retry-After honoured
    row = await PgLedger(stack.pool).row(b24.key)
    assert row is not None and row["status"] == "delivered" and row["attempts"] == 3


async def test_exhausted_retries_dead_letter_then_redrive_sends_once(stack: Stack) -> None:
    stack.hooks.fail_next(503, times=4)
    deliverer = stack.deliverer()
    notification = note(Channel.WEBHOOK)
    dead = await deliverer.deliver(notification)
    assert dead.status is OutcomeStatus.DEAD_LETTER and dead.attempts == 4
    assert dead.reason is not None and "gave up after 4 tries" in dead.reason and "503" in dead.reason
    assert (await deliverer.deliver(notification)).status is OutcomeStatus.DEAD_LETTER  # nothing new sent
    assert stack.hooks.received == []
    redriven = await asyncio.gather(
        deliverer.redrive([notification.key]), stack.deliverer().redrive([notification.key])
    )
    assert sorted(len(r) for r in redriven) == [0, 1]  # one worker re-claimed it, the other found nothing
    assert [o.status for r in redriven for o in r] == [OutcomeStatus.DELIVERED]
    assert await deliverer.redrive([notification.key]) == []
    assert (await deliverer.deliver(notification)).status is OutcomeStatus.DUPLICATE
    assert [h.idempotency_key for h in stack.hooks.received] == [notification.key]


async def test_permanent_failures_dead_letter_at_once(stack: Stack) -> None:
    stack.hooks.fail_next(403, body=b"forbidden")
    outcome = await stack.deliverer().deliver(note(Channel.WEBHOOK))
    assert outcome.status is OutcomeStatus.DEAD_LETTER and outcome.attempts == 1
    assert outcome.reason is not None and "http 403" in outcome.reason
    assert stack.sleeps == []


async def test_missing_variable_dead_letters_without_sending_and_redrive_after_fix(stack: Stack) -> None:
    deliverer = stack.deliverer()
    notification = note(Channel.EXPRESS, variables={"ticket_number": "B24-7", "agent_name": "Anna"})
    outcome = await deliverer.deliver(notification)
    assert outcome.status is OutcomeStatus.DEAD_LETTER and outcome.attempts == 0
    assert outcome.reason is not None and "'message' is undefined" in outcome.reason
    assert stack.botx.received == []

    async def add_missing(n: Notification) -> Notification:
        return replace(n, variables={**n.variables, "message": "fixed"})

    [redriven] = await deliverer.redrive([notification.key], refresh=add_missing)
    assert redriven.status is OutcomeStatus.DELIVERED
    assert [r.body.endswith("fixed\n") or "fixed" in r.body for r in stack.botx.received] == [True]


async def test_recipient_without_address_is_a_dead_letter(stack: Stack) -> None:
    outcome = await stack.deliverer().deliver(note(Channel.EMAIL, address=None))
    assert outcome.status is OutcomeStatus.DEAD_LETTER
    assert outcome.reason is not None and "has no email address" in outcome.reason
    assert stack.total_received() == 0


@pytest.mark.parametrize("garbage", [b"<html>502 from a proxy</html>", b'{"unexpected": "shape"}'])
async def test_garbage_answer_dead_letters_and_is_never_sent_twice(stack: Stack, garbage: bytes) -> None:
    stack.bitrix.fail_next(200, body=garbage)
    deliverer = stack.deliverer()
    notification = note(Channel.BITRIX24)
    outcome = await deliverer.deliver(notification)
    again = await deliverer.deliver(notification)
    assert outcome.status is again.status is OutcomeStatus.DEAD_LETTER
    assert outcome.reason is not None and "unrecognised answer" in outcome.reason
    assert stack.bitrix.requests == 1


class CrashAfterSend(PgLedger):
    """The process 'dies' after the platform accepted the message, before the ledger knows."""

    async def record_delivered(self, key: str, provider_message_id: str) -> bool:
        raise ConnectionError("worker killed")


async def _crash_after_send(stack: Stack, notification: Notification, lease: float) -> None:
    crashing = stack.deliverer(lease=lease)
    crashing._ledger = CrashAfterSend(stack.pool, lease_seconds=lease)
    with pytest.raises(ConnectionError):
        await crashing.deliver(notification)


async def test_crash_between_send_and_record_on_a_chat_channel_is_not_resent(stack: Stack) -> None:
    notification = note(Channel.BITRIX24)
    await _crash_after_send(stack, notification, lease=LEASE)
    assert (await stack.deliverer().deliver(notification)).status is OutcomeStatus.IN_FLIGHT  # lease still held
    await asyncio.sleep(LEASE + 0.1)
    outcome = await stack.deliverer().deliver(notification)
    assert outcome.status is OutcomeStatus.UNKNOWN  # not a dead letter: it may well have arrived
    assert outcome.reason is not None and "outcome unknown" in outcome.reason
    assert len(stack.bitrix.received) == 1  # at most once: a person decides (redrive) if it was lost


async def test_crash_between_send_and_record_on_a_webhook_resends_the_same_key(stack: Stack) -> None:
    notification = note(Channel.WEBHOOK)
    await _crash_after_send(stack, notification, lease=LEASE)
    await asyncio.sleep(LEASE + 0.1)
    outcome = await stack.deliverer().deliver(notification)
    assert outcome.status is OutcomeStatus.DELIVERED
    assert len(stack.hooks.received) == 2 and stack.hooks.unique_keys == {notification.key}


async def test_breaker_opens_and_stops_calling_a_failing_destination(stack: Stack) -> None:
    stack.botx.fail_next(503, times=100)
    deliverer = stack.deliverer(breaker_factory=lambda: CircuitBreaker(failure_threshold=2, reset_timeout=60))
    first = await deliverer.deliver(note(Channel.EXPRESS))
    second = await deliverer.deliver(note(Channel.EXPRESS))
    assert stack.botx.faults.served == 2  # two real calls opened the breaker; then none
    assert first.status is second.status is OutcomeStatus.DEAD_LETTER
    assert second.reason is not None and "circuit open" in second.reason
    other = await deliverer.deliver(note(Channel.BITRIX24))  # other destinations are unaffected
    assert other.status is OutcomeStatus.DELIVERED
    assert deliverer.tracked_destinations() == 1  # only the failing destination keeps state


async def test_deliveries_waiting_on_an_open_circuit_use_no_tries_and_all_arrive_once_it_is_back(
    stack: Stack,
) -> None:
    # Given a destination that fails its next 5 calls, a breaker that opens at the first failure
    # (open 0.05 s, doubling to 0.2 s), and 3 tries per delivery,
    stack.bitrix.fail_next(503, times=5)
    deliverer = Deliverer(
        ledger=PgLedger(stack.pool, lease_seconds=60.0),
        catalog=stack.catalog,
        channels=stack.channels,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=5),
        breaker_factory=lambda: CircuitBreaker(failure_threshold=1, reset_timeout=0.05, max_reset_timeout=0.2),
    )
    # one delivery alone finds it down: its 3 tries are 3 failed calls, the breaker is open;
    first = await deliverer.deliver(note(Channel.BITRIX24))
    assert first.status is OutcomeStatus.DEAD_LETTER and "gave up after 3 tries" in (first.reason or "")
    # when 10 more deliveries to it run at once while it stays down for 2 more calls (fewer than a
    # delivery's tries: the one that wins a probe may well win the next one too),
    notifications = [note(Channel.BITRIX24) for _ in range(10)]
    outcomes = await asyncio.gather(*(deliverer.deliver(n) for n in notifications))
    # then only single probes reached it (waiting on the open circuit used no tries: counted as
    # tries, the waiting deliveries gave up after 3 turns of "circuit open"), and every one arrived.
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 10, [o.reason for o in outcomes if o.reason]
    assert stack.bitrix.faults.served == 5
    assert len(stack.bitrix.received) == 10  # each once


async def test_a_stalled_destination_holds_the_next_delivery_instead_of_dead_lettering_it(stack: Stack) -> None:
    """Issue 16: a busy destination is met with back-pressure. The third delivery waits for a slot (and
    its caller, the Kafka batch, with it) until the two in flight finish; nothing becomes a dead letter."""
    stack.hooks.faults.add(Fault(503, b"", {}, delay=2.0), 2)
    deliverer = stack.deliverer(per_destination=2)
    notifications = [note(Channel.WEBHOOK) for _ in range(3)]
    tasks = [asyncio.create_task(deliverer.deliver(n)) for n in notifications[:2]]
    for _ in range(200):  # until both wait on the stalled receiver
        if deliverer.pending(Channel.WEBHOOK, "crm") == 2:
            break
        await asyncio.sleep(0.01)
    assert deliverer.pending(Channel.WEBHOOK, "crm") == 2
    third = asyncio.create_task(deliverer.deliver(notifications[2]))
    await asyncio.sleep(0.5)
    assert not third.done() and deliverer.busy() == {(Channel.WEBHOOK, "crm"): 1}  # waiting, not refused
    outcomes = await asyncio.gather(*tasks, third)
    assert [o.status for o in outcomes] == [OutcomeStatus.DELIVERED] * 3
    assert deliverer.pending(Channel.WEBHOOK, "crm") == 0
    assert deliverer.tracked_destinations() == 0  # the breaker closed clean and was dropped
    assert stack.hooks.unique_keys == {n.key for n in notifications} and len(stack.hooks.received) == 3


async def test_recover_stale_finishes_work_of_a_worker_that_went_away(stack: Stack) -> None:
    claimed_not_sent = note(Channel.EXPRESS)
    await PgLedger(stack.pool, lease_seconds=LEASE).claim(claimed_not_sent)  # then the worker vanished
    sent_not_recorded = note(Channel.BITRIX24)
    await _crash_after_send(stack, sent_not_recorded, lease=LEASE)
    deliverer = stack.deliverer()
    assert not {o.key for o in await deliverer.recover_stale()} & {claimed_not_sent.key, sent_not_recorded.key}
    await asyncio.sleep(LEASE + 0.1)
    outcomes = {o.key: o for o in await deliverer.recover_stale()}
    assert outcomes[claimed_not_sent.key].status is OutcomeStatus.DELIVERED  # never sent: safe to send
    assert outcomes[sent_not_recorded.key].status is OutcomeStatus.UNKNOWN  # maybe sent: a person decides
    assert len(stack.botx.received) == 1 and len(stack.bitrix.received) == 1
    assert {o.key for o in await deliverer.recover_stale()}.isdisjoint(outcomes)


async def test_variables_that_cannot_be_stored_are_a_dead_letter_not_a_crash(stack: Stack) -> None:
    circular: dict[str, Any] = {"ticket_number": "1", "agent_name": "A"}
    circular["message"] = circular
    outcome = await stack.deliverer().deliver(note(Channel.WEBHOOK, variables=circular))
    assert outcome.status is OutcomeStatus.DEAD_LETTER
    assert outcome.reason is not None and "cannot be stored" in outcome.reason
    assert stack.total_received() == 0


async def test_a_night_breach_reaches_on_call_only_and_an_unreachable_lead_is_a_dead_letter(stack: Stack) -> None:
    day = Schedule("Europe/Moscow", (Window(frozenset(range(5)), time(10), time(19)),))
    express = Address(*ADDRESSES[Channel.EXPRESS])
    people = [
        Person("agent-1", Role.AGENT, "ru", (Channel.EXPRESS,), {Channel.EXPRESS: express}, shift=day),
        Person("oncall-1", Role.ONCALL, "en", (Channel.EXPRESS, Channel.EMAIL), {Channel.EXPRESS: express}),
        Person("lead-1", Role.LEAD, "ru", (Channel.BITRIX24,), {}),
    ]
    variables = {"ticket_number": "B24-9", "ticket_title": "Slow", "target": "resolution", "due_at": "02:00",
                 "overdue": "1 h", "agent_name": "Anna"}  # fmt: skip
    night = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)  # 03:30 in Moscow
    for template in ("sla_breach_oncall", "sla_warning_oncall"):
        kind = Kind.SLA_BREACH if template.startswith("sla_breach") else Kind.SLA_WARNING
        notifications, _ = plan(event_id=f"ev-{template}-{night}", template=template, kind=kind, people=people,
                                variables={**variables, "remaining": "0"}, at=night)  # fmt: skip
        outcomes = {n.recipient: await stack.deliverer().deliver(n) for n in notifications}
        if kind is Kind.SLA_BREACH:
            assert outcomes["oncall-1"].status is OutcomeStatus.DELIVERED
            assert outcomes["lead-1"].status is OutcomeStatus.DEAD_LETTER
            assert "has no bitrix24 address" in (outcomes["lead-1"].reason or "")
            assert "agent-1" not in outcomes  # off shift at night
        else:
            assert set(outcomes) == {"lead-1"}  # on-call hears nothing but breaches at night
    assert [m.body.startswith("On-call: ticket B24-9") for m in stack.botx.received] == [True]
