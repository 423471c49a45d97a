"""Which events need a message, to whom, which template, which variables (pure: no I/O).

Given a ticket's events (its context) and the staff directory, when an event arrives, then these
people get this template on this channel, with variables every template of both locales renders.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts import notification_events as ne
from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import sla_stream, ticket_number, ticket_stream
from ticketflow.contracts.values import ChatRef, CheckEvidence, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.notifications.adapters.directory import Directory, parse_config
from ticketflow.notifications.adapters.rendering import TemplateCatalog
from ticketflow.notifications.domain.context import TicketContext, context_of, title_of
from ticketflow.notifications.domain.formatting import describe_hours, format_duration, format_overdue, format_time
from ticketflow.notifications.domain.messages import DeskView, Planned, Related, plan_event
from ticketflow.notifications.domain.model import Channel, idempotency_key

EXPRESS_BOT = "8dada2c8-67a6-4434-9dec-570d244e78ee"
PORTAL = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
CHAT = "6f1d8a0e-3c55-4a7b-9b61-2f8f6f0d6a10"
# Tuesday 2026-11-24: 12:00 Moscow is inside every shift below, 03:00 Moscow is night.
DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

STAFF_TOML = f"""
[[express_bots]]
bot_id = "{EXPRESS_BOT}"
cts_url = "http://127.0.0.1:1"
secret_env = "BOT_SECRET"

[[smtp_relays]]
name = "register"
hostname = "127.0.0.1"
sender = "support@ticketflow.test"

[[desks]]
desk_id = "express"
email_relay = "register"

[[desks]]
desk_id = "bitrix24-box"

[[people]]
id = "anna"
name = "Anna"
role = "agent"
locale = "en"
timezone = "Asia/Yekaterinburg"
channels = ["express", "email"]
addresses.express = {{ destination = "{EXPRESS_BOT}", address = "{uuid.UUID(int=1)}" }}
addresses.email = {{ destination = "register", address = "anna@example.test" }}
shift = [{{ days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "18:00" }}]

[[people]]
id = "boris"
name = "Борис"
role = "lead"
channels = ["bitrix24"]
addresses.bitrix24 = {{ destination = "{PORTAL}", address = "15" }}
queues = ["box-l1"]
shift = [{{ days = ["mon", "tue", "wed", "thu", "fri"], start = "10:00", end = "19:00" }}]

