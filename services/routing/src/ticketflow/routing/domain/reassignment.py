"""When an assignee must have answered: `reassign_after_minutes` of the queue's business time.

Business time comes from `ticketflow.calendar`; routing only needs the one operation below, so it
depends on this protocol (a test can give a plain clock) rather than on the calendar class.
"""

from __future__ import annotations

from typing import Protocol

from ticketflow.routing.domain.config import QueueConfig


class BusinessClock(Protocol):
    def add_business_seconds_ts(self, start: int, seconds: int) -> int: ...


class WallClock:
    """Every second counts: for queues without a calendar."""

    def add_business_seconds_ts(self, start: int, seconds: int) -> int:
        return start + seconds


WALL_CLOCK = WallClock()


def reply_deadline(queue: QueueConfig, clock: BusinessClock | None, assigned_ts: int) -> int | None:
    """The epoch second after which an unanswered assignment is taken away, or None (never)."""
    if queue.reassign_after_minutes is None or queue.strategy == "none":
        return None
    return (clock or WALL_CLOCK).add_business_seconds_ts(assigned_ts, queue.reassign_after_minutes * 60)


def no_answer_reason(queue: QueueConfig) -> str:
    minutes = queue.reassign_after_minutes
    unit = "business minutes" if queue.calendar is not None else "minutes"
    return f"no answer within {minutes} {unit}"
