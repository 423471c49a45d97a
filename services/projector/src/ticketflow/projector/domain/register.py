"""The per-organisation register (pure), as the eXpress desk keeps one per customer organisation: every
ticket of the organisation with its status and, for feature requests, what became of them (taken into a
sprint, planned, declined with a reason) once an agent set it (`FeatureRequestOutcomeSet`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts import ticket_events as t
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.projector.domain.lifecycle import OPEN_STATUSES, Lifecycle, follow, is_ticket_event
from ticketflow.projector.domain.tickets import SUBJECT_CHARS, organisation_of


class RegisterEntry(msgspec.Struct):
    ticket_id: uuid.UUID
    desk_id: str
    organisation_id: str
    requester_id: str
    requester_name: str
    subject: str
    category: str | None
    status: str
    priority: str
    queue_id: str | None
    assignee: str | None
    opened_at: datetime
    updated_at: datetime
    feature_outcome: str | None = None
    feature_reason: str = ""
    outcome_by: str | None = None
    outcome_at: datetime | None = None


def apply(entry: RegisterEntry | None, envelope: EventEnvelope) -> RegisterEntry | None:
    event = envelope.event
    if isinstance(event, t.TicketOpened):
        return entry or RegisterEntry(
            event.ticket_id, event.desk_id, organisation_of(event.chat.platform, event.chat.tenant_id),
            event.requester.user_id, event.requester.display_name, event.text.strip()[:SUBJECT_CHARS], None, "new",
            event.priority, None, None, event.opened_at, event.opened_at,
        )  # fmt: skip
    if entry is None or not is_ticket_event(event):
        return entry
    after = follow(Lifecycle(entry.status, entry.priority, entry.queue_id, entry.assignee), event)
    entry.status, entry.priority, entry.queue_id, entry.assignee = (
        after.status, after.priority, after.queue_id, after.assignee
    )  # fmt: skip
    entry.updated_at = envelope.occurred_at
    if isinstance(event, t.PreflightPassed | t.TicketReferred):
        entry.category = event.category
    elif isinstance(event, t.FeatureRequestOutcomeSet):
        entry.feature_outcome, entry.feature_reason = event.outcome, event.reason
        entry.outcome_by, entry.outcome_at = event.actor, envelope.occurred_at
    return entry


COUNTED = ("tickets", "open", "resolved", "feature_requests", "in_sprint", "planned", "declined")


def counts(entry: RegisterEntry | None) -> tuple[int, ...]:
    """What one ticket adds to its organisation's counters (in `COUNTED` order)."""
    if entry is None:
        return (0,) * len(COUNTED)
    feature = entry.category == "feature_request" or entry.feature_outcome is not None
    outcome = entry.feature_outcome
    return (
        1,
        int(entry.status in OPEN_STATUSES),
        int(entry.status == "resolved"),
        int(feature),
        int(outcome == "in_sprint"),
        int(outcome == "planned"),
        int(outcome == "declined"),
    )
