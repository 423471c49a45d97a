"""Read-model documents: what the projector stores and the query API serves as they are.

`TicketDetail` is one ticket as a dashboard shows it (state, conversation, SLA clocks, deliveries, the
timeline of every event). The projector builds it from the events (`ticketflow.projector.domain`), stores
it as JSON, and the query service sends that JSON on unchanged; both sides share this definition, and
the OpenAPI document of the query API is generated from it. A new field gets a default (old documents
still decode); anything else needs a rebuild of the read model (`python -m ticketflow.projector rebuild`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from ticketflow.contracts.values import Attachment, FeatureOutcome, Priority, Requester, SlaTarget

# A ticket's SLA at a glance: the worst of its clocks (breached > paused > warning > running > met).
SlaState = Literal["none", "running", "warning", "paused", "breached", "met"]
SLA_STATES: tuple[SlaState, ...] = ("none", "running", "warning", "paused", "breached", "met")
# Why a ticket does not count in desk metrics (the support rules: referred and duplicate tickets do not
# count; a refused requester never had a ticket to work on).
Exclusion = Literal["referred", "duplicate", "refused"]


class Message(msgspec.Struct, kw_only=True):
    """One message of the conversation: the customer's (the first opened the ticket) or an agent's reply."""

    at: datetime
    author: Literal["customer", "agent"]
    author_id: str
    message_id: str
    text: str
    attachments: tuple[Attachment, ...] = ()


class SlaClock(msgspec.Struct, kw_only=True):
    """One SLA target's clock as the sla service's events tell it."""

    target: SlaTarget
    state: Literal["running", "paused", "met", "cancelled"]
    policy_id: str
    target_seconds: int
    started_at: datetime
    deadline: datetime | None  # None while paused: resuming computes a new one
    breached: bool = False  # the deadline passed while the clock was pending
    warning_level: float = 0.0  # the highest warning fraction fired
    elapsed_seconds: int | None = None  # business seconds used, when paused or met
    paused_at: datetime | None = None
    met_at: datetime | None = None
    cancel_reason: str = ""


class Delivery(msgspec.Struct, kw_only=True):
    """The latest outcome of one notification (by its key)."""

    notification_key: str
    channel: str
    recipient: str
    template: str
    state: Literal["delivered", "failed", "unknown"]  # unknown: sent, no answer said whether it arrived
    at: datetime
    attempts: int
    permanent: bool = False  # a failure that retrying cannot fix
    reason: str = ""


class FeatureRequest(msgspec.Struct, kw_only=True):
    outcome: FeatureOutcome
    reason: str
    actor: str
    at: datetime


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One event of the ticket (lifecycle, SLA or notification), in global-log order. `detail` holds the
    event's fields except the ticket id and message texts (those are in the conversation)."""

    position: int
    at: datetime
    stream: Literal["ticket", "sla", "notification"]
    type: str
    detail: dict[str, Any]


class TicketDetail(msgspec.Struct, kw_only=True):
    ticket_id: uuid.UUID
    number: str  # what people see ("TF-1A2B3C4D")
    desk_id: str
    track_id: str
    platform: str
    organisation_id: str  # "<platform>:<tenant id>": the eXpress bot or the Bitrix24 portal
    requester: Requester
    status: str
    priority: Priority
    subject: str  # the start of the first message
    opened_at: datetime
    updated_at: datetime
    category: str | None = None
    queue_id: str | None = None
    tier: str | None = None
    assignee: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopen_count: int = 0
    merged_into: uuid.UUID | None = None
    suggested_duplicates: list[uuid.UUID] = msgspec.field(default_factory=list)
    known_problem_of: uuid.UUID | None = None
    feature_request: FeatureRequest | None = None
    excluded_from_metrics: Exclusion | None = None
    sla_state: SlaState = "none"
    sla_due_at: datetime | None = None  # the earliest deadline of a running clock
    conversation: list[Message] = msgspec.field(default_factory=list)
    sla: list[SlaClock] = msgspec.field(default_factory=list)
    deliveries: list[Delivery] = msgspec.field(default_factory=list)
    timeline: list[TimelineEntry] = msgspec.field(default_factory=list)
    position: int = 0  # the global position of the last event applied to this ticket


ticket_detail_decoder = msgspec.json.Decoder(TicketDetail)
