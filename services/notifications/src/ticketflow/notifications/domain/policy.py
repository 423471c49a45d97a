"""Who gets a message, when, and on which channel. Pure: no I/O, time is passed in.

Rules (from the desks' complaints about other helpdesks: warnings at midnight, on weekends):
- a requester always hears about their own ticket;
- SLA warnings and breaches reach agents and leads only inside their shift;
- on-call gets warnings only during its day duty; at night nothing but breaches;
- a person may mute templates, but never an SLA breach;
- channels follow the person's preference order (per kind, if given); the first channel with an
  address is used, or every one with `fan_out`. A person with channels but no address on any of
  them still gets a `Notification` (address None), which the engine dead-letters with the cause.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ticketflow.notifications.domain.model import Channel, Notification


class Role(enum.StrEnum):
    REQUESTER = "requester"
    AGENT = "agent"
    LEAD = "lead"
    ONCALL = "oncall"


class Kind(enum.StrEnum):
    INFO = "info"  # ticket lifecycle messages
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"


class OnDuty(Protocol):
    """When someone is on duty. `Schedule` below, or a `ticketflow.calendar.BusinessCalendar`
    (which also knows public holidays and Russia's moved working days)."""

    def is_open(self, t: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class Window:
    """Weekly window in local time. `end <= start` runs past midnight into the next day."""

    days: frozenset[int]  # 0 = Monday (the day the window starts)
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Schedule:
    timezone: str
    windows: tuple[Window, ...]

    def is_open(self, t: datetime) -> bool:
        return self.contains(t)

    def contains(self, at: datetime) -> bool:
        if at.tzinfo is None:
            raise ValueError("a naive datetime has no place on a schedule")
        local = at.astimezone(ZoneInfo(self.timezone))
        now = local.time().replace(tzinfo=None)
        yesterday = (local - timedelta(days=1)).weekday()
        for w in self.windows:
            if w.end > w.start:
                if local.weekday() in w.days and w.start <= now < w.end:
                    return True
            else:  # overnight: the evening part today, or the morning part of yesterday's window
                if (local.weekday() in w.days and now >= w.start) or (yesterday in w.days and now < w.end):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Address:
    destination: str  # platform account: eXpress bot id, Bitrix24 portal id, SMTP relay, webhook name
    address: str  # chat id, DIALOG_ID, e-mail address, receiver's user id


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    role: Role
    locale: str
    channels: tuple[Channel, ...]  # preference order
    addresses: Mapping[Channel, Address] = field(default_factory=dict)
    shift: OnDuty | None = None  # agents/leads: working shift; on-call: day duty. None: always on
    channels_by_kind: Mapping[Kind, tuple[Channel, ...]] = field(default_factory=dict)
    muted_templates: frozenset[str] = frozenset()
    fan_out: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    person_id: str
    send: bool
    reason: str
    channels: tuple[Channel, ...] = ()


def decide(person: Person, template: str, kind: Kind, at: datetime) -> Decision:
    if template in person.muted_templates and kind is not Kind.SLA_BREACH:
        return Decision(person.id, False, f"muted {template}")
    off_shift = person.shift is not None and not person.shift.is_open(at)
    if person.role in (Role.AGENT, Role.LEAD) and kind is not Kind.INFO and off_shift:
        return Decision(person.id, False, f"{person.role} off shift")
    # On-call's shift is its day duty; without one, every hour counts as night.
    at_night = person.shift is None or off_shift
    if person.role is Role.ONCALL and kind is not Kind.SLA_BREACH and at_night:
        return Decision(person.id, False, "on-call at night: breaches only")
    preferred = person.channels_by_kind.get(kind, person.channels)
    if not preferred:
        return Decision(person.id, False, "no channels chosen")
    reachable = tuple(c for c in preferred if c in person.addresses)
    if not reachable:
        return Decision(person.id, True, "no address on any preferred channel", preferred[:1])
    return Decision(person.id, True, "ok", reachable if person.fan_out else reachable[:1])


def plan(
    *,
    event_id: str,
    template: str,
    kind: Kind,
    people: Sequence[Person],
    variables: Mapping[str, Any],
    at: datetime,
) -> tuple[list[Notification], list[Decision]]:
    """The notifications to deliver for one event, and every decision (for logs and tests).

    One message per (event, person, channel): a person listed twice (lead and on-call) gets one.
    Across calls the ledger enforces the same, since the key does not include the template.
    """
    notifications: list[Notification] = []
    seen: set[str] = set()
    decisions: list[Decision] = []
    for person in people:
        decision = decide(person, template, kind, at)
        decisions.append(decision)
        if not decision.send:
            continue
        for channel in decision.channels:
            target = person.addresses.get(channel)
            notification = Notification.for_event(
                event_id=event_id,
                channel=channel,
                recipient=person.id,
                destination=target.destination if target else "",
                address=target.address if target else None,
                template=template,
                locale=person.locale,
                variables=variables,
            )
            if notification.key not in seen:
                seen.add(notification.key)
                notifications.append(notification)
    return notifications, decisions
