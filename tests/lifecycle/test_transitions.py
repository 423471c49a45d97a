"""Given/when/then tests for every transition of the ticket decider: the exact events of each legal
transition, including the compound ones, and representative refusals. Which command is legal in which
status at all is checked exhaustively in test_transition_matrix.py."""

from __future__ import annotations

import pytest
from lifecycle_builders import (
    ANN,
    AT,
    BOB,
    HISTORY,
    OTHER_TICKET,
    SSL_OK,
    SSL_SELF_SIGNED,
    TICKET,
    add_message,
    assign,
    assigned,
    at,
    change_priority,
    close,
    fail_preflight,
    failed,
    feature_outcome_set,
    given,
    link_known_problem,
    mark_duplicate,
    merge,
    message_added,
    open_ticket,
    opened,
    pass_preflight,
    passed,
    refer,
    refuse,
    reopen,
    reopened,
    reply,
    resolve,
    resolved,
    route,
    routed,
    set_feature_outcome,
    start,
    started,
    unassign,
    unassigned,
    undo_merge,
    wait_for_customer,
    waiting,
)

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.values import CheckEvidence
from ticketflow.lifecycle import Status, decide, fold

S = Status
OPEN = {S.OPENED, S.AWAITING_CUSTOMER, S.READY, S.ROUTED, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}
WORKABLE = {S.ROUTED, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}


def in_order(statuses: set[Status]) -> list[Status]:
    return [s for s in Status if s in statuses]


# --- opening and customer messages -------------------------------------------------------------


def test_open_a_new_ticket() -> None:
    state = at(S.NEW).when(open_ticket("m1", "high")).then(opened("m1", "high"))
    assert (state.status, state.priority, state.message_ids, state.version) == (S.OPENED, "high", {"m1"}, 1)


def test_opening_an_existing_ticket_again_is_refused() -> None:
    at(S.OPENED).when(open_ticket()).then_raises(match="exists already")


@pytest.mark.parametrize("status", in_order(OPEN))
def test_a_customer_message_on_an_open_ticket_is_added(status: Status) -> None:
    state = at(status).when(add_message("m2")).then(message_added("m2"))
    assert "m2" in state.message_ids
    assert state.status is (S.IN_PROGRESS if status is S.WAITING_ON_CUSTOMER else status)


def test_a_customer_message_on_a_resolved_ticket_reopens_it_with_its_assignee() -> None:
    state = at(S.RESOLVED).when(add_message("m2")).then(message_added("m2"), reopened("customer replied"))
    assert (state.status, state.assignee, state.reopen_count) == (S.IN_PROGRESS, ANN, 1)


def test_a_customer_message_on_a_ticket_resolved_unassigned_reopens_it_into_its_queue() -> None:
    history = (opened(), passed(), routed("box-l1"), resolved())
    state = given(*history).when(add_message("m2")).then(message_added("m2"), reopened("customer replied"))
    assert (state.status, state.queue_id, state.assignee) == (S.ROUTED, "box-l1", None)


@pytest.mark.parametrize("status", [s for s in Status if s is not S.NEW])
def test_the_opening_message_id_again_is_a_no_op_in_every_status(status: Status) -> None:
    at(status).when(add_message("m1")).then_nothing()  # a retried webhook: exactly one effect


def test_the_same_platform_message_id_twice_is_a_no_op_and_does_not_reopen() -> None:
    at(S.RESOLVED).when(add_message("m1")).then_nothing()
    given(*HISTORY[S.ROUTED], message_added("m2")).when(add_message("m2", "retry")).then_nothing()


@pytest.mark.parametrize("status", [S.NEW, S.REFUSED, S.REFERRED, S.CLOSED, S.MERGED])
def test_a_new_customer_message_on_a_finished_ticket_is_refused(status: Status) -> None:
    at(status).when(add_message("m9")).then_raises()


# --- preflight ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.OPENED, S.AWAITING_CUSTOMER])
def test_preflight_passed_makes_the_ticket_ready(status: Status) -> None:
    state = at(status).when(pass_preflight("updates")).then(passed("updates"))
    assert (state.status, state.category) == (S.READY, "updates")