[[people]]
id = "duty"
name = "Дежурный"
role = "oncall"
channels = ["email"]
addresses.email = {{ destination = "register", address = "duty@example.test" }}
desks = ["bitrix24-box", "express"]
shift = [{{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "09:00", end = "21:00" }}]
"""
STAFF = Directory.from_config(parse_config(STAFF_TOML))
DESKS = load_desks()
CATALOG = TemplateCatalog.from_directory()


def envelope(event: object, version: int = 1, at: datetime = DAY, stream: str | None = None) -> EventEnvelope:
    ticket_id = getattr(event, "ticket_id")  # noqa: B009 - every event here has one
    stream_id = stream or (
        sla_stream(ticket_id) if type(event).__module__.endswith("sla_events") else ticket_stream(ticket_id)
    )
    return EventEnvelope(uuid.uuid4(), stream_id, version, at, 1, event)  # type: ignore[arg-type]


def opened(
    ticket_id: uuid.UUID, *, platform: str = "bitrix24", locale: str = "ru", email: str | None = None,
    at: datetime = DAY,
) -> t.TicketOpened:  # fmt: skip
    if platform == "express":
        chat, desk, track = ChatRef("express", EXPRESS_BOT, CHAT), "express", "client"
    elif platform == "generic":
        chat, desk, track = ChatRef("generic", "crm", "conv-1"), "bitrix24-box", "box"
    else:
        chat, desk, track = ChatRef("bitrix24", PORTAL, "chat42", "https://b24.example.ru"), "bitrix24-box", "box"
    requester = Requester("user-7", "Ivan", locale, ("portal_admin",), email)
    return t.TicketOpened(ticket_id, desk, track, chat, requester, "Portal is slow\nsince update", "m-1", at)


def view(ctx: TicketContext) -> DeskView:
    desk = DESKS.desk(ctx.desk_id)
    track = DESKS.track(desk.id, ctx.track_id)
    config = next(c for c in desk.calendars if c.id == track.calendar)
    weekly = {d: tuple(getattr(config.weekly, d)) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return DeskView(desk.timezone, DESKS.calendar(desk.id, track.id), weekly, desk.notifications.email,
                    STAFF.email_relay(desk.id))  # fmt: skip


def given_ticket(*events: object, **opened_options: object) -> tuple[uuid.UUID, TicketContext]:
    ticket_id = uuid.uuid4()
    history = [opened(ticket_id, **opened_options), *(e(ticket_id) if callable(e) else e for e in events)]  # type: ignore[arg-type]
    ctx = context_of(ticket_id, [envelope(e, i) for i, e in enumerate(history, start=1)])
    return ticket_id, ctx


def when(ctx: TicketContext, event: object, at: datetime = DAY, related: Related | None = None) -> Planned:
    planned = plan_event(envelope(event, ctx.version + 1, at), ctx, view(ctx), STAFF, related or Related())
    for n in planned.notifications:  # whatever is planned renders in the recipient's locale
        if n.address is not None:
            CATALOG.render(n.template, n.locale, dict(n.variables))
    return planned


def sent(planned: Planned) -> list[tuple[str, str, Channel]]:
    return [(n.recipient, n.template, n.channel) for n in planned.notifications]


def routed_and_assigned(ticket_id: uuid.UUID) -> Sequence[object]:
    return [
        t.TicketRouted(ticket_id, "box-l1", "l1", "high", "rule"),
        t.TicketAssigned(ticket_id, "anna", "round_robin"),
    ]


# -- requester messages -------------------------------------------------------------------------


def test_ticket_opened_tells_nobody_yet_preflight_passed_registers_it_in_the_bitrix24_chat_it_came_from() -> None:
    ticket_id = uuid.uuid4()
    opening = envelope(opened(ticket_id))
    ctx = context_of(ticket_id, [opening])
    assert plan_event(opening, ctx, view(ctx), STAFF).notifications == []  # not taken yet: may still be refused
    passed = envelope(t.PreflightPassed(ticket_id, "installation"), 2)
    planned = plan_event(passed, ctx, view(ctx), STAFF)
    assert plan_event(passed, context_of(ticket_id, []), view(ctx), STAFF).notifications == []  # context unknown
    [n] = planned.notifications
    assert (n.channel, n.destination, n.address, n.template) == (Channel.BITRIX24, PORTAL, "chat42", "ticket_opened")
    assert n.variables["outside_hours"] is False
    assert n.variables["ticket_number"] == ticket_number(ticket_id)
    assert n.variables["ticket_title"] == "Portal is slow"  # from the TicketOpened, folded into the context
    # One "registered" per ticket: keyed by the TicketOpened, as it was when TicketOpened sent it, so a
    # redelivered PreflightPassed, or a ticket told before the change, sends nothing new (the ledger's key).
    assert n.key == idempotency_key(str(opening.event_id), "requester:user-7", Channel.BITRIX24)
    again = plan_event(envelope(t.PreflightPassed(ticket_id, "installation"), 2), ctx, view(ctx), STAFF)
    assert [m.key for m in again.notifications] == [n.key]


@pytest.mark.parametrize(
    ("locale", "hours", "starts"),
    [
        ("ru", "пн–пт 10:00-19:00 (MSK)", "пн 30 ноя 10:00 MSK"),
        ("en", "Mon–Fri 10:00-19:00 (MSK)", "Mon 30 Nov 10:00 MSK"),
    ],
)
def test_preflight_passed_on_saturday_tells_the_support_hours_and_when_the_clock_starts(
    locale: str, hours: str, starts: str
) -> None:
    ticket_id, ctx = given_ticket(locale=locale, at=SATURDAY)
    [n] = when(ctx, t.PreflightPassed(ticket_id, "installation"), SATURDAY).notifications
    assert n.variables["outside_hours"] is True
    assert (n.variables["support_hours"], n.variables["clock_starts_at"], n.locale) == (hours, starts, locale)
    body = CATALOG.render("ticket_opened", locale, dict(n.variables)).body
    assert starts in body


def test_hours_are_judged_when_preflight_passes_not_when_the_ticket_opened() -> None:
    # Opened on Saturday, held for a failed check, passed on Tuesday after the customer's /recheck:
    # the SLA clock starts on Tuesday, inside hours, so no "the clock starts Monday" is promised.
    failed = (CheckEvidence("tls_certificate", False, "self-signed"),)
    ticket_id, ctx = given_ticket(lambda tid: t.PreflightFailed(tid, failed), at=SATURDAY)
    [n] = when(ctx, t.PreflightPassed(ticket_id, "installation"), DAY).notifications
    assert n.template == "ticket_opened" and n.variables["outside_hours"] is False


PREFLIGHT_OUTCOMES: dict[str, list[Callable[[uuid.UUID], object]]] = {
    "passed": [lambda tid: t.PreflightPassed(tid, "installation")],
    "refused": [lambda tid: t.TicketRefused(tid, "not_portal_admin", "Только администраторам портала.")],
    "referred": [lambda tid: t.TicketReferred(tid, "custom_development", "custom development")],
    "duplicate": [lambda tid: t.DuplicateSuspected(tid, uuid.UUID(int=5), 0.93)],
    "failed": [lambda tid: t.PreflightFailed(tid, (CheckEvidence("pub_readable", False, "403", {"ru": "Откройте"}),))],
    "failed, then passed": [
        lambda tid: t.PreflightFailed(tid, (CheckEvidence("pub_readable", False, "403", {"ru": "Откройте"}),)),
        lambda tid: t.CustomerMessageAdded(tid, "m-2", "/recheck", DAY),
        lambda tid: t.PreflightPassed(tid, "installation"),
    ],
}


@pytest.mark.parametrize(
    ("outcome", "templates"),
    [
        ("passed", ["ticket_opened"]),
        ("refused", ["ticket_refused"]),
        ("referred", ["ticket_referred"]),
        ("duplicate", ["duplicate_merged"]),  # into a ticket nothing is known of: say nothing of it
        ("failed", ["preflight_failed"]),
        ("failed, then passed", ["preflight_failed", "ticket_opened"]),
    ],
)
def test_the_requester_reads_registered_only_for_a_ticket_preflight_took(outcome: str, templates: list[str]) -> None:
    """Given a ticket's events as they arrive, each planned in turn: what the requester reads, in order."""
    ticket_id = uuid.uuid4()
    history = [opened(ticket_id), *(make(ticket_id) for make in PREFLIGHT_OUTCOMES[outcome])]
    envelopes = [envelope(e, i) for i, e in enumerate(history, start=1)]
    read: list[str] = []
    for i, env in enumerate(envelopes):
        ctx = context_of(ticket_id, envelopes[: i + 1])
        read += [template for _, template, _ in sent(plan_event(env, ctx, view(ctx), STAFF))]
    assert read == templates


