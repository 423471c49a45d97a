"""The agent's actions on the ticket page, as the lifecycle's commands (pure).

The actor is always the agent of the visitor's token (`agent_id`), never a field of the form; the command id
comes from the form, where the page put a fresh one when it drew the form, so a double click or a resent
form is one command. Which service applies each command on `ticket.commands`: intake the agent workflow
(reply, wait, resolve, reopen, refer, undo a merge, a feature request's outcome), routing the priority."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from ticketflow.contracts import commands as c
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.values import FeatureOutcome, Priority
from ticketflow.lifecycle import Status
from ticketflow.lifecycle.decider import WORKABLE
from ticketflow.lifecycle.state import OPEN

PRIORITIES: tuple[str, ...] = get_args(Priority)
OUTCOMES: tuple[str, ...] = get_args(FeatureOutcome)
REFERRED_CATEGORY = "out_of_scope"  # a referred ticket without a category yet
MAX_TEXT = 4000  # a chat message an agent types; longer is a paste gone wrong


class ActionRefused(ValueError):
    """The form cannot become a command; `key` names the page's text (domain/texts.py) that says why."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True)
class Action:
    """One form of the ticket page: its fields (besides command_id), and the statuses it is offered in (the
    lifecycle's own sets; the decider still decides when it is sent, against the ticket's current state)."""

    name: str
    fields: tuple[str, ...]
    offered_in: frozenset[Status]


ACTIONS = {
    a.name: a
    for a in (
        Action("reply", ("text",), WORKABLE),
        Action("request_info", ("text",), frozenset({Status.ASSIGNED, Status.IN_PROGRESS})),
        Action("priority", ("priority",), OPEN),
        Action("resolve", ("text",), WORKABLE),
        Action("reopen", ("text",), frozenset({Status.RESOLVED})),
        Action("refer", ("text",), OPEN),
        Action("undo_merge", ("text",), frozenset({Status.MERGED})),
        Action("feature_outcome", ("outcome", "text"), OPEN | {Status.RESOLVED}),
    )
}
FEATURE_REQUEST = "feature_request"  # the category whose outcome the requester is told


def offered(status: str, category: str | None) -> list[Action]:
    """The forms the ticket page shows for a ticket in `status` (a feature request's outcome only for one)."""
    return [
        a
        for a in ACTIONS.values()
        if status in a.offered_in and (a.name != "feature_outcome" or category == FEATURE_REQUEST)
    ]


def command_id(form: Mapping[str, str]) -> uuid.UUID:
    try:
        return uuid.UUID(form.get("command_id", ""))
    except ValueError:
        raise ActionRefused("bad_command_id") from None


def _text(form: Mapping[str, str], required: bool = True) -> str:
    text = form.get("text", "").replace("\x00", "\ufffd").strip()
    if required and not text:
        raise ActionRefused("text_required")
    if len(text) > MAX_TEXT:
        raise ActionRefused("text_too_long", limit=str(MAX_TEXT))
    return text


def command_for(
    action: str, ticket_id: uuid.UUID, agent_id: str, form: Mapping[str, str], category: str | None = None
) -> c.TicketCommand:
    """The command an action sends (`category`: the ticket's, kept by a referral). Raises `ActionRefused`
    for an unknown action or a bad form."""
    if action not in ACTIONS:
        raise ActionRefused("unknown_action", action=action)
    match action:
        case "reply":
            return c.ReplyAsAgent(ticket_id, agent_id, str(command_id(form)), _text(form))
        case "request_info":
            return c.WaitForCustomer(ticket_id, _text(form), agent_id)
        case "priority":
            priority = form.get("priority", "")
            if priority not in PRIORITIES:
                raise ActionRefused("bad_priority", allowed=", ".join(PRIORITIES))
            return c.ChangePriority(ticket_id, priority, agent_id)  # type: ignore[arg-type]
        case "resolve":
            return c.ResolveTicket(ticket_id, _text(form, required=False), agent_id)
        case "reopen":
            return c.ReopenTicket(ticket_id, _text(form), agent_id)
        case "refer":
            return c.ReferTicket(ticket_id, category or REFERRED_CATEGORY, _text(form), agent_id)
        case "undo_merge":
            return c.UndoMerge(ticket_id, _text(form), agent_id)
        case _:  # feature_outcome
            outcome = form.get("outcome", "")
            if outcome not in OUTCOMES:
                raise ActionRefused("bad_outcome", allowed=", ".join(OUTCOMES))
            reason = _text(form, required=outcome == "declined")
            return c.SetFeatureRequestOutcome(ticket_id, outcome, agent_id, reason)  # type: ignore[arg-type]


def applied_position(history: Sequence[EventEnvelope], command: uuid.UUID) -> int | None:
    """The global position of the last event a command caused (its events carry the command id as their
    causation, whichever service applied it); None: not applied (yet)."""
    caused = [e.position for e in history if e.metadata.causation_id == command and e.position is not None]
    return max(caused) if caused else None