@pytest.mark.parametrize("status", [S.OPENED, S.AWAITING_CUSTOMER])
def test_preflight_failed_waits_for_the_customer(status: Status) -> None:
    state = at(status).when(fail_preflight()).then(failed())
    assert state.status is S.AWAITING_CUSTOMER


@pytest.mark.parametrize("checks", [(), (SSL_OK,)], ids=["no-checks", "all-passed"])
def test_a_failed_preflight_needs_a_failed_check(checks: tuple[CheckEvidence, ...]) -> None:
    command = c.RecordPreflightFailed(TICKET, checks)
    at(S.OPENED).when(command).then_raises(match="at least one failed check")


def test_a_second_preflight_result_after_ready_is_refused() -> None:
    at(S.READY).when(pass_preflight()).then_raises()
    at(S.READY).when(fail_preflight(SSL_SELF_SIGNED)).then_raises()


@pytest.mark.parametrize("status", [S.OPENED, S.AWAITING_CUSTOMER])
def test_refuse_a_requester_who_may_not_use_the_desk(status: Status) -> None:
    state = at(status).when(refuse()).then(e.TicketRefused(TICKET, "not_admin", refuse().reason))
    assert (state.status, state.assignee) == (S.REFUSED, None)


def test_refer_an_out_of_scope_ticket() -> None:
    state = at(S.OPENED).when(refer()).then(e.TicketReferred(TICKET, "custom_development", refer().reason))
    assert (state.status, state.category) == (S.REFERRED, "custom_development")


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER])
def test_referring_an_assigned_ticket_unassigns_first(status: Status) -> None:
    state = (
        at(status)
        .when(refer())
        .then(
            unassigned(ANN, "referred to partners", "preflight"),
            e.TicketReferred(TICKET, "custom_development", refer().reason),
        )
    )
    assert (state.status, state.assignee) == (S.REFERRED, None)


@pytest.mark.parametrize("status", [S.OPENED, S.AWAITING_CUSTOMER])
def test_mark_a_duplicate(status: Status) -> None:
    state = at(status).when(mark_duplicate()).then(e.DuplicateSuspected(TICKET, OTHER_TICKET, 0.93))
    assert (state.status, state.merged_into, state.auto_merged) == (S.MERGED, OTHER_TICKET, True)


@pytest.mark.parametrize("status", [S.READY, S.ROUTED])
def test_a_ticket_past_preflight_is_merged_by_a_person_not_marked_duplicate(status: Status) -> None:
    at(status).when(mark_duplicate()).then_raises()


def test_a_ticket_is_not_a_duplicate_of_itself() -> None:
    at(S.OPENED).when(mark_duplicate(TICKET)).then_raises(match="itself")


MERGED_AT = AT.replace(minute=5)
AUTO_MERGED = (opened(), e.DuplicateSuspected(TICKET, OTHER_TICKET, 0.93, MERGED_AT))


def test_undo_an_automatic_merge_takes_the_ticket_back_before_preflight() -> None:
    command = undo_merge()
    state = (
        given(*AUTO_MERGED)
        .when(command)
        .then(e.MergeUndone(TICKET, OTHER_TICKET, "bitrix24-box", "box", "normal", command.reason, "lead", MERGED_AT))
    )
    assert (state.status, state.merged_into, state.merge_undone) == (S.OPENED, None, True)
    # It continues as if never merged: preflight may pass it, and it is worked like any other ticket.
    given(*AUTO_MERGED, *decide(command, fold(AUTO_MERGED))).when(pass_preflight()).then(passed())


def test_an_undone_merge_is_never_merged_automatically_again() -> None:
    undone = e.MergeUndone(TICKET, OTHER_TICKET, "bitrix24-box", "box", "normal", "wrong", "lead", MERGED_AT)
    given(*AUTO_MERGED, undone).when(mark_duplicate()).then_raises(match="undid")


def test_a_merge_by_a_person_is_not_undone_with_undo_merge() -> None:
    at(S.MERGED).when(undo_merge()).then_raises(match="only an automatic merge")