def test_express_requester_with_an_email_gets_the_chat_and_the_register_email() -> None:
    _, ctx = given_ticket(platform="express", email="ivan@example.test")
    planned = when(ctx, t.AgentReplied(ctx.ticket_id, "anna", "r-1", "Clear the cache, please."))
    by_channel = {n.channel: n for n in planned.notifications}
    assert set(by_channel) == {Channel.EXPRESS, Channel.EMAIL}
    assert (by_channel[Channel.EXPRESS].destination, by_channel[Channel.EXPRESS].address) == (EXPRESS_BOT, CHAT)
    assert (by_channel[Channel.EMAIL].destination, by_channel[Channel.EMAIL].address) == (
        "register",
        "ivan@example.test",
    )
    assert by_channel[Channel.EMAIL].variables["message"] == "Clear the cache, please."
    assert by_channel[Channel.EMAIL].variables["agent_name"] == "Anna"


def test_bitrix24_desk_sends_no_email_and_express_without_an_address_only_the_chat() -> None:
    _, box = given_ticket(email="ivan@example.test")
    assert [n.channel for n in when(box, t.TicketResolved(box.ticket_id, "done", "anna")).notifications] == [
        Channel.BITRIX24
    ]
    _, express = given_ticket(platform="express")
    assert [n.channel for n in when(express, t.TicketResolved(express.ticket_id, "done", "anna")).notifications] == [
        Channel.EXPRESS
    ]


