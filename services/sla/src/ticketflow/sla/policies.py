"""What the SLA domain needs from desk configuration: a resolved policy and a calendar per ticket.

The domain sees only the `Rules` protocol (pure lookups), so tests can hand it an always-open
calendar with second-sized targets; `DeskRules` adapts `ticketflow.deskconfig`'s registry.
"""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol

import msgspec

from ticketflow.contracts.values import SlaTarget
from ticketflow.deskconfig import DeskRegistry

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


class DeskRules:
    """`Rules` over the desk registry, with per-(desk, track, priority) policies cached."""

    def __init__(self, registry: DeskRegistry) -> None:
        self.registry = registry
        self._policies: dict[tuple[str, str, str], Policy | None] = {}
        self._calendars: dict[tuple[str, str], Calendar] = {}
        self._queues: dict[tuple[str, str], str | None] = {}
        self._versions: dict[tuple[str, str], str] = {}

    def has_sla(self, desk_id: str, track_id: str) -> bool:
        try:
            return self.registry.track(desk_id, track_id).sla
        except KeyError as error:
            raise RulesError(f"unknown desk or track {desk_id!r}/{track_id!r}: {error}") from None

    def policy(self, desk_id: str, track_id: str, priority: str) -> Policy | None:
        key = (desk_id, track_id, priority)
        if key not in self._policies:
            self._policies[key] = self._resolve(desk_id, track_id, priority)
        return self._policies[key]

    def calendar(self, desk_id: str, track_id: str) -> Calendar:
        cached = self._calendars.get((desk_id, track_id))
        if cached is None:
            try:
                cached = self.registry.calendar(desk_id, track_id)
            except (KeyError, ValueError) as error:  # CalendarError is a ValueError
                raise RulesError(f"no usable calendar for {desk_id!r}/{track_id!r}: {error}") from None
            self._calendars[(desk_id, track_id)] = cached
        return cached

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        key = (desk_id, queue_id)
        if key not in self._queues:
            try:
                queues = self.registry.desk(desk_id).queues
            except KeyError:
                return None
            self._queues[key] = next((q.track for q in queues if q.id == queue_id), None)
        return self._queues[key]

    def calendar_version(self, desk_id: str, track_id: str) -> str:
        key = (desk_id, track_id)
        version = self._versions.get(key)
        if version is None:
            try:
                desk = self.registry.desk(desk_id)
                name = self.registry.track(desk_id, track_id).calendar
            except KeyError as error:
                raise RulesError(f"unknown desk or track {desk_id!r}/{track_id!r}: {error}") from None
            config = next((c for c in desk.calendars if c.id == name), None)
            text = msgspec.json.encode([desk.timezone, config])
            version = self._versions[key] = f"{name}@{hashlib.sha1(text).hexdigest()[:12]}"
        return version

    def _resolve(self, desk_id: str, track_id: str, priority: str) -> Policy | None:
        if not self.has_sla(desk_id, track_id):
            return None
        config = self.registry.sla_policy(desk_id, track_id, priority)  # type: ignore[arg-type]
        if config is None:
            return None

        def seconds(minutes: int | None) -> int | None:
            return None if minutes is None else minutes * 60

        escalation = () if config.escalation_queue is None else (f"queue:{config.escalation_queue}",)
        return Policy(
            policy_id=f"{desk_id}/{track_id}/{priority}",
            first_response=seconds(config.first_response_minutes),
            next_response=seconds(config.next_response_minutes),
            resolution=seconds(config.resolution_minutes),
            warnings=tuple(config.warnings),
            recalculation=config.recalculation,
            notify=tuple(config.notify),
            escalate_to=escalation,
        )