@pytest.mark.parametrize("status", [S.OPENED, S.READY, S.ROUTED, S.CLOSED])
def test_only_a_merged_ticket_has_a_merge_to_undo(status: Status) -> None:
    at(status).when(undo_merge()).then_raises()


def test_another_requesters_look_alike_is_suggested_once_and_changes_nothing_else() -> None:
    candidate = c.DuplicateCandidate(OTHER_TICKET, 0.61)
    command = c.RecordPreflightPassed(TICKET, "performance", (SSL_OK,), (candidate, candidate))
    state = at(S.OPENED).when(command).then(passed(), e.DuplicateSuggested(TICKET, OTHER_TICKET, 0.61))
    assert (state.status, state.merged_into) == (S.READY, None)
    # On a later preflight (after the customer answered follow-up questions) it is not suggested again.
    history = (opened(), failed(), e.DuplicateSuggested(TICKET, OTHER_TICKET, 0.61))
    again = c.RecordPreflightPassed(TICKET, "performance", (SSL_OK,), (candidate,))
    given(*history).when(again).then(passed())


def test_link_to_a_known_problem_keeps_the_ticket_where_it_is() -> None:
    state = at(S.ASSIGNED).when(link_known_problem()).then(e.KnownProblemLinked(TICKET, OTHER_TICKET, ANN))
    assert (state.status, state.assignee, state.known_problem) == (S.ASSIGNED, ANN, OTHER_TICKET)
    given(*HISTORY[S.ASSIGNED], e.KnownProblemLinked(TICKET, OTHER_TICKET, ANN)).when(
        link_known_problem()
    ).then_nothing()
    at(S.ASSIGNED).when(link_known_problem(TICKET)).then_raises(match="its own")


# --- routing and assignment --------------------------------------------------------------------


def test_route_a_ready_ticket() -> None:
    command = route("box-l1", "l1", "high")
    state = at(S.READY).when(command).then(e.TicketRouted(TICKET, "box-l1", "l1", "high", "rule-2", "escalated"))
    assert (state.status, state.queue_id, state.tier, state.priority) == (S.ROUTED, "box-l1", "l1", "high")


def test_route_to_the_queue_it_is_in_is_a_no_op() -> None:
    at(S.ROUTED).when(route("box-l1", "l1")).then_nothing()


def test_move_a_routed_ticket_to_another_queue() -> None:
    at(S.ROUTED).when(route()).then(e.TicketRouted(TICKET, "box-l2", "l2", "normal", "rule-2", "escalated"))


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS])
def test_moving_an_assigned_ticket_to_another_queue_unassigns_first(status: Status) -> None:
    state = (
        at(status)
        .when(route())
        .then(
            unassigned(ANN, "moved to queue box-l2", "lead"),
            e.TicketRouted(TICKET, "box-l2", "l2", "normal", "rule-2", "escalated"),
        )
    )
    assert (state.status, state.queue_id, state.assignee) == (S.ROUTED, "box-l2", None)


def test_route_to_the_same_queue_with_a_new_tier_is_recorded() -> None:
    # Escalating within the queue (l1 -> l2) is a routing decision; returning [] loses it.
    at(S.ROUTED).when(route("box-l1", "l2")).then(
        e.TicketRouted(TICKET, "box-l1", "l2", "normal", "rule-2", "escalated")
    )


def test_assign_a_routed_ticket() -> None:
    state = at(S.ROUTED).when(assign(BOB)).then(e.TicketAssigned(TICKET, BOB, "manual", "lead"))
    assert (state.status, state.assignee) == (S.ASSIGNED, BOB)


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER])
def test_assign_to_the_same_agent_is_a_no_op(status: Status) -> None:
    at(status).when(assign(ANN)).then_nothing()


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS])
def test_reassign_unassigns_the_old_agent_first(status: Status) -> None:
    state = (
        at(status)
        .when(assign(BOB))
        .then(unassigned(ANN, "reassigned to bob", "lead"), e.TicketAssigned(TICKET, BOB, "manual", "lead"))
    )
    assert (state.status, state.assignee) == (S.ASSIGNED, BOB)  # the new agent has not started yet


