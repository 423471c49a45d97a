"""Ticket state as the decider sees it: only what decisions need."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from ticketflow.contracts.values import ChatRef, FeatureOutcome, Priority, Requester


class Status(StrEnum):
    NEW = "new"
    OPENED = "opened"  # waiting for preflight
    AWAITING_CUSTOMER = "awaiting_customer"  # preflight failed: the customer must fix something
    REFUSED = "refused"
    REFERRED = "referred"
    READY = "ready"  # preflight passed, not yet routed
    ROUTED = "routed"  # in a queue, nobody assigned
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    MERGED = "merged"


OPEN = frozenset(
    {
        Status.OPENED,
        Status.AWAITING_CUSTOMER,
        Status.READY,
        Status.ROUTED,
        Status.ASSIGNED,
        Status.IN_PROGRESS,
        Status.WAITING_ON_CUSTOMER,
    }
)
TERMINAL = frozenset({Status.REFUSED, Status.CLOSED, Status.MERGED})
WITH_ASSIGNEE = frozenset({Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER})


class TicketState(msgspec.Struct, frozen=True):
    ticket_id: uuid.UUID | None = None
    status: Status = Status.NEW
    version: int = 0
    desk_id: str = ""
    track_id: str = ""
    chat: ChatRef | None = None
    requester: Requester | None = None
    priority: Priority = "normal"
    category: str | None = None
    queue_id: str | None = None
    tier: str | None = None
    assignee: str | None = None
    merged_into: uuid.UUID | None = None
    reopen_count: int = 0
    message_ids: frozenset[str] = frozenset()
    # An automatic merge (DuplicateSuspected) an agent may undo; a MergeTicket by a person may not.
    auto_merged: bool = False
    merged_at: datetime | None = None
    merge_undone: bool = False  # never merged automatically again (preflight suggests instead)
    known_problem: uuid.UUID | None = None
    suggested_duplicates: frozenset[uuid.UUID] = frozenset()
    feature_outcome: FeatureOutcome | None = None  # what became of a feature request (and why, if declined)
    feature_reason: str = ""


class IllegalTransition(Exception):
    """A command that the ticket's state does not allow. Names both, for logs and dead letters."""

    def __init__(self, state: TicketState, command: object, why: str = "") -> None:
        self.status = state.status
        self.command = type(command).__name__
        detail = f": {why}" if why else ""
        super().__init__(f"{self.command} is not allowed in state {self.status.value}{detail}")
