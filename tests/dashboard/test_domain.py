"""The dashboard's pure parts: actions to commands (the actor is the token's agent, never the form's), which
forms a ticket offers, the texts in both languages, time left in business time, the live stream's rule
(send only what changed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts import commands as c
from ticketflow.contracts.envelope import EventEnvelope, EventMetadata
from ticketflow.contracts.notification_events import NotificationEvent
from ticketflow.contracts.sla_events import SlaEvent
from ticketflow.contracts.ticket_events import AgentReplied, TicketEvent
from ticketflow.dashboard.app import Dashboard
from ticketflow.dashboard.domain import charts, texts, views
from ticketflow.dashboard.domain.actions import (
    ACTIONS,
    ActionRefused,
    applied_position,
    command_for,
    command_id,
    offered,
)
from ticketflow.dashboard.pages import Pages
from ticketflow.deskconfig import load_desks

T = uuid.UUID("00000000-0000-4000-8000-000000000001")
CID = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


def form(**fields: str) -> dict[str, str]:
    return {"command_id": str(CID), **fields}


def test_each_action_is_its_lifecycle_command_with_the_tokens_agent_as_actor() -> None:
    sneaky = {"actor": "someone-else", "agent_id": "someone-else"}  # a browser field is never the actor
    assert command_for("reply", T, "anna", form(text=" hi ", **sneaky)) == c.ReplyAsAgent(T, "anna", str(CID), "hi")
    assert command_for("request_info", T, "anna", form(text="logs?")) == c.WaitForCustomer(T, "logs?", "anna")
    assert command_for("priority", T, "anna", form(priority="high")) == c.ChangePriority(T, "high", "anna")
    assert command_for("resolve", T, "anna", form(text="")) == c.ResolveTicket(T, "", "anna")
    assert command_for("reopen", T, "anna", form(text="again")) == c.ReopenTicket(T, "again", "anna")
    assert command_for("refer", T, "anna", form(text="partners"), "custom_development") == c.ReferTicket(
        T, "custom_development", "partners", "anna"
    )
    assert command_for("undo_merge", T, "anna", form(text="not the same")) == c.UndoMerge(T, "not the same", "anna")
    assert command_for("feature_outcome", T, "anna", form(outcome="planned")) == c.SetFeatureRequestOutcome(
        T, "planned", "anna", ""
    )


@pytest.mark.parametrize(
    ("action", "fields", "key"),
    [
        ("reply", {"text": "   "}, "text_required"),
        ("reply", {"text": "x" * 4001}, "text_too_long"),
        ("reopen", {}, "text_required"),
        ("priority", {"priority": "whenever"}, "bad_priority"),
        ("feature_outcome", {"outcome": "maybe"}, "bad_outcome"),
        ("feature_outcome", {"outcome": "declined", "text": ""}, "text_required"),
        ("delete", {}, "unknown_action"),
    ],
)
def test_a_bad_form_is_refused_with_the_text_that_says_why(action: str, fields: dict[str, str], key: str) -> None:
    with pytest.raises(ActionRefused) as refused:
        command_for(action, T, "anna", form(**fields))
    assert refused.value.key == key
    assert texts.text("ru", key, **refused.value.values) != texts.text("en", key, **refused.value.values)


def test_a_form_without_a_command_id_is_refused() -> None:
    for bad in ({}, {"command_id": "not-a-uuid"}):
        with pytest.raises(ActionRefused, match="bad_command_id"):
            command_id(bad)


def test_the_forms_offered_follow_the_status_and_a_feature_requests_outcome_only_for_one() -> None:
    def names(status: str, category: str | None = None) -> set[str]:
        return {a.name for a in offered(status, category)}

    assert names("routed") == {"reply", "priority", "resolve", "refer"}
    assert names("in_progress") == {"reply", "request_info", "priority", "resolve", "refer"}
    assert names("in_progress", "feature_request") == names("in_progress") | {"feature_outcome"}
    assert names("resolved") == {"reopen"}
    assert names("merged") == {"undo_merge"}
    assert names("closed") == set()
    assert set(ACTIONS) == {f.removeprefix("act_") for f in texts.TEXTS["en"] if f.startswith("act_")}


def test_every_text_exists_in_both_languages_and_the_language_is_chosen_sensibly() -> None:
    assert texts.missing() == {}
    assert texts.language("en", "ru-RU") == "en"
    assert texts.language(None, "de-DE,en;q=0.8,ru;q=0.5") == "en"
    assert texts.language("fr", None) == "ru"


def test_every_timeline_event_and_every_preflight_check_has_a_name_in_both_languages() -> None:
    """Tests may look at preflight (the dashboard may not import it): a check added there without a name here
    fails this test, never shows up untranslated."""
    from ticketflow.preflight.domain.checks import CheckName
    from ticketflow.preflight.domain.outcome import FEATURE_CHECK, SCOPE_CHECK

    events = [e.__name__ for union in (TicketEvent, SlaEvent, NotificationEvent) for e in union.__args__]  # type: ignore[attr-defined]
    checks = [*(name.value for name in CheckName), SCOPE_CHECK, FEATURE_CHECK]
    for lang in texts.LANGUAGES:
        assert [e for e in events if texts.event_name(lang, e) == e] == []
        assert [c for c in checks if texts.check_name(lang, c) == c] == []
    assert set(texts.EVENTS["en"]) == set(events) and set(texts.CHECKS["en"]) == set(checks)  # nothing stale
    assert texts.event_name("ru", "SomethingNew") == "SomethingNew"


def test_time_left_counts_business_time_in_the_clocks_calendar() -> None:
    calendar = load_desks(None).calendar("express", "technical-standard")
    friday_evening = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)  # 22:00 Moscow, Friday: closed until Monday
    due = calendar.add_business_seconds(friday_evening, 3600)  # an hour of business time: Monday morning
    assert due - friday_evening > timedelta(days=2)
    assert views.business_left(calendar, due.isoformat(), friday_evening) == 3600
    assert views.business_left(calendar, friday_evening.isoformat(), due) == -3600
    assert views.business_left(None, due.isoformat(), friday_evening) is None
    assert views.duration(3600 + 5 * 60, "ru") == "1 ч 5 мин" and views.duration(86400 * 2 + 7200, "en") == "2 d 2 h"


def test_a_countdown_gives_the_time_left_at_the_start_of_the_day_and_the_open_intervals_after_it() -> None:
    calendar = load_desks(None).calendar("bitrix24-box", "box")  # Monday to Friday, 10:00-19:00 Moscow
    friday = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 18:30 Moscow: half an hour before closing
    due = calendar.add_business_seconds(friday, 3600)  # Monday 10:30 Moscow
    found = views.countdown(calendar, due.isoformat(), friday)
    assert found is not None
    day = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())
    assert found.reference == day
    # Friday 10:00-19:00 Moscow is 07:00-16:00 UTC; Saturday is closed; the window is two days.
    assert found.open == [(day + 7 * 3600, day + 16 * 3600)]
    assert found.left == 9 * 3600 + 1800  # all of Friday's nine hours, and Monday's first half hour
    now = int(friday.timestamp())
    passed = sum(max(0, min(now, b) - max(found.reference, a)) for a, b in found.open)
    assert found.left - passed == 3600  # what the browser computes at 18:30 on Friday
    overdue = views.countdown(calendar, (friday - timedelta(hours=1)).isoformat(), friday)
    assert overdue is not None and overdue.left == 7 * 3600 + 1800  # due 17:30 Moscow: 7.5 h after 10:00
    assert views.countdown(None, due.isoformat(), friday) is None and views.countdown(calendar, None, friday) is None


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 10_000)), max_size=20))
def test_the_position_of_a_command_is_its_last_caused_event(events: list[tuple[bool, int]]) -> None:
    history = [
        EventEnvelope(
            uuid.uuid4(),
            "ticket-x",
            i + 1,
            datetime.now(UTC),
            1,
            AgentReplied(T, "anna", "m", "t"),
            EventMetadata(causation_id=CID if caused else uuid.uuid4()),
            position,
        )
        for i, (caused, position) in enumerate(events)
    ]
    caused = [position for is_caused, position in events if is_caused]
    assert applied_position(history, CID) == (max(caused) if caused else None)


async def test_the_live_stream_sends_a_fragment_only_when_it_changed() -> None:
    shown = iter([(5, "a"), (6, "a"), (7, "b"), (8, "b"), (9, "c")])
    asked: list[tuple[int | None, int | None]] = []

    async def render(min_position: int | None, wait_ms: int | None) -> tuple[int, str]:
        asked.append((min_position, wait_ms))
        return next(shown)

    dashboard = Dashboard(None, None, None, 1.0)  # type: ignore[arg-type]
    sent = []
    async for fragment in dashboard.changes(render, 700):
        sent.append(fragment)
        if fragment == "c":
            break
    assert sent == ["a", "b", "c"]
    assert asked == [(None, None), (6, 700), (7, 700), (8, 700), (9, 700)]


def test_a_bar_chart_scales_to_its_top_and_leaves_days_without_a_figure_empty() -> None:
    days: list[dict[str, object]] = [
        {"day": "2026-12-01", "sla_attainment_percent": 50.0},
        {"day": "2026-12-02", "sla_attainment_percent": None},
    ]
    chart = charts.bar_chart(charts.daily(days, "sla_attainment_percent"), top=100.0)
    first, second = chart.bars
    assert (first.label, first.value, first.height, first.y) == (
        "2026-12-01",
        50.0,
        charts.HEIGHT / 2,
        charts.HEIGHT / 2,
    )
    assert (second.value, second.height) == (None, 0.0)
    assert charts.daily([{"day": "d", "first_response_p90_s": 600}], "first_response_p90_s", 1 / 60) == [("d", 10.0)]


def test_hourly_and_histogram_points_are_labelled_in_the_desks_time_and_the_pages_language() -> None:
    history = {"hours": ["2026-12-01T20:00:00Z", "2026-12-01T21:00:00Z"], "total": {"backlog": [3, 1]}}
    points = charts.hourly(history, ZoneInfo("Europe/Moscow"))
    assert points == [("01.12 23:00", 3.0), ("02.12 00:00", 1.0)]
    assert charts.every_nth_hour(points * 4, 3) == {7: "00:00", 4: "23:00", 1: "00:00"}
    chart = charts.bar_chart(points, ticks={1: "00:00"})
    assert [(t.x, t.label) for t in chart.ticks] == [(chart.bars[1].x + chart.bars[1].width / 2, "00:00")]
    buckets = {"buckets": [{"from_seconds": 0, "to_seconds": 300, "tickets": 1},
                           {"from_seconds": 1800, "to_seconds": 3600, "tickets": 4},
                           {"from_seconds": 144_000, "to_seconds": None, "tickets": 0}]}  # fmt: skip
    assert views.buckets(buckets, "ru") == [("< 5 мин", 1.0), ("30 мин–1 ч", 4.0), ("≥ 40 ч", 0.0)]
    assert views.buckets(buckets, "en")[1] == ("30 min–1 h", 4.0)
    assert views.bucket_ticks(buckets, "en") == {0: "< 5 min", 1: "< 1 h", 2: "≥ 40 h"}
    edge = charts.bar_chart([("a", 1.0)] * 48, ticks={47: "23:00"}).ticks[0]
    assert edge.x == charts.WIDTH - charts.TICK_MARGIN  # not cut by the chart's edge


def test_the_lead_page_renders_every_part_in_both_languages_and_escapes_what_customers_wrote() -> None:
    now = datetime.now(UTC).isoformat()
    clock = {"ticket_id": str(T), "number": "TF-1", "target": "resolution", "priority": "high",
             "queue_id": "technical-l2", "assignee": None, "deadline": now}  # fmt: skip
    desk = {
        "desk_id": "express",
        "backlog": {
            "queues": [
                {
                    "queue_id": "client-l1",
                    "priority": "normal",
                    "tickets": 2,
                    "unassigned": 1,
                    "oldest_opened_at": now,
                    "ages": dict.fromkeys(
                        ("under_1h", "from_1h_to_4h", "from_4h_to_24h", "from_1d_to_3d", "from_3d_to_7d", "over_7d"), 1
                    ),
                }
            ]
        },
        "sla": {
            "within_minutes": 60,
            "breached": {"count": 1, "clocks": [clock]},
            "at_risk": {"count": 0, "clocks": []},
            "paused": {"count": 0, "clocks": []},
        },
        "agents": {
            "agents": [
                {"agent_id": "agent-anna", "status": "online", "assigned": 1, "capacity": 5, "queues": ["client-l1"]}
            ]
        },
        "recent": {
            "tickets": [
                {
                    "ticket_id": str(T),
                    "number": "TF-1",
                    "subject": "<script>x</script>",
                    "status": "routed",
                    "priority": "normal",
                    "assignee": None,
                    "opened_at": now,
                }
            ]
        },
        "metrics": {
            "days": [{"day": "2026-12-01", "sla_attainment_percent": 90.0, "first_response_p90_s": 600, "opened": 3}]
        },
        "history": {
            "hours": ["2026-12-01T07:00:00Z", "2026-12-01T08:00:00Z"],
            "total": {"queue_id": None, "backlog": [4, 9], "entered": [4, 6], "exited": [0, 1]},
            "queues": [
                {"queue_id": None, "backlog": [1, 2], "entered": [1, 1], "exited": [0, 0]},
                {"queue_id": "client-l1", "backlog": [3, 7], "entered": [3, 5], "exited": [0, 1]},
            ],
        },
        "responses": {
            "responded": 5,
            "not_responded": 2,
            "buckets": [
                {"from_seconds": 0, "to_seconds": 300, "tickets": 3},
                {"from_seconds": 300, "to_seconds": 3600, "tickets": 0},
                {"from_seconds": 3600, "to_seconds": None, "tickets": 2},
            ],
        },
    }
    view = {"me": {"name": "lead", "agent_id": None}, "desks": [desk], "position": 7, "period_days": 7}
    pages = Pages(load_desks(None))
    for lang in ("ru", "en"):
        html = pages.render("lead.html", lang, me=view["me"], view=view)
        assert f'<html lang="{lang}" ' in html and 'data-position="7"' in html
        assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
        assert texts.text(lang, "breached") in html and texts.text(lang, "chart_attainment") in html
        assert texts.text(lang, "chart_backlog_by_hour") in html and texts.text(lang, "first_responses", days=7) in html
        assert "01.12 11:00: 9" in html  # the hour in Moscow time (the express desk's), the backlog at its end
        assert "01.12 11:00: 7" in html and texts.text(lang, "queue_backlog_by_hour", queue="client-l1") in html
        assert texts.text(lang, "queue_backlog_by_hour", queue=texts.text(lang, "not_routed")) in html
        assert f"≥ 1 {'ч' if lang == 'ru' else 'h'}: 2" in html and 'href="/?days=30"' in html


def test_the_ticket_page_renders_deliveries_clocks_and_preflight_in_the_pages_language() -> None:
    now = datetime.now(UTC).isoformat()
    ticket = {
        "ticket_id": str(T), "number": "TF-1", "desk_id": "express", "track_id": "technical-standard",
        "queue_id": "technical-l2", "status": "waiting_on_customer", "priority": "high", "category": None,
        "assignee": "agent-anna", "subject": "CTS", "opened_at": now, "feature_request": None,
        "conversation": [{"author": "customer", "author_id": "u", "at": now, "text": "<b>help</b>"}],
        "sla": [{"target": "resolution", "state": "paused", "deadline": None, "breached": False,
                 "elapsed_seconds": 600}],
        "deliveries": [{"template": "agent_reply", "channel": "express", "state": "unknown", "attempts": 1,
                        "reason": "no answer"}],
        "timeline": [{"at": now, "stream": "ticket", "type": "PreflightPassed", "detail": {"checks": [
            {"name": "scope", "passed": True, "reason": "", "remediation": {"ru": "всё хорошо", "en": "all good"}}]}}],
    }  # fmt: skip
    view = {"me": {"name": "anna", "agent_id": "agent-anna"}, "ticket": ticket, "position": 3, "can_act": True}
    html = Pages(load_desks(None)).render("ticket.html", "ru", me=view["me"], view=view)
    assert "ждёт ответа клиента" in html and "неизвестно: проверьте чат" in html and "всё хорошо" in html
    assert "Предварительные проверки пройдены" in html and "Входит в зону поддержки" in html  # timeline, check
    assert "PreflightPassed</li>" not in html
    assert "&lt;b&gt;help&lt;/b&gt;" in html and "10 мин" in html
    assert 'data-action="reply"' in html and 'data-action="request_info"' not in html  # waiting already
