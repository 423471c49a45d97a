"""Ticket lifecycle events (stream `ticket-<id>`). Past tense: facts that happened."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

import msgspec

from ticketflow.contracts.values import Attachment, ChatRef, CheckEvidence, Priority, Requester


class _TicketEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    schema_version: ClassVar[int] = 1
    ticket_id: uuid.UUID


class TicketOpened(_TicketEvent, tag="TicketOpened", frozen=True):
    desk_id: str
    track_id: str
    chat: ChatRef
    requester: Requester
    text: str
    platform_message_id: str
    opened_at: datetime
    priority: Priority = "normal"
    attachments: tuple[Attachment, ...] = ()


class CustomerMessageAdded(_TicketEvent, tag="CustomerMessageAdded", frozen=True):
    platform_message_id: str
    text: str
    received_at: datetime
    sender_id: str = ""
    attachments: tuple[Attachment, ...] = ()


class PreflightPassed(_TicketEvent, tag="PreflightPassed", frozen=True):
    category: str
    checks: tuple[CheckEvidence, ...] = ()


class PreflightFailed(_TicketEvent, tag="PreflightFailed", frozen=True):
    """The ticket waits for the customer to fix what `checks` names; a /recheck runs them again."""

    checks: tuple[CheckEvidence, ...]


class TicketRefused(_TicketEvent, tag="TicketRefused", frozen=True):
    """The requester may not use this desk (e.g. not a portal admin). No SLA clock ever starts."""

    code: str
    reason: str


class TicketReferred(_TicketEvent, tag="TicketReferred", frozen=True):
    """Out of scope: referred to partners, excluded from SLA statistics."""

    category: str
    reason: str


class DuplicateSuspected(_TicketEvent, tag="DuplicateSuspected", frozen=True):
    duplicate_of: uuid.UUID
    similarity: float


class TicketRouted(_TicketEvent, tag="TicketRouted", frozen=True):
    queue_id: str
    tier: str
    priority: Priority
    rule_id: str
    reason: str = ""


class TicketAssigned(_TicketEvent, tag="TicketAssigned", frozen=True):
    agent_id: str
    strategy: str
    actor: str = "routing"


class TicketUnassigned(_TicketEvent, tag="TicketUnassigned", frozen=True):
    agent_id: str
    reason: str
    actor: str = "routing"
    lead_id: str | None = None  # the queue lead to tell as well (e.g. after "no answer" reassignment)


class WorkStarted(_TicketEvent, tag="WorkStarted", frozen=True):
    agent_id: str


class AgentReplied(_TicketEvent, tag="AgentReplied", frozen=True):
    agent_id: str
    message_id: str
    text: str


class WaitingOnCustomer(_TicketEvent, tag="WaitingOnCustomer", frozen=True):
    reason: str
    actor: str


class TicketResolved(_TicketEvent, tag="TicketResolved", frozen=True):
    resolution: str
    actor: str


class TicketReopened(_TicketEvent, tag="TicketReopened", frozen=True):
    reason: str
    actor: str


class TicketClosed(_TicketEvent, tag="TicketClosed", frozen=True):
    reason: str
    actor: str


class TicketMerged(_TicketEvent, tag="TicketMerged", frozen=True):
    into_ticket_id: uuid.UUID
    actor: str


class PriorityChanged(_TicketEvent, tag="PriorityChanged", frozen=True):
    from_priority: Priority
    to_priority: Priority
    actor: str


TicketEvent = (
    TicketOpened
    | CustomerMessageAdded
    | PreflightPassed
    | PreflightFailed
    | TicketRefused
    | TicketReferred
    | DuplicateSuspected
    | TicketRouted
    | TicketAssigned
    | TicketUnassigned
    | WorkStarted
    | AgentReplied
    | WaitingOnCustomer
    | TicketResolved
    | TicketReopened
    | TicketClosed
    | TicketMerged
    | PriorityChanged
)
