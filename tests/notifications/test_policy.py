"""Who is told what, when: shifts, on-call nights, mutes, channel preferences."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.notifications.domain.model import Channel, idempotency_key
from ticketflow.notifications.domain.policy import Address, Kind, OnDuty, Person, Role, Schedule, Window, decide, plan

MSK = "Europe/Moscow"
WEEKDAYS = frozenset(range(5))
DAY_SHIFT = Schedule(MSK, (Window(WEEKDAYS, time(10), time(19)),))
ONCALL_DAY = Schedule(MSK, (Window(frozenset(range(7)), time(8), time(22)),))
NIGHT_SHIFT = Schedule(MSK, (Window(WEEKDAYS, time(22), time(6)),))


def at_msk(day: int, hour: int, minute: int = 0) -> datetime:
    """`day` 0 = Monday 2026-11-23 (Moscow is UTC+3 all year)."""
    return datetime(2026, 11, 23 + day, hour, minute, tzinfo=UTC) - timedelta(hours=3)


def person(role: Role, shift: OnDuty | None = None, **kw: object) -> Person:
    defaults: dict[str, object] = {
        "id": f"{role}-1",
        "role": role,
        "locale": "ru",
        "channels": (Channel.EXPRESS, Channel.EMAIL),
        "addresses": {
            Channel.EXPRESS: Address("bot-1", "chat-1"),
            Channel.EMAIL: Address("main", f"{role}@example.test"),
        },
        "shift": shift,
    }
    defaults.update(kw)
    return Person(**defaults)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "expected"),
    [(at_msk(0, 10), True), (at_msk(0, 18, 59), True), (at_msk(0, 19), False), (at_msk(0, 9, 59), False),
     (at_msk(5, 12), False)],
)  # fmt: skip
def test_day_shift_window(when: datetime, expected: bool) -> None:
    assert DAY_SHIFT.contains(when) is expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [(at_msk(0, 23), True), (at_msk(1, 3), True), (at_msk(0, 3), False), (at_msk(5, 2), True), (at_msk(5, 23), False),
     (at_msk(1, 6), False)],
)  # fmt: skip
def test_overnight_window_belongs_to_the_day_it_starts(when: datetime, expected: bool) -> None:
    # Friday 22:00 -> Saturday 06:00 is Friday's shift; Saturday 23:00 starts no shift.
    assert NIGHT_SHIFT.contains(when) is expected


def test_agent_warning_respects_shift_but_assignment_does_not() -> None:
    agent = person(Role.AGENT, DAY_SHIFT)
    assert decide(agent, "sla_warning_agent", Kind.SLA_WARNING, at_msk(0, 12)).send
    off = decide(agent, "sla_warning_agent", Kind.SLA_WARNING, at_msk(0, 23))
    assert not off.send and "off shift" in off.reason
    assert not decide(agent, "sla_breach_agent", Kind.SLA_BREACH, at_msk(5, 12)).send
    assert decide(agent, "assigned_to_you", Kind.INFO, at_msk(0, 23)).send


def test_oncall_gets_only_breaches_at_night() -> None:
    oncall = person(Role.ONCALL, ONCALL_DAY)
    night, day = at_msk(2, 3), at_msk(2, 12)
    assert decide(oncall, "sla_breach_oncall", Kind.SLA_BREACH, night).send
    assert not decide(oncall, "sla_warning_oncall", Kind.SLA_WARNING, night).send
    assert not decide(oncall, "ticket_reopened", Kind.INFO, night).send
    assert decide(oncall, "sla_warning_oncall", Kind.SLA_WARNING, day).send


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(list(Kind)), st.booleans())  # fmt: skip
def test_oncall_at_night_never_gets_anything_but_breaches(when: datetime, kind: Kind, has_day: bool) -> None:
    oncall = person(Role.ONCALL, ONCALL_DAY if has_day else None)
    decision = decide(oncall, "x", kind, when)
    if decision.send and kind is not Kind.SLA_BREACH:
        assert has_day and ONCALL_DAY.contains(when)
    if kind is Kind.SLA_BREACH:
        assert decision.send


def test_requester_is_always_told_and_mutes_never_hide_breaches() -> None:
    requester = person(Role.REQUESTER, None, muted_templates=frozenset({"ticket_assigned"}))
    assert decide(requester, "agent_reply", Kind.INFO, at_msk(6, 3)).send
    assert not decide(requester, "ticket_assigned", Kind.INFO, at_msk(0, 12)).send
    lead = person(Role.LEAD, None, muted_templates=frozenset({"sla_breach_lead", "sla_warning_lead"}))
    assert decide(lead, "sla_breach_lead", Kind.SLA_BREACH, at_msk(0, 12)).send
    assert not decide(lead, "sla_warning_lead", Kind.SLA_WARNING, at_msk(0, 12)).send


def test_channel_preference_first_reachable_or_fan_out() -> None:
    when = at_msk(0, 12)
    no_chat = person(Role.REQUESTER, addresses={Channel.EMAIL: Address("main", "a@example.test")})
    assert decide(no_chat, "agent_reply", Kind.INFO, when).channels == (Channel.EMAIL,)
    everywhere = person(Role.REQUESTER, fan_out=True)
    assert decide(everywhere, "agent_reply", Kind.INFO, when).channels == (Channel.EXPRESS, Channel.EMAIL)
    breach_by_mail = person(Role.LEAD, channels_by_kind={Kind.SLA_BREACH: (Channel.EMAIL,)})
    assert decide(breach_by_mail, "sla_breach_lead", Kind.SLA_BREACH, when).channels == (Channel.EMAIL,)


def test_plan_builds_keyed_notifications_and_keeps_unreachable_people_visible() -> None:
    people = [
        person(Role.AGENT, DAY_SHIFT),
        person(Role.ONCALL, ONCALL_DAY),
        person(Role.LEAD, None, id="lead-9", addresses={}),  # no address anywhere
    ]
    notifications, decisions = plan(
        event_id="ev-1", template="sla_warning_x", kind=Kind.SLA_WARNING, people=people, variables={"a": 1},
        at=at_msk(0, 21),
    )  # fmt: skip
    assert [d.send for d in decisions] == [False, True, True]
    assert [(n.recipient, n.channel, n.address) for n in notifications] == [
        ("oncall-1", Channel.EXPRESS, "chat-1"),
        ("lead-9", Channel.EXPRESS, None),
    ]
    assert notifications[0].key == idempotency_key("ev-1", "oncall-1", Channel.EXPRESS)
    assert notifications[0].locale == "ru" and notifications[0].variables == {"a": 1}


def test_idempotency_key_is_per_event_recipient_channel() -> None:
    base = idempotency_key("e", "r", Channel.EMAIL)
    assert base == idempotency_key("e", "r", "email")
    assert len({base, idempotency_key("e2", "r", Channel.EMAIL), idempotency_key("e", "r2", Channel.EMAIL),
                idempotency_key("e", "r", Channel.WEBHOOK)}) == 4  # fmt: skip


def test_a_business_calendar_is_a_shift_and_knows_public_holidays() -> None:
    from ticketflow.calendar import WEEKDAYS, BusinessCalendar, CalendarSpec

    spec = CalendarSpec.from_text(MSK, {day: ["10:00-19:00"] for day in WEEKDAYS[:5]}, holiday_country="RU")
    agent = person(Role.AGENT, BusinessCalendar(spec))
    unity_day = datetime(2026, 11, 4, 9, tzinfo=UTC)  # Wednesday 12:00 MSK, a public holiday
    assert not decide(agent, "sla_warning_agent", Kind.SLA_WARNING, unity_day).send
    assert decide(agent, "sla_warning_agent", Kind.SLA_WARNING, unity_day + timedelta(days=1)).send


def test_a_person_in_two_roles_gets_one_message_per_event_and_channel() -> None:
    lead = person(Role.LEAD, None, id="p-1")
    oncall = person(Role.ONCALL, None, id="p-1")
    notifications, decisions = plan(
        event_id="ev-2", template="sla_breach_lead", kind=Kind.SLA_BREACH, people=[lead, oncall], variables={},
        at=at_msk(0, 3),
    )  # fmt: skip
    assert len(decisions) == 2 and len(notifications) == 1
