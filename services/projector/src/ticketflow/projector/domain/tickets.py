"""One ticket as dashboards see it (pure): state, conversation, SLA clocks, deliveries, and the timeline of
every event of its ticket, SLA and notification streams. `apply` is the whole `tickets` read model: the
list row is derived from the same document (`list_row`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from ticketflow.contracts import notification_events as n
from ticketflow.contracts import sla_events as s
from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import ticket_number
from ticketflow.contracts.values import PRIORITIES
from ticketflow.contracts.views import Delivery, FeatureRequest, Message, TicketDetail, TimelineEntry
from ticketflow.projector.domain.clocks import due_at, follow_clock, sla_state
from ticketflow.projector.domain.lifecycle import Lifecycle, follow, is_ticket_event

SUBJECT_CHARS = 200
_HIDDEN_IN_TIMELINE = ("ticket_id", "type", "text")  # the conversation shows texts, once


def organisation_of(platform: str, tenant_id: str) -> str:
    """The customer organisation a chat belongs to: the eXpress bot, the Bitrix24 portal (as preflight
    names it for duplicates)."""
    return f"{platform}:{tenant_id}"


def apply(view: TicketDetail | None, envelope: EventEnvelope) -> TicketDetail | None:
    """The ticket after one event of any of its streams (None: a ticket this read model never saw opened)."""
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        if view is not None:
            return view
        view = opened(event)
    elif view is None:
        return None
    view.timeline.append(timeline_entry(envelope))
    view.updated_at = envelope.occurred_at
    view.position = envelope.position or 0
    if is_ticket_event(event):
        _lifecycle(view, event, envelope.occurred_at)
    elif isinstance(event, s.SlaEvent.__args__):  # type: ignore[attr-defined]
        _sla(view, event)
    elif isinstance(event, n.NotificationEvent.__args__):  # type: ignore[attr-defined]
        _delivery(view, event)
    return view


def opened(event: t.TicketOpened) -> TicketDetail:
    return TicketDetail(
        ticket_id=event.ticket_id,
        number=ticket_number(event.ticket_id),
        desk_id=event.desk_id,
        track_id=event.track_id,
        platform=event.chat.platform,
        organisation_id=organisation_of(event.chat.platform, event.chat.tenant_id),
        requester=event.requester,
        status="new",
        priority=event.priority,
        subject=event.text.strip()[:SUBJECT_CHARS],
        opened_at=event.opened_at,
        updated_at=event.opened_at,
    )


def timeline_entry(envelope: EventEnvelope) -> TimelineEntry:
    stream = envelope.stream_id.split("-", 1)[0]
    detail: dict[str, Any] = msgspec.to_builtins(envelope.event)
    for hidden in _HIDDEN_IN_TIMELINE:
        detail.pop(hidden, None)
    return TimelineEntry(
        position=envelope.position or 0,
        at=envelope.occurred_at,
        stream=stream if stream in ("sla", "notification") else "ticket",  # type: ignore[arg-type]
        type=type(envelope.event).__name__,
        detail=detail,
    )


def _lifecycle(view: TicketDetail, event: t.TicketEvent, at: datetime) -> None:
    before = Lifecycle(view.status, view.priority, view.queue_id, view.assignee)
    after = follow(before, event)
    view.status, view.priority, view.queue_id, view.assignee = (
        after.status,
        after.priority,  # type: ignore[assignment]
        after.queue_id,
        after.assignee,
    )
    match event:
        case t.TicketOpened():
            view.conversation.append(_first_message(event))
        case t.CustomerMessageAdded():
            author = event.sender_id or view.requester.user_id
            view.conversation.append(
                Message(at=event.received_at, author="customer", author_id=author,
                        message_id=event.platform_message_id, text=event.text, attachments=event.attachments)
            )  # fmt: skip
        case t.AgentReplied():
            view.conversation.append(
                Message(at=at, author="agent", author_id=event.agent_id, message_id=event.message_id, text=event.text)
            )
        case t.PreflightPassed() | t.TicketReferred():
            view.category = event.category
            if isinstance(event, t.TicketReferred):
                view.excluded_from_metrics = "referred"
        case t.TicketRefused():
            view.excluded_from_metrics = "refused"
        case t.DuplicateSuspected():
            view.merged_into, view.excluded_from_metrics = event.duplicate_of, "duplicate"
        case t.TicketMerged():
            view.merged_into, view.excluded_from_metrics = event.into_ticket_id, "duplicate"
        case t.MergeUndone():
            view.merged_into, view.excluded_from_metrics = None, None
        case t.DuplicateSuggested():
            if event.candidate_id not in view.suggested_duplicates:
                view.suggested_duplicates.append(event.candidate_id)
        case t.KnownProblemLinked():
            view.known_problem_of = event.problem_ticket_id
        case t.TicketRouted():
            view.tier = event.tier
        case t.TicketResolved():
            view.resolved_at = at
        case t.TicketReopened():
            view.reopen_count += 1
            view.resolved_at = None
        case t.TicketClosed():
            view.closed_at = at
        case t.FeatureRequestOutcomeSet():
            view.feature_request = FeatureRequest(outcome=event.outcome, reason=event.reason, actor=event.actor, at=at)


def _first_message(event: t.TicketOpened) -> Message:
    return Message(
        at=event.opened_at,
        author="customer",
        author_id=event.requester.user_id,
        message_id=event.platform_message_id,
        text=event.text,
        attachments=event.attachments,
    )


def _sla(view: TicketDetail, event: s.SlaEvent) -> None:
    index = next((i for i, c in enumerate(view.sla) if c.target == event.target), None)
    clock = follow_clock(None if index is None else view.sla[index], event)
    if clock is None:
        return
    if index is None:
        view.sla.append(clock)
    else:
        view.sla[index] = clock
    view.sla_state, view.sla_due_at = sla_state(view.sla), due_at(view.sla)


def _delivery(view: TicketDetail, event: n.NotificationEvent) -> None:
    if isinstance(event, n.NotificationDelivered):
        delivery = Delivery(
            notification_key=event.notification_key, channel=event.channel, recipient=event.recipient,
            template=event.template, state="delivered", at=event.delivered_at, attempts=event.attempts,
        )  # fmt: skip
    elif isinstance(event, n.NotificationOutcomeUnknown):  # never resent: the agent checks the chat
        delivery = Delivery(
            notification_key=event.notification_key, channel=event.channel, recipient=event.recipient,
            template=event.template, state="unknown", at=event.at, attempts=event.attempts, reason=event.reason,
        )  # fmt: skip
    else:
        delivery = Delivery(
            notification_key=event.notification_key, channel=event.channel, recipient=event.recipient,
            template=event.template, state="failed", at=event.failed_at, attempts=event.attempts,
            permanent=event.permanent, reason=event.reason,
        )  # fmt: skip
    for i, known in enumerate(view.deliveries):
        if known.notification_key == event.notification_key:
            view.deliveries[i] = delivery
            return
    view.deliveries.append(delivery)


# --- the list row ---------------------------------------------------------------------------------

PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}  # urgent first


class ListRow(msgspec.Struct, array_like=True):
    """The `ticket_list` columns of a ticket, in table order (what list queries filter and sort on)."""

    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    organisation_id: str
    requester_id: str
    status: str
    priority: str
    priority_rank: int
    category: str | None
    queue_id: str | None
    assignee: str | None
    subject: str
    opened_at: datetime
    updated_at: datetime
    sla_state: str
    sla_due_at: datetime | None
    feature_outcome: str | None
    excluded: bool
    position: int


def list_row(view: TicketDetail) -> ListRow:
    return ListRow(
        view.ticket_id,
        view.desk_id,
        view.track_id,
        view.organisation_id,
        view.requester.user_id,
        view.status,
        view.priority,
        PRIORITY_RANK[view.priority],
        view.category,
        view.queue_id,
        view.assignee,
        view.subject,
        view.opened_at,
        view.updated_at,
        view.sla_state,
        view.sla_due_at,
        None if view.feature_request is None else view.feature_request.outcome,
        view.excluded_from_metrics is not None,
        view.position,
    )


def search_text(view: TicketDetail) -> str:
    """What the list's text search matches: every message of the conversation."""
    return "\n".join(message.text for message in view.conversation)