def test_generic_platform_requester_is_told_through_the_tenants_webhook() -> None:
    _, ctx = given_ticket(platform="generic")
    [n] = when(ctx, t.WaitingOnCustomer(ctx.ticket_id, "Which version is installed?", "anna")).notifications
    assert (n.channel, n.destination, n.address, n.template) == (Channel.WEBHOOK, "crm", "user-7", "waiting_on_you")
    assert n.variables["question"] == "Which version is installed?"


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_preflight_failed_lists_only_failed_checks_with_remediation_in_the_requesters_language(locale: str) -> None:
    _, ctx = given_ticket(locale=locale)
    checks = (
        CheckEvidence(
            "tls_certificate", False, "self-signed", {"ru": "Установите сертификат", "en": "Install a certificate"}
        ),
        CheckEvidence("json_answer", True),
        CheckEvidence("pub_readable", False, "403 on /pub/", {"ru": "Откройте /pub/"}),
    )
    [n] = when(ctx, t.PreflightFailed(ctx.ticket_id, checks)).notifications
    assert n.template == "preflight_failed" and n.variables["portal_url"] == "https://b24.example.ru"
    titles = [c["title"] for c in n.variables["checks"]]
    assert titles == (
        ["SSL-сертификат", "Доступ к /pub/"] if locale == "ru" else ["SSL certificate", "Access to /pub/"]
    )
    remedies = [c["remediation"] for c in n.variables["checks"]]
    assert remedies == (
        ["Установите сертификат", "Откройте /pub/"] if locale == "ru" else ["Install a certificate", "Откройте /pub/"]
    )


def test_referred_duplicate_resolved_reopened_reach_the_requester_with_their_variables() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    other = uuid.uuid4()
    reason = "questions about custom development are outside technical support. Where to go: Bitrix24 partners"
    referred = when(ctx, t.TicketReferred(ticket_id, "custom_development", reason))
    assert sent(referred) == [("requester:user-7", "ticket_referred", Channel.BITRIX24)]
    assert referred.notifications[0].variables["reason"] == reason  # preflight's words, as they are
    # The requester's own earlier ticket: named and quoted. Anyone else's: neither (issue 14).
    mine = Related("Slow portal", ctx.chat, ctx.requester)
    duplicate = when(ctx, t.DuplicateSuspected(ticket_id, other, 0.93), related=mine)
    assert sent(duplicate) == [("requester:user-7", "duplicate_found", Channel.BITRIX24)]
    assert duplicate.notifications[0].variables["duplicate_of"] == ticket_number(other)
    assert duplicate.notifications[0].variables["duplicate_title"] == "Slow portal"
    assert ctx.requester is not None
    colleague = Related("Slow portal", ctx.chat, msgspec.structs.replace(ctx.requester, user_id="user-8"))
    merged = when(ctx, t.DuplicateSuspected(ticket_id, other, 0.93), related=colleague)
    assert sent(merged) == [("requester:user-7", "duplicate_merged", Channel.BITRIX24)]
    assert set(merged.notifications[0].variables) == {"ticket_number", "ticket_title"}
    assert sent(when(ctx, t.TicketResolved(ticket_id, "cache cleared", "anna"))) == [
        ("requester:user-7", "ticket_resolved", Channel.BITRIX24)
    ]


def test_assignment_tells_the_requester_and_the_agent_with_the_deadline_in_the_agents_zone() -> None:
    ticket_id, ctx = given_ticket(lambda tid: t.TicketRouted(tid, "box-l1", "l1", "high", "rule"))
    deadline = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    planned = when(ctx, t.TicketAssigned(ticket_id, "anna", "round_robin"), related=Related(deadline=deadline))
    assert sent(planned) == [
        ("requester:user-7", "ticket_assigned", Channel.BITRIX24),
        ("anna", "assigned_to_you", Channel.EXPRESS),
    ]
    agent = planned.notifications[1]
    assert agent.locale == "en" and agent.variables["priority"] == "high"
    assert agent.variables["due_at"] == "Tue 24 Nov 15:00 +05"  # Yekaterinburg
    assert planned.notifications[0].variables["agent_name"] == "Anna"


