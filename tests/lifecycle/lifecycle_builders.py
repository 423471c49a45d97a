"""Given/when/then for the ticket decider (in the style of emmett's DeciderSpecification), plus
builders for events, commands and one history per lifecycle status.

    given(*HISTORY[Status.ASSIGNED]).when(assign("bob")).then(unassigned("ann", ...), assigned("bob"))
    given(*HISTORY[Status.CLOSED]).when(resolve()).then_raises(IllegalTransition)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.contracts.values import ChatRef, CheckEvidence, FeatureOutcome, Priority, Requester
from ticketflow.lifecycle import IllegalTransition, Status, TicketState, decide, fold

TICKET = uuid.UUID("018f0000-0000-7000-8000-000000000001")
OTHER_TICKET = uuid.UUID("018f0000-0000-7000-8000-000000000002")
AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 11:00 Moscow time: inside support hours
CHAT = ChatRef("bitrix24", "portal-1", "chat-1")
ADMIN = Requester("user-1", "Portal Admin", roles=("portal_admin",))
SSL_OK = CheckEvidence("ssl", passed=True)
SSL_SELF_SIGNED = CheckEvidence("ssl", passed=False, reason="self-signed", remediation={"en": "install a CA cert"})
ANN, BOB = "ann", "bob"  # ANN is the assignee in every history that has one


class Outcome:
    def __init__(self, history: tuple[TicketEvent, ...], command: c.TicketCommand) -> None:
        self.history, self.command = history, command

    def then(self, *expected: TicketEvent) -> TicketState:
        """The command yields exactly `expected`; returns the state after them (for status checks)."""
        state = fold(self.history)
        produced = decide(self.command, state)
        assert produced == list(expected), f"yielded:  {produced}\nexpected: {list(expected)}"
        return fold(produced, state)

    def then_nothing(self) -> TicketState:
        return self.then()

    def then_raises(self, error: type[IllegalTransition] = IllegalTransition, match: str = "") -> IllegalTransition:
        state = fold(self.history)
        with pytest.raises(error) as raised:
            decide(self.command, state)
        message = str(raised.value)
        assert state.status.value in message and type(self.command).__name__ in message, message
        assert match in message, message
        return raised.value


class Given:
    def __init__(self, history: tuple[TicketEvent, ...]) -> None:
        self.history = history

    def when(self, command: c.TicketCommand) -> Outcome:
        return Outcome(self.history, command)


def given(*history: TicketEvent) -> Given:
    return Given(history)


# --- events -------------------------------------------------------------------------------------


def opened(message_id: str = "m1", priority: Priority = "normal") -> e.TicketOpened:
    return e.TicketOpened(TICKET, "bitrix24-box", "box", CHAT, ADMIN, "the portal is slow", message_id, AT, priority)


def message_added(message_id: str = "m2", text: str = "any news?") -> e.CustomerMessageAdded:
    return e.CustomerMessageAdded(TICKET, message_id, text, AT, "user-1")


def passed(category: str = "performance") -> e.PreflightPassed:
    return e.PreflightPassed(TICKET, category, (SSL_OK,))


def failed() -> e.PreflightFailed:
    return e.PreflightFailed(TICKET, (SSL_SELF_SIGNED,))


def routed(queue: str = "box-l1", tier: str = "l1", priority: Priority = "normal") -> e.TicketRouted:
    return e.TicketRouted(TICKET, queue, tier, priority, "rule-1", "matched")


def assigned(agent: str = ANN, strategy: str = "round_robin") -> e.TicketAssigned:
    return e.TicketAssigned(TICKET, agent, strategy, "routing")


def unassigned(agent: str, reason: str, actor: str = "routing") -> e.TicketUnassigned:
    return e.TicketUnassigned(TICKET, agent, reason, actor)


def started(agent: str = ANN) -> e.WorkStarted:
    return e.WorkStarted(TICKET, agent)


def waiting() -> e.WaitingOnCustomer:
    return e.WaitingOnCustomer(TICKET, "asked for logs", ANN)


def resolved() -> e.TicketResolved:
    return e.TicketResolved(TICKET, "cache cleared", ANN)


def reopened(reason: str = "customer replied", actor: str = "customer") -> e.TicketReopened:
    return e.TicketReopened(TICKET, reason, actor)


# --- commands -----------------------------------------------------------------------------------


def open_ticket(message_id: str = "m1", priority: Priority = "normal") -> c.OpenTicket:
    return c.OpenTicket(TICKET, "bitrix24-box", "box", CHAT, ADMIN, "the portal is slow", message_id, AT, priority)


def add_message(message_id: str = "m2", text: str = "any news?") -> c.AddCustomerMessage:
    return c.AddCustomerMessage(TICKET, message_id, text, AT, "user-1")


def pass_preflight(category: str = "performance") -> c.RecordPreflightPassed:
    return c.RecordPreflightPassed(TICKET, category, (SSL_OK,))


def fail_preflight(*checks: CheckEvidence) -> c.RecordPreflightFailed:
    return c.RecordPreflightFailed(TICKET, checks or (SSL_SELF_SIGNED,))


def refuse() -> c.RefuseTicket:
    return c.RefuseTicket(TICKET, "not_admin", "only portal administrators may contact support")


def refer() -> c.ReferTicket:
    return c.ReferTicket(TICKET, "custom_development", "custom development is done by partners")


def mark_duplicate(of: uuid.UUID = OTHER_TICKET) -> c.MarkDuplicate:
    return c.MarkDuplicate(TICKET, of, 0.93)


def undo_merge() -> c.UndoMerge:
    return c.UndoMerge(TICKET, "different problem: another requester's ticket", "lead")


def link_known_problem(problem: uuid.UUID = OTHER_TICKET) -> c.LinkKnownProblem:
    return c.LinkKnownProblem(TICKET, problem, ANN)


def route(queue: str = "box-l2", tier: str = "l2", priority: Priority = "normal") -> c.RouteTicket:
    return c.RouteTicket(TICKET, queue, tier, priority, "rule-2", "escalated", actor="lead")


def assign(agent: str = BOB) -> c.AssignTicket:
    return c.AssignTicket(TICKET, agent, "manual", "lead")


def unassign() -> c.UnassignTicket:
    return c.UnassignTicket(TICKET, "no answer within 15 minutes", "routing")


def start(agent: str = ANN) -> c.StartWork:
    return c.StartWork(TICKET, agent)


def reply(agent: str = ANN) -> c.ReplyAsAgent:
    return c.ReplyAsAgent(TICKET, agent, "r1", "please send the logs")


def wait_for_customer() -> c.WaitForCustomer:
    return c.WaitForCustomer(TICKET, "asked for logs", ANN)


def resolve() -> c.ResolveTicket:
    return c.ResolveTicket(TICKET, "cache cleared", ANN)


def reopen() -> c.ReopenTicket:
    return c.ReopenTicket(TICKET, "not fixed after all", ANN)


def close() -> c.CloseTicket:
    return c.CloseTicket(TICKET, "no reply for 7 days", "system")


def merge(into: uuid.UUID = OTHER_TICKET) -> c.MergeTicket:
    return c.MergeTicket(TICKET, into, "lead")


def change_priority(priority: Priority = "urgent") -> c.ChangePriority:
    return c.ChangePriority(TICKET, priority, "lead")


def set_feature_outcome(outcome: FeatureOutcome = "planned", reason: str = "") -> c.SetFeatureRequestOutcome:
    return c.SetFeatureRequestOutcome(TICKET, outcome, ANN, reason)


def feature_outcome_set(outcome: FeatureOutcome = "planned", reason: str = "") -> e.FeatureRequestOutcomeSet:
    return e.FeatureRequestOutcomeSet(TICKET, outcome, ANN, reason)


# --- one history per status (ANN assigned where there is an assignee; priority "normal") --------

_ROUTED = (opened(), passed(), routed())
_IN_PROGRESS = (*_ROUTED, assigned(), started())
HISTORY: dict[Status, tuple[TicketEvent, ...]] = {
    Status.NEW: (),
    Status.OPENED: (opened(),),
    Status.AWAITING_CUSTOMER: (opened(), failed()),
    Status.REFUSED: (opened(), e.TicketRefused(TICKET, "not_admin", "not an administrator")),
    Status.REFERRED: (opened(), e.TicketReferred(TICKET, "custom_development", "partners")),
    Status.READY: (opened(), passed()),
    Status.ROUTED: _ROUTED,
    Status.ASSIGNED: (*_ROUTED, assigned()),
    Status.IN_PROGRESS: _IN_PROGRESS,
    Status.WAITING_ON_CUSTOMER: (*_IN_PROGRESS, waiting()),
    Status.RESOLVED: (*_IN_PROGRESS, resolved()),
    Status.CLOSED: (*_IN_PROGRESS, resolved(), e.TicketClosed(TICKET, "confirmed", "customer")),
    Status.MERGED: (opened(), e.TicketMerged(TICKET, OTHER_TICKET, "lead")),
}


def at(status: Status) -> Given:
    """`at(Status.ASSIGNED).when(...)`: given the canonical history that ends in `status`."""
    return given(*HISTORY[status])
