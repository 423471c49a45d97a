"""Server-side rendering: the Jinja templates (autoescaped) with the page's language and display helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

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

    def render(self, template: str, lang: str, **context: Any) -> str:
        now = datetime.now(UTC)

        def left(desk_id: str, queue_id: str | None, track_id: str | None, deadline: str | None) -> str:
            seconds = views.business_left(self._calendar(desk_id, queue_id, track_id), deadline, now)
            if seconds is None:
                return "—"
            shown = views.duration(seconds, lang)
            return shown if seconds >= 0 else texts.text(lang, "overdue_by", duration=shown)

        helpers = {
            "lang": lang,
            "t": lambda key, **values: texts.text(lang, key, **values),
            "n": lambda value: texts.name(lang, value),
            "age": lambda since: views.age(since, now, lang),
            "duration": lambda seconds: views.duration(seconds, lang),
            "left": left,
            "preflight": views.preflight_checks,
            "chart": lambda days, field, scale=1.0, top=None: charts.bar_chart(charts.daily(days, field, scale), top),
            "new_id": lambda: str(uuid.uuid4()),
            "offered": lambda ticket: [(a.name, a.fields) for a in offered(ticket["status"], ticket.get("category"))],
            "priorities": PRIORITIES,
            "outcomes": OUTCOMES,
        }
        return self.env.get_template(template).render(**helpers, **context)

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
