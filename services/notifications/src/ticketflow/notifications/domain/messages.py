"""Which events need a message, to whom, with which template and variables. Pure: no I/O.

`plan_event(envelope, ctx, desk, staff, related) -> Planned`: the event, the ticket's context as folded
so far (`context.TicketContext`), and what the application service looked up (the desk, the staff
directory, facts from other streams); `plan_reply(reply)` for the bot's replies outside the lifecycle.
Variables are formatted here, in each recipient's language and time zone, because the templates
take them as text. Policy (shifts, on-call nights, mutes, channel preference) is `policy.plan`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.chat import ChatReply
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import ticket_number
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.notifications.domain.context import TicketContext
from ticketflow.notifications.domain.formatting import (
    describe_hours,
    format_duration,
    format_overdue,
    format_time,
    language,
)
from ticketflow.notifications.domain.model import Channel, Notification, idempotency_key
from ticketflow.notifications.domain.policy import Address, Decision, Kind, Person, Role, plan

PLATFORM_CHANNEL = {"express": Channel.EXPRESS, "bitrix24": Channel.BITRIX24, "generic": Channel.WEBHOOK}


# -- what the domain needs to know about desks and staff --------------------------------------------


class Calendar(Protocol):
    def is_open(self, t: datetime) -> bool: ...
    def next_opening(self, t: datetime) -> datetime: ...


@dataclass(frozen=True)
class DeskView:
    timezone: str
    calendar: Calendar | None = None  # the track's support hours; None: always open
    weekly_hours: Mapping[str, Sequence[str]] = field(default_factory=dict)
    email: bool = False  # the desk keeps a ticket register with e-mail notifications
    email_relay: str | None = None


class Staff(Protocol):
    def person(self, person_id: str) -> Person | None: ...
    def name(self, person_id: str) -> str: ...
    def timezone(self, person_id: str) -> str | None: ...
    def leads(self, queue_id: str) -> tuple[Person, ...]: ...
    def oncall(self, desk_id: str, queue_id: str | None) -> tuple[Person, ...]: ...


@dataclass(frozen=True)
class Related:
    """Facts from other streams the service looked up: the ticket a duplicate was merged into (its
    title, chat and requester: named to the customer only if it is their own), the SLA deadline."""

    duplicate_title: str = ""
    duplicate_chat: ChatRef | None = None
    duplicate_requester: Requester | None = None
    deadline: datetime | None = None


def same_requester(ctx: TicketContext, chat: ChatRef | None, requester: Requester | None) -> bool:
    """Did the same person (platform, tenant, user) open both tickets? Only then may a message to one
    of them name, number or quote the other (issue 14: never another requester's ticket)."""
    if ctx.chat is None or ctx.requester is None or chat is None or requester is None:
        return False
    mine = (ctx.chat.platform, ctx.chat.tenant_id, ctx.requester.user_id)
    return mine == (chat.platform, chat.tenant_id, requester.user_id)


@dataclass(frozen=True)
class Planned:
    notifications: list[Notification] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    note: str = ""  # why nothing was planned, for logs


# The events that lead to a message; who hears is `_audience`, what they read `_variables`.
# TicketOpened is not one: a ticket is registered only once preflight takes it (PreflightPassed); until
# then it may still be refused, referred or a duplicate, and the requester hears only that.
NEEDS_MESSAGE = (t.PreflightPassed, t.PreflightFailed, t.TicketRefused, t.TicketReferred, t.DuplicateSuspected,
                 t.KnownProblemLinked, t.TicketAssigned, t.TicketUnassigned, t.AgentReplied, t.WaitingOnCustomer,
                 t.TicketResolved, t.TicketReopened, t.FeatureRequestOutcomeSet, sla.SlaWarning,
                 sla.SlaBreached)  # fmt: skip


def needs_message(event: object) -> bool:
    return isinstance(event, NEEDS_MESSAGE)


def requester_person(ctx: TicketContext, desk: DeskView) -> Person | None:
    """The requester in the chat they wrote from; plus e-mail where the desk keeps a register."""
    if ctx.chat is None or ctx.requester is None:
        return None
    chat_channel = PLATFORM_CHANNEL[ctx.chat.platform]
    address = ctx.requester.user_id if chat_channel is Channel.WEBHOOK else ctx.chat.conversation_id
    addresses = {chat_channel: Address(ctx.chat.tenant_id, address)}
    channels: tuple[Channel, ...] = (chat_channel,)
    if desk.email and ctx.requester.email:
        channels += (Channel.EMAIL,)
        addresses[Channel.EMAIL] = Address(desk.email_relay or "", ctx.requester.email)
    return Person(f"requester:{ctx.requester.user_id}", Role.REQUESTER, ctx.requester.locale, channels, addresses,
                  fan_out=True)  # fmt: skip


def staff_person(staff: Staff, person_id: str, role: Role) -> Person:
    """Someone routing named; unknown to the directory, they get an address-less (dead-letter) message."""
    return staff.person(person_id) or Person(person_id, role, "ru", (Channel.EMAIL,))


def plan_event(
    envelope: EventEnvelope, ctx: TicketContext, desk: DeskView, staff: Staff, related: Related = Related()
) -> Planned:
    event, at = envelope.event, envelope.occurred_at
    if not needs_message(event):
        return Planned(note="no message for this event")
    requester = requester_person(ctx, desk)
    audience = _audience(event, ctx, staff, requester, related)
    if not audience:
        return Planned(note="nobody to tell (ticket context unknown)")
    planned = Planned()
    seen: set[str] = set()
    event_id = str(message_event_id(envelope, ctx))
    for person, template, kind in audience:
        timezone = desk.timezone if person.role is Role.REQUESTER else staff.timezone(person.id) or desk.timezone
        variables = _variables(event, ctx, desk, staff, related, person.locale, timezone, at)
        notes, decisions = plan(event_id=event_id, template=template, kind=kind, people=[person],
                                variables=variables, at=at)  # fmt: skip
        planned.decisions.extend(decisions)
        for n in notes:
            if n.key not in seen:  # one per (event, person, channel), e.g. lead and on-call at once
                seen.add(n.key)
                planned.notifications.append(n)
    return planned


def message_event_id(envelope: EventEnvelope, ctx: TicketContext) -> uuid.UUID:
    """The event id the messages' idempotency keys are made from: the event's own, except for the
    "registered" message, which is one per ticket and keyed by the ticket's TicketOpened. So a
    redelivered PreflightPassed sends nothing new, and a ticket already told on TicketOpened (before
    the message moved to PreflightPassed) is not told twice."""
    if isinstance(envelope.event, t.PreflightPassed) and ctx.opened_event_id is not None:
        return ctx.opened_event_id
    return envelope.event_id


REPLY_TEMPLATE = "chat_reply"  # `{{ body }}`: intake already wrote the text in the requester's language


def plan_reply(reply: ChatReply) -> Notification:
    """A bot reply outside the lifecycle (`chat.replies`): one message to the chat it answers, through
    that platform's chat channel. The key is (reply_key, channel): a republished reply sends nothing new.
    An empty conversation id gives an address-less notification, i.e. a visible dead letter."""
    channel = PLATFORM_CHANNEL[reply.chat.platform]
    return Notification(
        key=idempotency_key(reply.reply_key, "chat", channel),
        event_id=reply.reply_key,
        channel=channel,
        recipient=f"chat:{reply.chat.conversation_id}",
        destination=reply.chat.tenant_id,
        address=reply.chat.conversation_id or None,
        template=REPLY_TEMPLATE,
        locale="ru",  # the text is already localised; the template is the same in every locale
        variables={"body": reply.body},
    )


Audience = list[tuple[Person, str, Kind]]


def _audience(event: object, ctx: TicketContext, staff: Staff, requester: Person | None, related: Related) -> Audience:
    to_requester: Audience = []
    if requester is not None:
        template = _REQUESTER_TEMPLATES.get(type(event))
        if isinstance(event, t.DuplicateSuspected) and not _own_duplicate(ctx, related):
            template = "duplicate_merged"  # into someone else's ticket: say nothing of it
        if template is not None:
            to_requester.append((requester, template, Kind.INFO))
    if isinstance(event, t.TicketAssigned):
        return [*to_requester, (staff_person(staff, event.agent_id, Role.AGENT), "assigned_to_you", Kind.INFO)]
    if isinstance(event, t.TicketUnassigned):  # e.g. reassigned after no answer: the agent and the lead
        lead = (
            [(staff_person(staff, event.lead_id, Role.LEAD), "ticket_unassigned", Kind.INFO)] if event.lead_id else []
        )
        return [(staff_person(staff, event.agent_id, Role.AGENT), "ticket_unassigned", Kind.INFO), *lead]
    if isinstance(event, t.TicketReopened) and ctx.assignee:
        return [*to_requester, (staff_person(staff, ctx.assignee, Role.AGENT), "ticket_reopened", Kind.INFO)]
    if isinstance(event, sla.SlaWarning | sla.SlaBreached):
        return _escalation(event, ctx, staff)
    return to_requester


_REQUESTER_TEMPLATES: dict[type, str] = {
    t.PreflightPassed: "ticket_opened",  # "registered under TF-…": the template keeps its name (ledger rows)
    t.PreflightFailed: "preflight_failed",
    t.TicketRefused: "ticket_refused",
    t.TicketReferred: "ticket_referred",
    t.DuplicateSuspected: "duplicate_found",  # "duplicate_merged" unless it is the requester's own ticket
    t.KnownProblemLinked: "known_problem",
    t.TicketAssigned: "ticket_assigned",
    t.AgentReplied: "agent_reply",
    t.WaitingOnCustomer: "waiting_on_you",
    t.TicketResolved: "ticket_resolved",
    t.TicketReopened: "ticket_reopened",
    t.FeatureRequestOutcomeSet: "feature_outcome",  # the seed: told whether taken into a sprint, planned, declined
}


def _escalation(event: sla.SlaWarning | sla.SlaBreached, ctx: TicketContext, staff: Staff) -> Audience:
    """`escalate_to` names "assignee", "lead", "queue:<id>" (its leads and on-call); the desk's on-call
    always hears (policy keeps warnings from them at night). "requester" has no SLA template."""
    breach = isinstance(event, sla.SlaBreached)
    kind, prefix = (Kind.SLA_BREACH, "sla_breach") if breach else (Kind.SLA_WARNING, "sla_warning")
    audience: Audience = []
    for who in event.escalate_to:
        if who == "assignee" and ctx.assignee:
            audience.append((staff_person(staff, ctx.assignee, Role.AGENT), f"{prefix}_agent", kind))
        elif who == "lead" and ctx.queue_id:
            audience += [(p, f"{prefix}_lead", kind) for p in staff.leads(ctx.queue_id)]
        elif who.startswith("queue:"):
            queue = who.removeprefix("queue:")
            audience += [(p, f"{prefix}_lead", kind) for p in staff.leads(queue)]
            audience += [(p, f"{prefix}_oncall", kind) for p in staff.oncall(ctx.desk_id, queue)]
    audience += [(p, f"{prefix}_oncall", kind) for p in staff.oncall(ctx.desk_id, ctx.queue_id)]
    return audience


def _variables(event: object, ctx: TicketContext, desk: DeskView, staff: Staff, related: Related,
               locale: str, timezone: str, at: datetime) -> dict[str, Any]:  # fmt: skip
    number = ticket_number(ctx.ticket_id)
    base: dict[str, Any] = {"ticket_number": number, "ticket_title": ctx.title}
    if isinstance(event, t.PreflightPassed):
        # The SLA clocks start when preflight passes (`at`), so that, not the opening, is inside or outside hours.
        outside = desk.calendar is not None and not desk.calendar.is_open(at)
        base["outside_hours"] = outside
        if outside and desk.calendar is not None:
            base["support_hours"] = describe_hours(desk.weekly_hours, locale, desk.timezone)
            base["clock_starts_at"] = format_time(desk.calendar.next_opening(at), locale, timezone)
        return base
    if isinstance(event, t.PreflightFailed):
        lang = language(locale)
        failed = [c for c in event.checks if not c.passed]
        checks = [{"title": _check_title(c.name, lang), "remediation": _remediation(c.remediation, c.reason, lang)}
                  for c in failed]  # fmt: skip
        portal = ctx.chat.portal_url if ctx.chat and ctx.chat.portal_url else ""
        return {"portal_url": portal, "checks": checks}
    if isinstance(event, t.TicketRefused):  # preflight wrote the reason in the requester's language
        return {**base, "reason": event.reason}
    if isinstance(event, t.TicketReferred):
        return {**base, "reason": event.reason}  # preflight wrote where to go, in words and with the address
    if isinstance(event, t.DuplicateSuspected):
        if not _own_duplicate(ctx, related):
            return base  # the other ticket is someone else's: not its number, not a word of it
        return {**base, "duplicate_of": ticket_number(event.duplicate_of), "duplicate_title": related.duplicate_title}
    if isinstance(event, t.TicketAssigned):
        due = format_time(related.deadline, locale, timezone) if related.deadline else "—"
        return {**base, "agent_name": staff.name(event.agent_id), "priority": ctx.priority, "due_at": due}
    if isinstance(event, t.TicketUnassigned):
        return {**base, "agent_name": staff.name(event.agent_id), "reason": event.reason}
    if isinstance(event, t.AgentReplied):
        return {**base, "agent_name": staff.name(event.agent_id), "message": event.text}
    if isinstance(event, t.WaitingOnCustomer):
        return {**base, "question": event.reason}
    if isinstance(event, t.TicketResolved):
        return {**base, "resolution": event.resolution}
    if isinstance(event, t.TicketReopened):
        return {**base, "reason": event.reason}
    if isinstance(event, t.FeatureRequestOutcomeSet):
        return {**base, "outcome": event.outcome, "reason": event.reason}
    if isinstance(event, sla.SlaWarning | sla.SlaBreached):
        base |= {"target": event.target, "due_at": format_time(event.deadline, locale, timezone),
                 "agent_name": staff.name(ctx.assignee) if ctx.assignee else "—"}  # fmt: skip
        if isinstance(event, sla.SlaWarning):
            return base | {"remaining": format_duration(event.deadline - event.fired_at, locale)}
        return base | {"overdue": format_overdue(event.fired_at - event.deadline, locale)}
    return base


def _own_duplicate(ctx: TicketContext, related: Related) -> bool:
    return same_requester(ctx, related.duplicate_chat, related.duplicate_requester)


_CHECK_TITLES = {
    "public_address": ("Публичный адрес портала", "Portal's public address"),
    "https_reachable": ("Доступность по HTTPS", "HTTPS reachability"),
    "tls_certificate": ("SSL-сертификат", "SSL certificate"),
    "pub_readable": ("Доступ к /pub/", "Access to /pub/"),
    "json_answer": ("Ответ сервера в JSON", "Server answers in JSON"),
    "license": ("Лицензия", "License"),
    "updates": ("Обновления", "Updates"),
}


def _check_title(name: str, lang: str) -> str:
    titles = _CHECK_TITLES.get(name)
    return (titles[0] if lang == "ru" else titles[1]) if titles else name


def _remediation(remediation: Mapping[str, str], reason: str, lang: str) -> str:
    return remediation.get(lang) or remediation.get("ru") or next(iter(remediation.values()), reason)
