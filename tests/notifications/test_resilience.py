"""Backoff, circuit breaker, token bucket and Retry-After parsing, on a fake clock."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ticketflow.notifications.adapters.channels.base import (
    PermanentFailure,
    TemporaryFailure,
    failure_for_status,
    parse_retry_after,
)
from ticketflow.notifications.adapters.resilience import BreakerState, CircuitBreaker, RetryPolicy, TokenBucket


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so mypy does not narrow the property across steps


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@given(st.integers(min_value=1, max_value=60), st.integers())
def test_full_jitter_stays_within_the_exponential_ceiling(failed: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    delay = policy.backoff(failed, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (failed - 1))


def test_full_jitter_spreads_delays() -> None:
    rng = random.Random(7)
    delays = {round(RetryPolicy().backoff(4, rng), 3) for _ in range(50)}
    assert len(delays) > 40  # not a fixed schedule: retries of many clients do not line up


def test_breaker_opens_after_threshold_then_half_opens_one_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, max_reset_timeout=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN and not breaker.allow()
    assert breaker.remaining_open() == 10.0
    clock.now += 10.0
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # exactly one probe
    breaker.record_failure()  # the probe failed: open for a full period again
    assert state(breaker) is BreakerState.OPEN and breaker.remaining_open() == 10.0
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_each_failed_probe_doubles_the_open_period_up_to_the_cap_and_a_success_starts_over() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=2.0, max_reset_timeout=10.0, clock=clock)
    breaker.record_failure()
    periods = []
    for _ in range(5):  # the destination stays down: every probe fails
        periods.append(breaker.remaining_open())
        clock.now += breaker.remaining_open() - 0.01
        assert not breaker.allow()  # still open just before the period ends
        clock.now += 0.01
        assert breaker.allow()
        breaker.record_failure()
    assert periods == [2.0, 4.0, 8.0, 10.0, 10.0]
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()  # back: the next trouble starts from the short period again
    breaker.record_failure()
    assert breaker.remaining_open() == 2.0


def test_breaker_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED


def test_permanent_failure_frees_a_half_open_probe_without_closing() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_neutral()
    assert state(breaker) is BreakerState.HALF_OPEN and breaker.allow()


async def test_token_bucket_allows_burst_then_paces_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(3):
        await bucket.acquire()
    assert clock.now == start  # the burst costs no waiting
    for _ in range(4):
        await bucket.acquire()
    assert abs((clock.now - start) - 2.0) < 1e-9  # four more at 2/s


async def test_token_bucket_drain_after_server_limit() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=5, clock=clock, sleep=clock.sleep)
    bucket.drain()
    assert not bucket.try_acquire()
    await bucket.acquire()
    assert clock.now - 1000.0 == 0.5


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


def test_status_classification() -> None:
    assert isinstance(failure_for_status(503, {"retry-after": "2"}), TemporaryFailure)
    assert failure_for_status(429, {"retry-after": "2"}).retry_after == 2.0  # type: ignore[attr-defined]
    for status in (400, 401, 403, 404, 422):
        assert isinstance(failure_for_status(status, {}), PermanentFailure)
    for status in (408, 500, 502, 504, 599):
        assert isinstance(failure_for_status(status, {}), TemporaryFailure)
