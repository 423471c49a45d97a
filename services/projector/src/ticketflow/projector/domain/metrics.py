"""Desk metrics (pure): per ticket, what the daily figures are made of; the figures (p50/p90, attainment,
rates) are aggregated when asked, over any range of days.

- A ticket counts on the day it was opened, in the desk's time zone.
- Time to first response: opened -> the first agent reply; time to resolution: opened -> resolved (the
  latest resolution; a reopened ticket has none until resolved again). Both in business seconds of the
  ticket's calendar (its queue's track once routed, as the sla service counts).
- SLA attainment: targets met without a breach, of the targets met or breached.
- Reopen rate: reopened tickets, of the tickets resolved.
- Referred and duplicate tickets do not count (the support rules), nor refused requesters (no ticket to
  work on): `excluded` says which, and the figures skip them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Protocol

import msgspec

from ticketflow.contracts import sla_events as s
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope


class DeskTime(Protocol):
    def local_day(self, desk_id: str, at: datetime) -> date:
        """The date in the desk's time zone."""

    def business_seconds(self, desk_id: str, track_id: str, start: datetime, end: datetime) -> int | None:
        """Business seconds between two instants in the track's calendar (None: the desk has no such track)."""

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        """The track of a desk's queue, if the desk knows the queue."""


class MetricTicket(msgspec.Struct):
    ticket_id: uuid.UUID
    desk_id: str
    calendar_track: str
    day: date
    opened_at: datetime
    excluded: str | None = None
    first_response_s: int | None = None
    resolution_s: int | None = None
    resolved: bool = False
    reopened: bool = False
    breaches: int = 0
    targets_met: list[str] = msgspec.field(default_factory=list)
    targets_breached: list[str] = msgspec.field(default_factory=list)
    targets_attained: int = 0  # met without a breach
    targets_missed: int = 0  # breached


def apply(row: MetricTicket | None, envelope: EventEnvelope, desks: DeskTime) -> MetricTicket | None:
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        return row or MetricTicket(
            event.ticket_id, event.desk_id, event.track_id, desks.local_day(event.desk_id, event.opened_at),
            event.opened_at,
        )  # fmt: skip
    if row is None:
        return None
    at = envelope.occurred_at
    match event:
        case t.AgentReplied() if row.first_response_s is None:
            row.first_response_s = desks.business_seconds(row.desk_id, row.calendar_track, row.opened_at, at)
        case t.TicketResolved():
            row.resolved = True
            row.resolution_s = desks.business_seconds(row.desk_id, row.calendar_track, row.opened_at, at)
        case t.TicketReopened():
            row.reopened, row.resolved, row.resolution_s = True, False, None
        case t.TicketRouted():
            row.calendar_track = desks.queue_track(row.desk_id, event.queue_id) or row.calendar_track
        case t.TicketReferred():
            row.excluded = "referred"
        case t.TicketRefused():
            row.excluded = "refused"
        case t.DuplicateSuspected() | t.TicketMerged():
            row.excluded = "duplicate"
        case t.MergeUndone():
            row.excluded = None
        case s.SlaBreached():
            row.breaches += 1
            if event.target not in row.targets_breached:
                row.targets_breached.append(event.target)
        case s.SlaMet():
            if event.target not in row.targets_met:
                row.targets_met.append(event.target)
    row.targets_attained = len(set(row.targets_met) - set(row.targets_breached))
    row.targets_missed = len(row.targets_breached)
    return row
