"""At risk within N business minutes (pure once the desks are loaded): a running clock is at risk when its
deadline comes before "now + N business minutes" in the clock's calendar, so minutes when the desk is
closed do not count (a clock due Monday 10:30 is at risk within 60 business minutes on Friday at 18:30,
for a desk open 10:00-19:00)."""

from __future__ import annotations

from datetime import datetime

from ticketflow.deskconfig import DeskRegistry


def cutoffs(desks: DeskRegistry, desk_id: str, now: datetime, within_minutes: int) -> dict[str, datetime]:
    """For each track of the desk (the calendar a clock counts in): the latest deadline that is at risk."""
    desk = desks.desk(desk_id)
    return {
        track.id: desks.calendar(desk_id, track.id).add_business_seconds(now, within_minutes * 60)
        for track in desk.tracks
    }
