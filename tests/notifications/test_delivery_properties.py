"""Any sequence of platform answers, any number of duplicate deliveries, concurrent or not:
the person gets the message at most once, and the ledger and outcomes say truthfully whether."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fakes.asgi import Faults
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketflow.notifications.adapters.ledger import PgLedger
from ticketflow.notifications.domain.model import Channel, OutcomeStatus

from .platform_stack import Stack, note

pytestmark = pytest.mark.pg

MAX_ATTEMPTS = 3
TEMPORARY = {"server_error", "rate_limited"}
PERMANENT = {"garbage", "rejected"}


def arm(stack: Stack, channel: Channel, answers: list[str]) -> None:
    if channel is Channel.BITRIX24:
        stack.bitrix.faults = Faults()
        for answer in answers:
            if answer == "server_error":
                stack.bitrix.fail_next(500)
            elif answer == "rate_limited":
                stack.bitrix.query_limit_next()
            elif answer == "garbage":
                stack.bitrix.fail_next(200, body=b"<html>gateway</html>")
            elif answer == "rejected":
                stack.bitrix.fail_next(400, body={"error": "DIALOG_ID_EMPTY"})
            else:
                break  # "ok": the real answer; later ones are never reached
    else:
        stack.hooks.faults = Faults()
        for answer in answers:
            if answer == "server_error":
                stack.hooks.fail_next(503)
            elif answer == "rate_limited":
                stack.hooks.fail_next(429, retry_after="0")
            elif answer in PERMANENT:
                stack.hooks.fail_next(422)
            else:
                break


def expected_status(answers: list[str]) -> str:
    """The model: try up to MAX_ATTEMPTS times; temporary answers retry, permanent ones stop."""
    for answer in answers[:MAX_ATTEMPTS]:
        if answer in PERMANENT:
            return "dead"
        if answer not in TEMPORARY:
            return "delivered"
    return "dead" if len(answers) >= MAX_ATTEMPTS else "delivered"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    answers=st.lists(st.sampled_from(["ok", *sorted(TEMPORARY), *sorted(PERMANENT)]), max_size=5),
    copies=st.integers(min_value=1, max_value=4),
    concurrent=st.booleans(),
    channel=st.sampled_from([Channel.BITRIX24, Channel.WEBHOOK]),
)
async def test_at_most_once_and_truthful(
    stack: Stack, answers: list[str], copies: int, concurrent: bool, channel: Channel
) -> None:
    arm(stack, channel, answers)
    marker = uuid.uuid4().hex
    notification = note(channel, variables={"ticket_number": "7", "agent_name": "A", "message": marker})
    workers = [stack.deliverer(max_attempts=MAX_ATTEMPTS) for _ in range(copies)]
    if concurrent:
        outcomes = list(await asyncio.gather(*(w.deliver(notification) for w in workers)))
    else:
        outcomes = [await w.deliver(notification) for w in workers]

    if channel is Channel.BITRIX24:
        received = sum(marker in m.message for m in stack.bitrix.received)
    else:
        received = sum(h.idempotency_key == notification.key for h in stack.hooks.received)
    row = await PgLedger(stack.pool).row(notification.key)
    assert row is not None
    assert received <= 1
    assert row["status"] == expected_status(answers)
    assert (row["status"] == "delivered") == (received == 1)
    statuses = [o.status for o in outcomes]
    assert statuses.count(OutcomeStatus.DELIVERED) == received
    assert all(s is not OutcomeStatus.DELIVERED or received for s in statuses)
    if row["status"] == "dead":
        assert OutcomeStatus.DEAD_LETTER in statuses and row["last_error"]
