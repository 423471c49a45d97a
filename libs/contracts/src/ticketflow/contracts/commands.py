"""Commands: requests to change a ticket. They may be refused; events may not.

They arrive from services (intake, preflight, routing) and from people (agents, SREs) through the
`ticket.commands` topic wrapped in a `CommandEnvelope`."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from ticketflow.contracts.values import Attachment, ChatRef, CheckEvidence, FeatureOutcome, Priority, Requester


class _Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    ticket_id: uuid.UUID


class OpenTicket(_Command, tag="OpenTicket", frozen=True):
    desk_id: str
    track_id: str
    chat: ChatRef
    requester: Requester
    text: str
    platform_message_id: str
    opened_at: datetime
    priority: Priority = "normal"
    attachments: tuple[Attachment, ...] = ()


class AddCustomerMessage(_Command, tag="AddCustomerMessage", frozen=True):
    platform_message_id: str
    text: str
    received_at: datetime
    sender_id: str = ""
    attachments: tuple[Attachment, ...] = ()


class DuplicateCandidate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Another requester's ticket that looks the same: shown to the agent, never to the customer."""

    ticket_id: uuid.UUID
    similarity: float


class RecordPreflightPassed(_Command, tag="RecordPreflightPassed", frozen=True):
    category: str
    checks: tuple[CheckEvidence, ...] = ()
    suggested_duplicates: tuple[DuplicateCandidate, ...] = ()  # each becomes a DuplicateSuggested


class RecordPreflightFailed(_Command, tag="RecordPreflightFailed", frozen=True):
    checks: tuple[CheckEvidence, ...]
    suggested_duplicates: tuple[DuplicateCandidate, ...] = ()


class RefuseTicket(_Command, tag="RefuseTicket", frozen=True):
    code: str
    reason: str


class ReferTicket(_Command, tag="ReferTicket", frozen=True):
    category: str
    reason: str
    actor: str = "preflight"  # an agent's referral (the dashboard): the agent, from the envelope


class MarkDuplicate(_Command, tag="MarkDuplicate", frozen=True):
    """Preflight only: merge into an open ticket of the same requester (or organisation)."""

    duplicate_of: uuid.UUID
    similarity: float
    suspected_at: datetime | None = None


class LinkKnownProblem(_Command, tag="LinkKnownProblem", frozen=True):
    problem_ticket_id: uuid.UUID
    actor: str


class UndoMerge(_Command, tag="UndoMerge", frozen=True):
    reason: str
    actor: str


class RouteTicket(_Command, tag="RouteTicket", frozen=True):
    queue_id: str
    tier: str
    priority: Priority
    rule_id: str
    reason: str = ""
    actor: str = "routing"


class AssignTicket(_Command, tag="AssignTicket", frozen=True):
    agent_id: str
    strategy: str = "manual"
    actor: str = "routing"


class UnassignTicket(_Command, tag="UnassignTicket", frozen=True):
    reason: str
    actor: str = "routing"


class StartWork(_Command, tag="StartWork", frozen=True):
    agent_id: str


class ReplyAsAgent(_Command, tag="ReplyAsAgent", frozen=True):
    agent_id: str
    message_id: str
    text: str


class WaitForCustomer(_Command, tag="WaitForCustomer", frozen=True):
    reason: str
    actor: str


class ResolveTicket(_Command, tag="ResolveTicket", frozen=True):
    resolution: str
    actor: str


class ReopenTicket(_Command, tag="ReopenTicket", frozen=True):
    reason: str
    actor: str


class CloseTicket(_Command, tag="CloseTicket", frozen=True):
    reason: str
    actor: str


class MergeTicket(_Command, tag="MergeTicket", frozen=True):
    into_ticket_id: uuid.UUID
    actor: str


class ChangePriority(_Command, tag="ChangePriority", frozen=True):
    priority: Priority
    actor: str


class SetFeatureRequestOutcome(_Command, tag="SetFeatureRequestOutcome", frozen=True):
    """An agent records what became of a feature request: taken into a sprint, planned, or declined
    (a reason is then required). Setting it again with another outcome replaces it."""

    outcome: FeatureOutcome
    actor: str
    reason: str = ""


TicketCommand = (
    OpenTicket
    | AddCustomerMessage
    | RecordPreflightPassed
    | RecordPreflightFailed
    | RefuseTicket
    | ReferTicket
    | MarkDuplicate
    | LinkKnownProblem
    | UndoMerge
    | RouteTicket
    | AssignTicket
    | UnassignTicket
    | StartWork
    | ReplyAsAgent
    | WaitForCustomer
    | ResolveTicket
    | ReopenTicket
    | CloseTicket
    | MergeTicket
    | ChangePriority
    | SetFeatureRequestOutcome
)


class CommandEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A command on `ticket.commands`: `command_id` makes a redelivered command a no-op."""

    command_id: uuid.UUID
    issued_at: datetime
    actor: str
    command: TicketCommand
    correlation_id: uuid.UUID | None = None
    traceparent: str | None = None


command_envelope_decoder = msgspec.json.Decoder(CommandEnvelope)

# What people (agents, leads, SREs) may send on `ticket.commands`: intake applies the agent workflow
# commands, routing the queue and assignment commands. The rest are decided by the services themselves
# and never travel on the topic; one arriving there is dead-lettered "not an operator command" (intake).
OPERATOR_COMMANDS: tuple[type[TicketCommand], ...] = (
    StartWork, ReplyAsAgent, WaitForCustomer, ResolveTicket, ReopenTicket, CloseTicket, MergeTicket, UndoMerge,
    LinkKnownProblem, SetFeatureRequestOutcome, ReferTicket, AssignTicket, UnassignTicket, RouteTicket,
    ChangePriority,
)  # fmt: skip