def test_reopened_tells_the_requester_and_the_assignee() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    assert ctx.assignee == "anna" and ctx.queue_id == "box-l1"
    assert sent(when(ctx, t.TicketReopened(ticket_id, "it broke again", "user-7"))) == [
        ("requester:user-7", "ticket_reopened", Channel.BITRIX24),
        ("anna", "ticket_reopened", Channel.EXPRESS),
    ]


def test_a_feature_requests_outcome_is_told_to_the_requester_with_the_reason() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    planned = when(ctx, t.FeatureRequestOutcomeSet(ticket_id, "declined", "anna", "not on the roadmap"))
    assert sent(planned) == [("requester:user-7", "feature_outcome", Channel.BITRIX24)]
    told = planned.notifications[0].variables
    assert (told["outcome"], told["reason"]) == ("declined", "not on the roadmap")


def test_a_refused_requester_hears_the_reason_preflight_wrote_in_their_language() -> None:
    ticket_id, ctx = given_ticket(locale="en")
    reason = "Support chat is available to portal administrators only."
    [n] = when(ctx, t.TicketRefused(ticket_id, "not_portal_admin", reason)).notifications
    assert (n.recipient, n.template, n.channel, n.locale) == (
        "requester:user-7",
        "ticket_refused",
        Channel.BITRIX24,
        "en",
    )
    assert CATALOG.render(n.template, n.locale, dict(n.variables)).body.strip() == reason


def test_reassignment_after_no_answer_tells_the_agent_and_the_queue_lead_not_the_requester() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    planned = when(ctx, t.TicketUnassigned(ticket_id, "anna", "no answer within 30 min", lead_id="boris"))
    assert sent(planned) == [
        ("anna", "ticket_unassigned", Channel.EXPRESS),
        ("boris", "ticket_unassigned", Channel.BITRIX24),
    ]
    assert planned.notifications[1].variables["reason"] == "no answer within 30 min"
    assert planned.notifications[1].variables["agent_name"] == "Anna"
    without_lead = when(ctx, t.TicketUnassigned(ticket_id, "anna", "agent went off shift"))
    assert sent(without_lead) == [("anna", "ticket_unassigned", Channel.EXPRESS)]


def test_an_agent_unknown_to_the_directory_gets_an_address_less_notification_not_silence() -> None:
    ticket_id, ctx = given_ticket()
    planned = when(ctx, t.TicketAssigned(ticket_id, "ghost", "round_robin"))
    ghost = next(n for n in planned.notifications if n.recipient == "ghost")
    assert ghost.address is None and ghost.variables["agent_name"] == "ghost"


# -- SLA: agents, leads, on-call ----------------------------------------------------------------


def warning(ticket_id: uuid.UUID, at: datetime) -> sla.SlaWarning:
    return sla.SlaWarning(ticket_id, "first_response", 0.75, at + timedelta(minutes=30), at, ("assignee", "lead"))


def breach(ticket_id: uuid.UUID, at: datetime) -> sla.SlaBreached:
    return sla.SlaBreached(ticket_id, "resolution", at, at, ("assignee", "lead", "queue:box-l2"))


def test_sla_warning_in_the_day_reaches_agent_lead_and_day_duty_on_call() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    planned = when(ctx, warning(ticket_id, DAY), DAY)
    assert sent(planned) == [
        ("anna", "sla_warning_agent", Channel.EXPRESS),
        ("boris", "sla_warning_lead", Channel.BITRIX24),
        ("duty", "sla_warning_oncall", Channel.EMAIL),
    ]
    anna = planned.notifications[0]
    assert (anna.locale, anna.variables["remaining"], anna.variables["due_at"]) == (
        "en",
        "30 min",
        "Tue 24 Nov 14:30 +05",
    )
    assert planned.notifications[1].variables["remaining"] == "30 мин"


def test_sla_warning_at_night_reaches_nobody_and_a_breach_at_night_only_on_call() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    night_warning = when(ctx, warning(ticket_id, NIGHT), NIGHT)
    assert night_warning.notifications == []
    assert {d.reason for d in night_warning.decisions} == {
        "agent off shift",
        "lead off shift",
        "on-call at night: breaches only",
    }
    assert sent(when(ctx, breach(ticket_id, NIGHT), NIGHT)) == [("duty", "sla_breach_oncall", Channel.EMAIL)]


