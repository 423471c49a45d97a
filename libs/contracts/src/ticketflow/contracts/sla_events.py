"""SLA clock events (stream `sla-<ticket id>`), written by the sla service only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

import msgspec

from ticketflow.contracts.values import SlaTarget


class _SlaEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", gc=False):
    # gc=False: scalars, datetimes and tuples of strings only (see contracts.envelope)
    schema_version: ClassVar[int] = 1
    ticket_id: uuid.UUID
    target: SlaTarget


class SlaClockStarted(_SlaEvent, tag="SlaClockStarted", frozen=True):
    policy_id: str
    target_seconds: int
    started_at: datetime
    deadline: datetime


class SlaClockPaused(_SlaEvent, tag="SlaClockPaused", frozen=True):
    paused_at: datetime
    elapsed_seconds: int


class SlaClockResumed(_SlaEvent, tag="SlaClockResumed", frozen=True):
    resumed_at: datetime
    deadline: datetime


class SlaClockCancelled(_SlaEvent, tag="SlaClockCancelled", frozen=True):
    reason: str


class SlaRecalculated(_SlaEvent, tag="SlaRecalculated", frozen=True):
    """A priority, policy or calendar change; the rule is recorded so a replay gives the same deadline."""

    rule: Literal["keep_elapsed", "restart"]
    reason: str
    old_deadline: datetime
    new_deadline: datetime
    target_seconds: int
    # Set when the calendar changed with it (a track change): the business seconds used up to the
    # recalculation, counted in the old calendar; the clock counts in the new one from then on.
    # None (older events, same calendar): the elapsed time is not rebased.
    elapsed_seconds: int | None = None


class SlaWarning(_SlaEvent, tag="SlaWarning", frozen=True):
    level: float
    deadline: datetime
    fired_at: datetime
    escalate_to: tuple[str, ...] = ()


class SlaBreached(_SlaEvent, tag="SlaBreached", frozen=True):
    deadline: datetime
    fired_at: datetime
    escalate_to: tuple[str, ...] = ()


class SlaMet(_SlaEvent, tag="SlaMet", frozen=True):
    met_at: datetime
    elapsed_seconds: int


SlaEvent = (
    SlaClockStarted
    | SlaClockPaused
    | SlaClockResumed
    | SlaClockCancelled
    | SlaRecalculated
    | SlaWarning
    | SlaBreached
    | SlaMet
)
