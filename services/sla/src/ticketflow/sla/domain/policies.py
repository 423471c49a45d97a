"""What the SLA decider needs from desk configuration (the port): a resolved `Policy` and a `Calendar`
per ticket, through the `Rules` protocol (pure lookups). Tests hand it an always-open calendar with
second-sized targets; the service hands it `adapters.desk_rules.DeskRules` over the desk registry."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from ticketflow.contracts.values import SlaTarget

Recalculation = Literal["keep_elapsed", "restart"]
TARGETS: tuple[SlaTarget, ...] = ("first_response", "next_response", "resolution")


class RulesError(ValueError):
    """The input names something configuration does not have (unknown desk or track, a calendar
    without working time): the event is dead-lettered, no clock starts."""


class Calendar(Protocol):
    """The epoch-second half of `ticketflow.calendar.BusinessCalendar` that SLA maths uses."""

    def is_open_ts(self, ts: int) -> bool: ...

    def next_opening_ts(self, ts: int) -> int: ...

    def business_seconds_between_ts(self, a: int, b: int) -> int: ...

    def consumed_at_ts(self, start: int, target_seconds: int, fraction: float, elapsed: int = 0) -> int: ...


class Policy(msgspec.Struct, frozen=True, gc=False):
    """A desk/track/priority policy with targets in business seconds (None: no such clock)."""

    policy_id: str
    first_response: int | None
    next_response: int | None
    resolution: int | None
    warnings: tuple[float, ...] = (0.5, 0.75, 0.9)
    recalculation: Recalculation = "keep_elapsed"
    notify: tuple[str, ...] = ()
    escalate_to: tuple[str, ...] = ()

    def target_seconds(self, target: SlaTarget) -> int | None:
        value: int | None = getattr(self, target)
        return value


def target_of(policy: Policy, target: SlaTarget) -> int | None:
    """The target a clock started now would get (`Run.start`: never below zero); None: no such clock."""
    seconds = policy.target_seconds(target)
    return None if seconds is None else max(seconds, 0)


class Rules(Protocol):
    def has_sla(self, desk_id: str, track_id: str) -> bool:
        """False for tracks without SLA; raises RulesError for an unknown desk or track."""

    def policy(self, desk_id: str, track_id: str, priority: str) -> Policy | None: ...

    def calendar(self, desk_id: str, track_id: str) -> Calendar:
        """Raises RulesError when the calendar cannot be built (e.g. no working time at all)."""

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        """The track a queue serves (routing to it moves the ticket there); None for an unknown queue."""

    def calendar_version(self, desk_id: str, track_id: str) -> str:
        """Identifies the configuration of the track's calendar (hours, holidays, overrides, time zone):
        another value after a desk configuration change means the clocks' calendar changed."""

    def fingerprint(self) -> str:
        """Identifies the whole configuration decisions depend on (policies, calendars, queues): a
        partition checkpointed under the same fingerprint needs no per-ticket recheck at restore."""

    def calendar_of_version(self, version: str) -> Calendar | None:
        """The calendar a recorded `calendar_version` names, also after the configuration changed
        (time used before the change counts in it); None when that version is unknown."""