def test_sla_breach_by_day_reaches_agent_lead_and_on_call_once_each() -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    planned = when(ctx, breach(ticket_id, DAY), DAY)
    assert sent(planned) == [
        ("anna", "sla_breach_agent", Channel.EXPRESS),
        ("boris", "sla_breach_lead", Channel.BITRIX24),
        ("duty", "sla_breach_oncall", Channel.EMAIL),
    ]
    assert planned.notifications[1].variables["agent_name"] == "Anna"


@pytest.mark.parametrize(
    ("late", "en", "ru"),
    [
        (timedelta(0), "", ""),
        (timedelta(seconds=59), "", ""),
        (timedelta(minutes=1, seconds=59), "1 min", "1 мин"),
        (timedelta(hours=1, minutes=30, seconds=40), "1 h 30 min", "1 ч 30 мин"),
    ],
)
def test_a_breach_reports_whole_minutes_late_and_never_overdue_by_zero(late: timedelta, en: str, ru: str) -> None:
    ticket_id, ctx = given_ticket(*routed_and_assigned(uuid.UUID(int=0)))
    event = sla.SlaBreached(ticket_id, "next_response", DAY, DAY + late, ("assignee", "lead"))
    planned = when(ctx, event, DAY + late)
    anna, boris = planned.notifications[:2]  # English agent, Russian lead
    assert (anna.variables["overdue"], boris.variables["overdue"]) == (en, ru)
    english = CATALOG.render(anna.template, anna.locale, dict(anna.variables)).body
    russian = CATALOG.render(boris.template, boris.locale, dict(boris.variables)).body
    assert "next response" in english and "resolution" not in english
    assert "следующего ответа" in russian and "решения" not in russian
    assert not re.search(r"(?<!\d)0 (min|мин)", english + russian)
    assert ("overdue by " + en in english) if en else ("overdue" not in english)
    assert ("просрочка " + ru in russian) if ru else ("просрочка" not in russian)


# -- nothing to say -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        lambda tid: t.CustomerMessageAdded(tid, "m-2", "more details", DAY),
        lambda tid: opened(tid),  # registered only once preflight passes
        lambda tid: t.TicketRouted(tid, "box-l1", "l1", "normal", "rule"),
        lambda tid: t.TicketClosed(tid, "confirmed", "user-7"),
        lambda tid: sla.SlaClockStarted(tid, "first_response", "p", 3600, DAY, DAY),
        lambda tid: ne.NotificationDelivered(tid, "k", "express", "r", "ticket_opened", DAY),
    ],
)
def test_events_without_a_message_plan_nothing(event: object) -> None:
    ticket_id, ctx = given_ticket()
    assert when(ctx, event(ticket_id)).notifications == []  # type: ignore[operator]


# -- formatting ---------------------------------------------------------------------------------


def test_times_and_durations_in_the_recipients_language_and_zone() -> None:
    at = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    assert format_time(at, "ru", "Europe/Moscow") == "пн 23 ноя 12:05 MSK"
    assert format_time(at, "en-GB", "Europe/London") == "Mon 23 Nov 09:05 GMT"
    assert format_duration(timedelta(hours=26, minutes=5), "ru") == "1 д 2 ч 5 мин"
    assert format_duration(timedelta(seconds=-30), "en") == "0 min"
    assert format_overdue(timedelta(seconds=-30), "en") == format_overdue(timedelta(seconds=59), "ru") == ""
    assert format_overdue(timedelta(minutes=61, seconds=59), "ru") == "1 ч 1 мин"
    weekly = {"mon": ("08:00-21:00",), "tue": ("08:00-21:00",), "sat": ("10:00-18:00",), "sun": ("10:00-18:00",)}
    assert describe_hours(weekly, "en", "Europe/Moscow") == "Mon–Tue 08:00-21:00; Sat–Sun 10:00-18:00 (MSK)"


