"""What "valid, but cannot be processed now" looks like, and how long to wait before trying again.

A record that meets one of `OUTAGES` is never dead-lettered: the patterns retry it in place a few
times, then give the batch back to Kafka uncommitted (seek back) and pause before it comes again,
longer after each failure, until the outage ends. `Waiting` tells readiness what is being waited for."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError

from ticketflow.eventstore.connection import retryable_errors
from ticketflow.eventstore.errors import ConcurrencyError, RetryableStoreError

OUTAGES: tuple[type[BaseException], ...] = (
    RetryableStoreError,
    ConcurrencyError,  # another writer got there first: reload and decide again
    asyncpg.InterfaceError,  # the pool's connection went away mid-call
    # A pooled connection the server ended (a `pg_ctl stop`: "terminating connection due to administrator
    # command") can answer the next call with "cannot switch to state N; another operation is in progress"
    # before it is seen closed: seen in tests/outage's real stop, where it dead-lettered a valid event.
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
    KafkaError,
    *retryable_errors(),
)


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.2
    cap_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (exponential, capped, jittered)."""
        return float(min(self.cap_s, self.first_s * 2.0 ** max(failures - 1, 0)) * random.uniform(0.5, 1.0))


class Waiting:
    """A consumer's outage, for readiness: since when it has been waiting, and on what."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.cause = ""
        self.failures = 0

    def failed(self, cause: BaseException) -> int:
        if self.since is None:
            self.since = time.monotonic()
        self.cause = repr(cause)
        self.failures += 1
        return self.failures

    def recovered(self) -> None:
        self.since, self.cause, self.failures = None, "", 0

    @property
    def waiting(self) -> bool:
        return self.since is not None

    def describe(self) -> str:
        if self.since is None:
            return "ok"
        return f"waiting {time.monotonic() - self.since:.0f}s: {self.cause}"
