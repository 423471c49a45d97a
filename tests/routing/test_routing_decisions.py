"""Given events, when a trigger, then events: the pure routing decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from routing_builders import DESKS, GOLD_TENANT, MONDAY_11_MSK, given, joined, opened

from ticketflow.contracts import commands as c
from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.routing.domain.decisions import (
    Rejected,
    decide_backlog,
    decide_command,
    decide_ready,
    decide_reassignment,
)
from ticketflow.routing.domain.state import RoutingState

NOW = int(MONDAY_11_MSK.timestamp())
T = uuid.UUID("00000000-0000-7000-8000-000000000001")


def ready(state: RoutingState, ticket_id: uuid.UUID = T, category: str = "configuration", **kw: object) -> None:
    given(state, opened(ticket_id, **kw), e.PreflightPassed(ticket_id, category))  # type: ignore[arg-type]


def command(cmd: c.TicketCommand, actor: str = "lead-b24") -> CommandEnvelope:
    return CommandEnvelope(uuid.uuid4(), MONDAY_11_MSK, actor, cmd)


def test_a_ready_ticket_is_routed_and_assigned_in_one_decision() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None and decision.expected_version == 2
    assert decision.events == [
        e.TicketRouted(T, "b24-box", "standard", "normal", "b24-box", "rule b24-box: desk=bitrix24-box, track=box"),
        e.TicketAssigned(T, "anna", "round_robin", "routing"),
    ]


def test_a_redelivered_preflight_passed_decides_nothing() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events)
    assert decide_ready(state, T, NOW) is None


@pytest.mark.parametrize("status", ["offline", "away"])
def test_agents_not_online_never_receive_tickets(status: str) -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), r.AgentStatusChanged("anna", status))  # type: ignore[arg-type]
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    assert [type(x) for x in decision.events] == [e.TicketRouted]


def test_partner_referral_queue_gets_no_assignee() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "partner-referral"))
    ready(state, category="custom_development")
    decision = decide_ready(state, T, NOW)
    assert decision is not None and [type(x) for x in decision.events] == [e.TicketRouted]


def test_capacity_is_hard_and_the_oldest_waiting_ticket_gets_the_freed_slot() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box", capacity=1))
    first, second, third = (uuid.UUID(int=i) for i in (1, 2, 3))
    for ticket_id in (first, second, third):
        ready(state, ticket_id)
        decision = decide_ready(state, ticket_id, NOW)
        assert decision is not None
        given(state, *decision.events)
    assert state.tickets[first].state.assignee == "anna"
    assert state.tickets[second].state.assignee is None and state.tickets[third].state.assignee is None
    assert decide_backlog(state, "b24-box", NOW) is None
    given(state, e.TicketResolved(first, "fixed", "anna"))
    decision = decide_backlog(state, "b24-box", NOW)
    assert decision is not None and decision.ticket_id == second
    assert decision.events == [e.TicketAssigned(second, "anna", "round_robin", "routing")]


def test_an_urgent_waiting_ticket_goes_before_older_normal_ones() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box", capacity=1))
    busy, older, urgent = (uuid.UUID(int=i) for i in (1, 2, 3))
    for ticket_id, priority in ((busy, "normal"), (older, "normal"), (urgent, "urgent")):
        ready(state, ticket_id, priority=priority)
        decision = decide_ready(state, ticket_id, NOW)
        assert decision is not None
        given(state, *decision.events)
    given(state, e.TicketResolved(busy, "fixed", "anna"))
    decision = decide_backlog(state, "b24-box", NOW)
    assert decision is not None and decision.ticket_id == urgent


def test_skill_based_prefers_skill_and_language_then_falls_back_and_says_so() -> None:
    state = RoutingState(DESKS)
    given(
        state,
        *joined("boris", "express-technical-premium", skills=["express-server"], languages=["en"]),
        *joined("vera", "express-technical-premium", skills=["express-server"], languages=["ru"]),
        *joined("gleb", "express-technical-premium", languages=["ru"]),
    )
    ready(state, desk="express", track="technical", tenant=GOLD_TENANT)
    decision = decide_ready(state, T, NOW)
    assert decision is not None and decision.events[1] == e.TicketAssigned(T, "vera", "skill_based")
    assert "skills ['express-server'] and language ru" in decision.why
    given(state, r.AgentStatusChanged("vera", "offline"))
    other = uuid.UUID(int=99)
    ready(state, other, desk="express", track="technical", tenant=GOLD_TENANT)
    decision = decide_ready(state, other, NOW)
    assert decision is not None and decision.events[1] == e.TicketAssigned(other, "boris", "skill_based")
    assert "fallback skills ['express-server'] (any language)" in decision.why


def test_an_agent_off_shift_gets_nothing_even_when_online() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), r.AgentShiftSet("anna", weekly={"mon": ("14:00-19:00",)}))
    ready(state)
    decision = decide_ready(state, T, NOW)  # 11:00 Moscow: before her shift
    assert decision is not None and len(decision.events) == 1
    given(state, *decision.events)
    afternoon = int(datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp())  # 15:00 Moscow
    assert decide_backlog(state, "b24-box", afternoon) is not None


def test_no_answer_within_business_minutes_reassigns_and_tells_agent_and_lead() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), *joined("boris", "b24-box"))
    friday_1850 = datetime(2026, 11, 27, 15, 50, tzinfo=UTC)  # 18:50 Moscow; desk closes at 19:00
    given(state, opened(T, at=friday_1850), e.PreflightPassed(T, "configuration"), at=friday_1850)
    decision = decide_ready(state, T, int(friday_1850.timestamp()))
    assert decision is not None
    given(state, *decision.events, at=friday_1850)
    # 10 business minutes on Friday + 20 on Monday: due Monday 10:20 Moscow, not Friday 19:20.
    assert decide_reassignment(state, int(datetime(2026, 11, 30, 7, 19, tzinfo=UTC).timestamp())) is None
    due = decide_reassignment(state, int(datetime(2026, 11, 30, 7, 20, tzinfo=UTC).timestamp()))
    assert due is not None
    assert due.events == [
        e.TicketUnassigned(T, "anna", "no answer within 30 business minutes", "routing", lead_id="lead-b24"),
        e.TicketAssigned(T, "boris", "round_robin", "routing"),
    ]


def test_an_answer_from_the_assignee_cancels_the_reassignment() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), *joined("boris", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events, e.AgentReplied(T, "anna", "m1", "looking"))
    assert decide_reassignment(state, NOW + 10 * 24 * 3600) is None


def test_manual_assign_records_the_actor_and_unassigns_the_previous_agent() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), *joined("boris", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events)
    manual = decide_command(state, command(c.AssignTicket(T, "boris")), NOW)
    assert manual is not None
    assert manual.events == [
        e.TicketUnassigned(T, "anna", "reassigned to boris", "lead-b24"),
        e.TicketAssigned(T, "boris", "manual", "lead-b24"),
    ]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: c.AssignTicket(T, "nobody"), "unknown agent nobody"),
        (lambda: c.AssignTicket(uuid.UUID(int=7), "anna"), f"unknown ticket {uuid.UUID(int=7)}"),
        (lambda: c.RouteTicket(T, "nowhere", "", "normal", ""), "unknown queue nowhere"),
        (lambda: c.UnassignTicket(T, "why not"), "UnassignTicket is not allowed in state routed"),
    ],
)
def test_bad_commands_are_rejected_with_the_reason(make: object, reason: str) -> None:
    state = RoutingState(DESKS)
    given(state, r.AgentJoinedQueue("anna", "b24-box"))  # offline: nothing gets assigned
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events)
    with pytest.raises(Rejected, match=reason):
        decide_command(state, command(make()), NOW)  # type: ignore[operator]


def test_manual_assign_to_an_offline_agent_is_rejected() -> None:
    state = RoutingState(DESKS)
    given(state, r.AgentJoinedQueue("anna", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events)
    with pytest.raises(Rejected, match="agent anna is offline"):
        decide_command(state, command(c.AssignTicket(T, "anna")), NOW)


def test_move_queue_and_change_priority_by_command() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"), *joined("ivan", "triage"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events)
    moved = decide_command(state, command(c.RouteTicket(T, "triage", "", "high", "")), NOW)
    assert moved is not None
    assert moved.events == [
        e.TicketUnassigned(T, "anna", "moved to queue triage", "lead-b24"),
        e.TicketRouted(T, "triage", "standard", "high", "manual", "moved to triage by lead-b24"),
        e.TicketAssigned(T, "ivan", "least_loaded"),
    ]
    given(state, *moved.events)
    assert state.roster.agents["anna"].open_tickets == {}
    changed = decide_command(state, command(c.ChangePriority(T, "urgent", "someone")), NOW)
    assert changed is not None
    assert changed.events == [e.PriorityChanged(T, "high", "urgent", "lead-b24")]
    given(state, *changed.events)
    assert state.roster.agents["ivan"].load == 6


def test_commands_that_are_not_routing_s_are_left_alone() -> None:
    state = RoutingState(DESKS)
    ready(state)
    assert decide_command(state, command(c.ResolveTicket(T, "done", "anna")), NOW) is None


def test_a_closed_ticket_is_forgotten_and_commands_for_it_are_rejected_as_closed() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"))
    ready(state)
    decision = decide_ready(state, T, NOW)
    assert decision is not None
    given(state, *decision.events, e.TicketResolved(T, "fixed", "anna"), e.TicketClosed(T, "done", "anna"))
    assert T not in state.tickets and state.roster.agents["anna"].open_tickets == {}
    with pytest.raises(Rejected, match=f"ticket {T} is closed"):
        decide_command(state, command(c.AssignTicket(T, "anna")), NOW)


def test_a_full_queue_overflows_to_its_overflow_queue_when_someone_there_is_free() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box", capacity=1), *joined("ivan", "triage"))
    first, second = uuid.UUID(int=1), uuid.UUID(int=2)
    ready(state, first)
    decision = decide_ready(state, first, NOW)
    assert decision is not None and decision.events[1] == e.TicketAssigned(first, "anna", "round_robin")
    given(state, *decision.events)
    ready(state, second)
    decision = decide_ready(state, second, NOW)
    assert decision is not None
    assert decision.events == [
        e.TicketRouted(
            second,
            "triage",
            "standard",
            "normal",
            "b24-box",
            "rule b24-box: desk=bitrix24-box, track=box; overflow: nobody available in b24-box",
        ),
        e.TicketAssigned(second, "ivan", "least_loaded"),
    ]


def test_an_automatic_merge_is_kept_so_an_undone_one_is_routed_when_preflight_passes_it_again() -> None:
    state = RoutingState(DESKS)
    given(state, *joined("anna", "b24-box"))
    other = uuid.uuid4()
    given(state, opened(T), e.DuplicateSuspected(T, other, 0.9))
    assert T in state.tickets and T not in state.ended  # an agent may still undo it
    given(
        state,
        e.MergeUndone(T, other, "bitrix24-box", "box", "normal", "another requester's ticket", "lead"),
        e.PreflightPassed(T, "configuration"),
    )
    decision = decide_ready(state, T, NOW)
    assert decision is not None and [type(x) for x in decision.events] == [e.TicketRouted, e.TicketAssigned]
    given(state, opened(uuid.UUID(int=7)), e.TicketMerged(uuid.UUID(int=7), other, "lead"))
    assert uuid.UUID(int=7) in state.ended  # a person's merge is final: forgotten