@given(st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=400)), st.sampled_from(["ru", "en", "de"]))
def test_any_duration_formats_as_non_empty_whole_units(span: timedelta, locale: str) -> None:
    text = format_duration(span, locale)
    assert text and not text.startswith("-")


# -- issue 14: a requester never reads anything of another requester's ticket ----------------------

_WORD = st.text(alphabet="абвгдежзиклмнопрстуфхцчшщэюяabcdefghijklmnopqrstuvwxyz0123456789+-", min_size=1, max_size=12)
_TEXT = st.lists(_WORD, min_size=1, max_size=12).map(" ".join)
_USER = st.sampled_from(["u-1", "u-2", "u-3"])  # few ids, so the same requester comes up often


def _express_ticket(ticket_id: uuid.UUID, user: str, text: str, locale: str) -> t.TicketOpened:
    chat = ChatRef("express", EXPRESS_BOT, f"chat-{user}")  # the public client-support bot: one tenant
    return t.TicketOpened(ticket_id, "express", "client", chat, Requester(user, "", locale), text, "m-1", DAY)


def _notice_to_b(a: t.TicketOpened, b: t.TicketOpened, event: object) -> list[str]:
    """What B's chat would show for `event`, with the facts of A the service looks up (service._related)."""
    ctx = context_of(b.ticket_id, [envelope(b, 1)])
    related = Related(title_of(a.text), a.chat, a.requester)
    planned = plan_event(envelope(event, 2), ctx, view(ctx), STAFF, related)
    rendered = [CATALOG.render(n.template, n.locale, dict(n.variables)) for n in planned.notifications]
    return [f"{r.subject}\n{r.body}" for r in rendered]


@given(user_a=_USER, user_b=_USER, text_a=_TEXT, other_text_a=_TEXT, text_b=_TEXT, locale=st.sampled_from(["ru", "en"]))
def test_a_duplicate_notice_never_carries_another_requesters_ticket(
    user_a: str, user_b: str, text_a: str, other_text_a: str, text_b: str, locale: str
) -> None:
    a_id, b_id = uuid.uuid4(), uuid.uuid4()
    b = _express_ticket(b_id, user_b, text_b, locale)
    merged = t.DuplicateSuspected(b_id, a_id, 0.9)
    notice = _notice_to_b(_express_ticket(a_id, user_a, text_a, "ru"), b, merged)
    assert notice, "the requester is told of the merge"
    if user_a == user_b:  # their own earlier ticket: named, so they can follow it
        assert all(ticket_number(a_id) in text for text in notice)
        return
    # Another requester's: the notice is the same whatever A wrote, and names nothing of A.
    assert notice == _notice_to_b(_express_ticket(a_id, user_a, other_text_a, "ru"), b, merged)
    assert not any(ticket_number(a_id) in text for text in notice)
    a_words = set(text_a.split()) - set(text_b.split())
    assert not any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text) for w in a_words if len(w) > 3 for text in notice)


@given(text_a=_TEXT, text_b=_TEXT)
def test_a_known_problem_notice_names_nothing_of_the_problem_ticket(text_a: str, text_b: str) -> None:
    a_id, b_id = uuid.uuid4(), uuid.uuid4()
    a, b = _express_ticket(a_id, "u-1", text_a, "ru"), _express_ticket(b_id, "u-2", text_b, "ru")
    notice = _notice_to_b(a, b, t.KnownProblemLinked(b_id, a_id, "anna"))
    assert len(notice) == 1 and ticket_number(b_id) in notice[0] and ticket_number(a_id) not in notice[0]
    assert notice == _notice_to_b(
        _express_ticket(a_id, "u-1", text_b + " x", "ru"), b, t.KnownProblemLinked(b_id, a_id, "anna")
    )


def test_a_suggestion_for_the_agent_and_an_undone_merge_tell_the_requester_nothing() -> None:
    ticket_id, ctx = given_ticket(platform="express")
    assert when(ctx, t.DuplicateSuggested(ticket_id, uuid.uuid4(), 0.7)).notifications == []
    undone = t.MergeUndone(ticket_id, uuid.uuid4(), "express", "client", "normal", "wrong merge", "lead")
    assert when(ctx, undone).notifications == []  # preflight takes it again: "registered" comes then
