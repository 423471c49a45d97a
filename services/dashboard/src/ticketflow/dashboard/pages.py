"""Server-side rendering: the Jinja templates (autoescaped) with the page's language and display helpers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ticketflow.dashboard.app import PERIODS
from ticketflow.dashboard.domain import charts, texts, views
from ticketflow.dashboard.domain.actions import OUTCOMES, PRIORITIES, offered
from ticketflow.deskconfig import DeskRegistry


class Pages:
    def __init__(self, desks: DeskRegistry) -> None:
        self.desks = desks
        self.env = Environment(
            loader=PackageLoader("ticketflow.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, template: str, lang: str, now: datetime | None = None, **context: Any) -> str:
        """`template` in `lang`, with the time left counted as of `now` (default: the current time)."""
        now = now or datetime.now(UTC)

        def left(desk_id: str, queue_id: str | None, track_id: str | None, deadline: str | None) -> str:
            seconds = views.business_left(self._calendar(desk_id, queue_id, track_id), deadline, now)
            if seconds is None:
                return "—"
            shown = views.duration(seconds, lang)
            return shown if seconds >= 0 else texts.text(lang, "overdue_by", duration=shown)

        def ticking(desk_id: str, queue_id: str | None, track_id: str | None, deadline: str | None) -> Markup:
            """The attributes that let static/countdown.js count a running clock down every second."""
            found = views.countdown(self._calendar(desk_id, queue_id, track_id), deadline, now)
            if found is None:
                return Markup("")
            return Markup(' data-countdown data-reference="{}" data-left="{}" data-open="{}" data-overdue="{}"').format(
                found.reference,
                found.left,
                json.dumps(found.open, separators=(",", ":")),
                texts.text(lang, "overdue_by", duration="{duration}"),
            )

        helpers = {
            "lang": lang,
            "t": lambda key, **values: texts.text(lang, key, **values),
            "n": lambda value: texts.name(lang, value),
            "event": lambda event_type: texts.event_name(lang, event_type),
            "check": lambda check: texts.check_name(lang, check),
            "age": lambda since: views.age(since, now, lang),
            "duration": lambda seconds: views.duration(seconds, lang),
            "left": left,
            "ticking": ticking,
            "server_now": int(now.timestamp()),
            "preflight": views.preflight_checks,
            "chart": charts.bar_chart,
            "daily": charts.daily,
            "hourly": lambda history, desk_id, series=None: charts.hourly(history, self._zone(desk_id), series),
            "hour_ticks": charts.every_nth_hour,
            "histogram": lambda responses: views.buckets(responses, lang),
            "bucket_ticks": lambda responses: views.bucket_ticks(responses, lang),
            "periods": PERIODS,
            "new_id": lambda: str(uuid.uuid4()),
            "offered": lambda ticket: [(a.name, a.fields) for a in offered(ticket["status"], ticket.get("category"))],
            "priorities": PRIORITIES,
            "outcomes": OUTCOMES,
        }
        return self.env.get_template(template).render(**helpers, **context)

    def _zone(self, desk_id: str) -> tzinfo:
        desk = self.desks.desks.get(desk_id)
        return ZoneInfo(desk.timezone) if desk else UTC

    def _calendar(self, desk_id: str, queue_id: str | None, track_id: str | None) -> Any:
        """The calendar a clock counts in, as the sla service counts: its queue's track once routed, else the
        ticket's track (None: not configured)."""
        desk = self.desks.desks.get(desk_id)
        if desk is None:
            return None
        track = next((q.track for q in desk.queues if q.id == queue_id), None) or track_id
        try:
            return self.desks.calendar(desk_id, track) if track else None
        except KeyError:
            return None
