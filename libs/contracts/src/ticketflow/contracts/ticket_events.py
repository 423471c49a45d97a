"""Ticket lifecycle events (stream `ticket-<id>`). Past tense: facts that happened."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

import msgspec

from ticketflow.contracts.values import Attachment, ChatRef, CheckEvidence, FeatureOutcome, Priority, Requester


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
    """Preflight merged the ticket into `duplicate_of`, an open ticket of the same requester (or, where
    a tenant is one customer organisation, of the same organisation). Terminal until `MergeUndone`."""

    duplicate_of: uuid.UUID
    similarity: float
    suspected_at: datetime | None = None  # when preflight decided it (None: events before it was recorded)


class DuplicateSuggested(_TicketEvent, tag="DuplicateSuggested", frozen=True):
    """A likely duplicate from another requester: a suggestion for the agent only. Nothing changes for
    the ticket, and the customer is told nothing of it (`KnownProblemLinked` is the agent's answer)."""

    candidate_id: uuid.UUID
    similarity: float


class KnownProblemLinked(_TicketEvent, tag="KnownProblemLinked", frozen=True):
    """An agent linked the ticket to a known problem (another ticket, possibly another requester's).
    The ticket stays open; the requester is told, in neutral words, that the problem is known."""

    problem_ticket_id: uuid.UUID
    actor: str


class MergeUndone(_TicketEvent, tag="MergeUndone", frozen=True):
    """An agent undid an automatic merge (`DuplicateSuspected`): the ticket is open again, back before
    preflight, and is never merged automatically again. Carries what services that forgot the merged
    ticket need to take it back (desk, track, priority; `merged_at`: when the merge happened)."""

    merged_into: uuid.UUID
    desk_id: str
    track_id: str
    priority: Priority
    reason: str
    actor: str
    merged_at: datetime | None = None


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


class FeatureRequestOutcomeSet(_TicketEvent, tag="FeatureRequestOutcomeSet", frozen=True):
    """What became of a feature request, as an agent set it: `in_sprint`, `planned`, or `declined` with
    a `reason`. The ticket's status does not change; the organisation's register shows the outcome."""

    outcome: FeatureOutcome
    actor: str
    reason: str = ""


TicketEvent = (
    TicketOpened
    | CustomerMessageAdded
    | PreflightPassed
    | PreflightFailed
    | TicketRefused
    | TicketReferred
    | DuplicateSuspected
    | DuplicateSuggested
    | KnownProblemLinked
    | MergeUndone
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
    | FeatureRequestOutcomeSet
)
