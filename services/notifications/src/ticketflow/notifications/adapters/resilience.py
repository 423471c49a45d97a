"""Backoff with full jitter, a circuit breaker, a token bucket and per-destination slots: small,
clock-injected, testable."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After gives up now; redrive later

    def backoff(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Full jitter (AWS architecture blog): uniform(0, min(cap, base * 2**(n-1)))."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, failed_attempts - 1)))
        return (rng or random).uniform(0.0, ceiling)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Per destination. Opens after `failure_threshold` consecutive temporary failures; after
    `reset_timeout` lets one probe through (half-open); the probe's result closes or re-opens it.

    Each failed probe doubles the open period, up to `max_reset_timeout`: a destination down for a
    few seconds is probed again within seconds (with one fixed 30 s period, a 5 s outage held every
    delivery for about 30 s), and one down for long is not probed more than once per
    `max_reset_timeout`. A success starts over from `reset_timeout`."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 2.0,
        max_reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
    ):
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.max_reset_timeout = max(max_reset_timeout, reset_timeout)
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._open_for = reset_timeout
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._open_for:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def idle(self) -> bool:
        """Closed with no failures counted: it holds no state worth keeping."""
        return self._opened_at is None and self._failures == 0 and not self._probe_in_flight

    def remaining_open(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._open_for - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Ask before each call; a half-open breaker admits exactly one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._open_for = self.reset_timeout
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._probe_in_flight = False
        if self._opened_at is not None:  # a failed probe re-opens for twice the period (capped)
            self._open_for = min(self.max_reset_timeout, self._open_for * 2)
            self._opened_at = self._clock()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    def record_neutral(self) -> None:
        """A permanent failure says nothing about the destination's health; free the probe slot."""
        self._probe_in_flight = False


class TokenBucket:
    """`rate` tokens per second, up to `burst` saved. Waiters are served in arrival order."""

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def acquire(self) -> None:
        async with self._lock:
            while not self.try_acquire():
                await self._sleep((1.0 - self._tokens) / self.rate)

    def drain(self) -> None:
        """The server said we are over its limit: our idea of the bucket was too generous."""
        self._refill()
        self._tokens = 0.0


@dataclass
class _Slot:
    gate: asyncio.Semaphore
    users: int = 0  # holders and waiters


@dataclass
class DestinationSlots(Generic[K]):
    """At most `limit` deliveries at once per destination; the others wait their turn (back-pressure).

    A delivery that waits here holds its Kafka batch, so nothing more is fetched for that consumer until
    the destination's backlog drains: a busy destination slows consumption down, it never turns valid
    messages into dead letters. Memory follows use: a destination nobody holds or waits for is forgotten."""

    limit: int
    _slots: dict[K, _Slot] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("limit must be >= 1")

    @contextlib.asynccontextmanager
    async def hold(self, destination: K) -> AsyncIterator[None]:
        slot = self._slots.get(destination)
        if slot is None:
            slot = self._slots[destination] = _Slot(asyncio.Semaphore(self.limit))
        slot.users += 1
        try:
            async with slot.gate:
                yield
        finally:
            slot.users -= 1
            if not slot.users:
                del self._slots[destination]

    def users(self, destination: K) -> int:
        """Deliveries holding or waiting for one of the destination's slots."""
        slot = self._slots.get(destination)
        return slot.users if slot is not None else 0

    def busy(self) -> dict[K, int]:
        """Destinations where deliveries wait (more users than slots): how many wait on each."""
        return {d: s.users - self.limit for d, s in self._slots.items() if s.users > self.limit}

    def destinations(self) -> set[K]:
        """Destinations with deliveries on them (holding or waiting)."""
        return set(self._slots)
