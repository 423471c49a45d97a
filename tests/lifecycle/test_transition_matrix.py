"""Every command type in every status: legal ones yield events for this ticket, illegal ones raise an
`IllegalTransition` naming the state and the command. `LEGAL` is the desk's rule book in one table:
changing where a command is allowed means changing it here, on purpose."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lifecycle_builders import (
    HISTORY,
    TICKET,
    add_message,
    assign,
    at,
    change_priority,
    close,
    fail_preflight,
    link_known_problem,
    mark_duplicate,
    merge,
    open_ticket,
    pass_preflight,
    refer,
    refuse,
    reopen,
    reply,
    resolve,
    route,
    set_feature_outcome,
    start,
    unassign,
    undo_merge,
    wait_for_customer,
)

from ticketflow.contracts import commands as c
from ticketflow.lifecycle import IllegalTransition, Status, decide, fold

S = Status
OPEN = {S.OPENED, S.AWAITING_CUSTOMER, S.READY, S.ROUTED, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}
PREFLIGHT = {S.OPENED, S.AWAITING_CUSTOMER}
WORKABLE = {S.ROUTED, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}

# Each command as it would change something (a new message id, another queue, another agent, another
# priority), and the statuses where a support desk allows it.
LEGAL: dict[str, tuple[Callable[[], c.TicketCommand], set[Status]]] = {
    "OpenTicket": (open_ticket, {S.NEW}),
    "AddCustomerMessage": (add_message, OPEN | {S.RESOLVED}),
    "RecordPreflightPassed": (pass_preflight, PREFLIGHT),
    "RecordPreflightFailed": (fail_preflight, PREFLIGHT),
    "RefuseTicket": (refuse, PREFLIGHT),
    "ReferTicket": (refer, OPEN),
    "MarkDuplicate": (mark_duplicate, PREFLIGHT),  # preflight's automatic merge, before any SLA clock
    "LinkKnownProblem": (link_known_problem, OPEN | {S.RESOLVED}),
    # Only after an automatic merge (DuplicateSuspected); HISTORY's merged ticket was merged by a lead.
    "UndoMerge": (undo_merge, set()),
    "RouteTicket": (route, {S.READY, S.ROUTED, S.ASSIGNED, S.IN_PROGRESS}),
    "AssignTicket": (assign, WORKABLE),
    "UnassignTicket": (unassign, {S.ASSIGNED, S.IN_PROGRESS}),
    "StartWork": (start, {S.ASSIGNED}),
    "ReplyAsAgent": (reply, WORKABLE),
    "WaitForCustomer": (wait_for_customer, {S.ASSIGNED, S.IN_PROGRESS}),
    "ResolveTicket": (resolve, WORKABLE),
    "ReopenTicket": (reopen, {S.RESOLVED}),
    "CloseTicket": (close, {S.RESOLVED, S.REFERRED, S.AWAITING_CUSTOMER}),
    "MergeTicket": (merge, OPEN | {S.RESOLVED}),
    "ChangePriority": (change_priority, OPEN),
    # Before the ticket is closed: an agent answers the feature request, then resolves or closes it.
    "SetFeatureRequestOutcome": (set_feature_outcome, OPEN | {S.RESOLVED}),
}


MATRIX = [(name, status) for name in LEGAL for status in Status]


def test_the_matrix_names_every_command_type_and_every_status_has_a_history() -> None:
    assert set(LEGAL) == {cls.__name__ for cls in c.TicketCommand.__args__}  # type: ignore[attr-defined]
    assert {status: fold(history).status for status, history in HISTORY.items()} == {s: s for s in Status}


@pytest.mark.parametrize(("command_name", "status"), MATRIX, ids=[f"{n}-{s.value}" for n, s in MATRIX])
def test_every_command_in_every_status(command_name: str, status: Status) -> None:
    make, legal_in = LEGAL[command_name]
    command, state = make(), fold(HISTORY[status])
    if status in legal_in:
        events = decide(command, state)
        assert events, "a legal command that changes something yields events"
        assert all(event.ticket_id == TICKET for event in events)
        assert fold(events, state).version == state.version + len(events)
    else:
        raised = at(status).when(command).then_raises(IllegalTransition)
        assert (raised.status, raised.command) == (status, command_name)


@pytest.mark.parametrize("status", [S.REFUSED, S.CLOSED, S.MERGED])
@pytest.mark.parametrize("command_name", list(LEGAL))
def test_a_terminal_ticket_refuses_every_command(status: Status, command_name: str) -> None:
    at(status).when(LEGAL[command_name][0]()).then_raises()


def test_the_error_names_the_state_and_the_command() -> None:
    raised = at(S.CLOSED).when(resolve()).then_raises()
    assert str(raised) == "ResolveTicket is not allowed in state closed"