def test_reassign_while_waiting_on_the_customer_yields_unassign_then_assign() -> None:
    at(S.WAITING_ON_CUSTOMER).when(assign(BOB)).then(
        unassigned(ANN, "reassigned to bob", "lead"), e.TicketAssigned(TICKET, BOB, "manual", "lead")
    )


def test_reassign_while_waiting_on_the_customer_keeps_waiting() -> None:
    # The customer still owes an answer: a new agent does not restart the clock. evolve(TicketAssigned)
    # means to keep WAITING_ON_CUSTOMER, but the TicketUnassigned before it has already made it ROUTED.
    state = fold(decide(assign(BOB), fold(HISTORY[S.WAITING_ON_CUSTOMER])), fold(HISTORY[S.WAITING_ON_CUSTOMER]))
    assert (state.status, state.assignee) == (S.WAITING_ON_CUSTOMER, BOB)


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS])
def test_unassign_returns_the_ticket_to_its_queue(status: Status) -> None:
    state = at(status).when(unassign()).then(unassigned(ANN, "no answer within 15 minutes", "routing"))
    assert (state.status, state.assignee, state.queue_id) == (S.ROUTED, None, "box-l1")


def test_unassign_an_unassigned_ticket_is_refused() -> None:
    at(S.ROUTED).when(unassign()).then_raises()


# --- work ---------------------------------------------------------------------------------------


def test_the_assignee_starts_work() -> None:
    assert at(S.ASSIGNED).when(start(ANN)).then(started(ANN)).status is S.IN_PROGRESS


def test_only_the_assignee_starts_work() -> None:
    at(S.ASSIGNED).when(start(BOB)).then_raises(match="bob is not the assignee")


@pytest.mark.parametrize(
    ("status", "after"),
    [
        (S.ROUTED, S.ROUTED),
        (S.ASSIGNED, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.IN_PROGRESS),
        (S.WAITING_ON_CUSTOMER, S.WAITING_ON_CUSTOMER),
    ],
)
def test_agent_reply(status: Status, after: Status) -> None:
    state = at(status).when(reply(ANN)).then(e.AgentReplied(TICKET, ANN, "r1", "please send the logs"))
    assert state.status is after


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS])
def test_wait_for_the_customer(status: Status) -> None:
    state = at(status).when(wait_for_customer()).then(waiting())
    assert (state.status, state.assignee) == (S.WAITING_ON_CUSTOMER, ANN)


def test_the_customer_answers_a_waiting_ticket_and_work_resumes() -> None:
    state = at(S.WAITING_ON_CUSTOMER).when(add_message("m2")).then(message_added("m2"))
    assert (state.status, state.assignee) == (S.IN_PROGRESS, ANN)


@pytest.mark.parametrize("status", in_order(WORKABLE))
def test_resolve(status: Status) -> None:
    assert at(status).when(resolve()).then(resolved()).status is S.RESOLVED


def test_reopen_a_resolved_ticket() -> None:
    command = reopen()
    state = at(S.RESOLVED).when(command).then(reopened(command.reason, command.actor))
    assert (state.status, state.assignee, state.reopen_count) == (S.IN_PROGRESS, ANN, 1)


@pytest.mark.parametrize("status", [S.RESOLVED, S.REFERRED, S.AWAITING_CUSTOMER])
def test_close(status: Status) -> None:
    command = close()
    assert at(status).when(command).then(e.TicketClosed(TICKET, command.reason, command.actor)).status is S.CLOSED


@pytest.mark.parametrize("status", [S.OPENED, S.READY, S.ROUTED])
def test_merge_an_unassigned_ticket(status: Status) -> None:
    state = at(status).when(merge()).then(e.TicketMerged(TICKET, OTHER_TICKET, "lead"))
    assert (state.status, state.merged_into) == (S.MERGED, OTHER_TICKET)


@pytest.mark.parametrize("status", [S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED])
def test_merging_an_assigned_ticket_unassigns_first(status: Status) -> None:
    state = (
        at(status).when(merge()).then(unassigned(ANN, "merged", "lead"), e.TicketMerged(TICKET, OTHER_TICKET, "lead"))
    )
    assert (state.status, state.assignee) == (S.MERGED, None)


