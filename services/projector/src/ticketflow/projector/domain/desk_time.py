"""Desk time from the desk configuration (pure once loaded): local days, business seconds in a track's
calendar, which track a queue belongs to. An id the configuration does not know gives None (UTC days):
a read model never fails on an event of a desk that was configured once and is no more."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ticketflow.deskconfig import DeskRegistry


class RegistryDeskTime:
    def __init__(self, desks: DeskRegistry) -> None:
        self.desks = desks
        self._zones = {desk_id: ZoneInfo(desk.timezone) for desk_id, desk in desks.desks.items()}
        self._queues = {
            (desk_id, queue.id): queue.track for desk_id, desk in desks.desks.items() for queue in desk.queues
        }

    def local_day(self, desk_id: str, at: datetime) -> date:
        return at.astimezone(self._zones.get(desk_id, UTC)).date()

    def business_seconds(self, desk_id: str, track_id: str, start: datetime, end: datetime) -> int | None:
        try:
            calendar = self.desks.calendar(desk_id, track_id)
        except KeyError:
            return None
        return max(0, calendar.business_seconds_between(start, end)) if end > start else 0

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        return self._queues.get((desk_id, queue_id))