def test_a_ticket_is_not_merged_into_itself() -> None:
    at(S.ROUTED).when(merge(TICKET)).then_raises(match="itself")


def test_change_priority() -> None:
    state = (
        at(S.IN_PROGRESS).when(change_priority("urgent")).then(e.PriorityChanged(TICKET, "normal", "urgent", "lead"))
    )
    assert state.priority == "urgent"


def test_change_priority_names_the_priority_routing_set() -> None:
    history = (opened(), passed(), routed("box-l1", "l1", "high"))
    given(*history).when(change_priority("low")).then(e.PriorityChanged(TICKET, "high", "low", "lead"))


def test_the_same_priority_is_a_no_op() -> None:
    at(S.ROUTED).when(change_priority("normal")).then_nothing()


# --- feature requests (eXpress: taken into a sprint, planned, or declined with a reason) ------------


@pytest.mark.parametrize("status", [S.ROUTED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED])
def test_an_agent_sets_a_feature_requests_outcome_and_the_ticket_stays_where_it_is(status: Status) -> None:
    before = fold(HISTORY[status])
    state = at(status).when(set_feature_outcome("in_sprint")).then(feature_outcome_set("in_sprint"))
    assert (state.status, state.assignee, state.feature_outcome) == (before.status, before.assignee, "in_sprint")


def test_a_planned_feature_is_later_taken_into_a_sprint() -> None:
    history = (*HISTORY[S.IN_PROGRESS], feature_outcome_set("planned"))
    state = given(*history).when(set_feature_outcome("in_sprint")).then(feature_outcome_set("in_sprint"))
    assert (state.feature_outcome, state.feature_reason) == ("in_sprint", "")


def test_the_same_outcome_again_is_a_no_op() -> None:
    given(*HISTORY[S.IN_PROGRESS], feature_outcome_set("planned")).when(set_feature_outcome("planned")).then_nothing()


def test_declining_needs_a_reason_and_records_it() -> None:
    at(S.IN_PROGRESS).when(set_feature_outcome("declined")).then_raises(match="needs a reason")
    at(S.IN_PROGRESS).when(set_feature_outcome("declined", "   ")).then_raises(match="needs a reason")
    state = (
        at(S.IN_PROGRESS)
        .when(set_feature_outcome("declined", " not on the roadmap "))
        .then(feature_outcome_set("declined", "not on the roadmap"))
    )
    assert (state.feature_outcome, state.feature_reason) == ("declined", "not on the roadmap")
    # Declined again with another reason: recorded; with the same reason: nothing.
    given(*HISTORY[S.IN_PROGRESS], feature_outcome_set("declined", "not on the roadmap")).when(
        set_feature_outcome("declined", "duplicate of an older request")
    ).then(feature_outcome_set("declined", "duplicate of an older request"))
    given(*HISTORY[S.IN_PROGRESS], feature_outcome_set("declined", "not on the roadmap")).when(
        set_feature_outcome("declined", "not on the roadmap")
    ).then_nothing()


@pytest.mark.parametrize("status", [S.CLOSED, S.MERGED, S.REFUSED, S.REFERRED])
def test_a_finished_ticket_takes_no_outcome(status: Status) -> None:
    at(status).when(set_feature_outcome("planned")).then_raises()


# --- strays ----------------------------------------------------------------------------------------


def test_a_full_conversation_reopened_twice() -> None:
    history = [opened(), passed(), routed(), assigned(), started(), resolved()]
    state = fold(history)
    for message_id in ("m2", "m3"):
        events = decide(add_message(message_id), state)
        state = fold([*events, *decide(resolve(), fold(events, state))], state)
    assert (state.status, state.reopen_count, state.assignee) == (S.RESOLVED, 2, ANN)
    assert state.version == len(history) + 2 * 3


def test_a_command_for_another_ticket_is_refused() -> None:
    # Applied to ANN's ticket, AssignTicket(OTHER_TICKET) yields TicketUnassigned for this ticket and
    # TicketAssigned for the other one: one decision, two streams' events.
    stray = c.AssignTicket(OTHER_TICKET, BOB, "manual", "lead")
    at(S.ASSIGNED).when(stray).then_raises(match="ticket")
