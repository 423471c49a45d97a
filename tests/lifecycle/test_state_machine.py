"""Random command sequences never bring a ticket into an invalid state.

Small pools of agents, queues, priorities and message ids make collisions (same agent, same queue,
a retried message) common, so the no-op and compound paths are walked as often as the plain ones."""

from __future__ import annotations

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from lifecycle_builders import AT, CHAT, HISTORY, OTHER_TICKET, SSL_OK, SSL_SELF_SIGNED, TICKET

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.contracts.values import PRIORITIES, Requester
from ticketflow.lifecycle import IllegalTransition, Status, decide, evolve, fold, initial_state

S = Status
TERMINAL = {S.REFUSED, S.CLOSED, S.MERGED}
WITH_ASSIGNEE = {S.ASSIGNED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}
WITHOUT_ASSIGNEE = {S.NEW, S.OPENED, S.AWAITING_CUSTOMER, S.READY, S.ROUTED, S.REFUSED, S.REFERRED, S.MERGED}
QUEUED_OR_LATER = {S.ROUTED, *WITH_ASSIGNEE}

agents = st.sampled_from(["ann", "bob", "cat"])
queues = st.sampled_from(["box-l1", "box-l2"])
tiers = st.sampled_from(["l1", "l2"])
priorities = st.sampled_from(PRIORITIES)
message_ids = st.sampled_from(["m1", "m2", "m3", "m4"])
tickets = st.sampled_from([TICKET, OTHER_TICKET])  # merging into itself must be refused
words = st.sampled_from(["x", "why"])
checks = st.sampled_from([(), (SSL_OK,), (SSL_SELF_SIGNED,), (SSL_OK, SSL_SELF_SIGNED)])
T = st.just(TICKET)

commands: st.SearchStrategy[c.TicketCommand] = st.one_of(
    st.builds(c.OpenTicket, T, st.just("box"), st.just("box"), st.just(CHAT), st.just(Requester("u")), words,
              message_ids, st.just(AT), priorities),
    st.builds(c.AddCustomerMessage, T, message_ids, words, st.just(AT)),
    st.builds(c.RecordPreflightPassed, T, words, checks),
    st.builds(c.RecordPreflightFailed, T, checks),
    st.builds(c.RefuseTicket, T, words, words),
    st.builds(c.ReferTicket, T, words, words),
    st.builds(c.MarkDuplicate, T, tickets, st.just(0.9)),
    st.builds(c.RouteTicket, T, queues, tiers, priorities, words, words, agents),
    st.builds(c.AssignTicket, T, agents, words, agents),
    st.builds(c.UnassignTicket, T, words, agents),
    st.builds(c.StartWork, T, agents),
    st.builds(c.ReplyAsAgent, T, agents, message_ids, words),
    st.builds(c.WaitForCustomer, T, words, agents),
    st.builds(c.ResolveTicket, T, words, agents),
    st.builds(c.ReopenTicket, T, words, agents),
    st.builds(c.CloseTicket, T, words, agents),
    st.builds(c.MergeTicket, T, tickets, agents),
    st.builds(c.ChangePriority, T, priorities, agents),
    st.builds(c.UndoMerge, T, words, agents),
    st.builds(c.LinkKnownProblem, T, tickets, agents),
)  # fmt: skip


class TicketLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = initial_state()
        self.events: list[TicketEvent] = []

    @initialize(start=st.sampled_from([s for s in Status if s not in TERMINAL]))
    def start_somewhere(self, start: Status) -> None:
        """Start from a history ending in any non-terminal status (NEW included), so that short runs
        also explore the late statuses instead of spending their steps getting there."""
        self.events = list(HISTORY[start])
        self.state = fold(self.events)

    @rule(command=commands)
    def apply(self, command: c.TicketCommand) -> None:
        before = self.state
        try:
            produced = decide(command, before)  # anything but IllegalTransition fails the test
        except IllegalTransition as refused:
            assert (refused.status, refused.command) == (before.status, type(command).__name__)
            event(f"refused {type(command).__name__} in {before.status.value}")
            return
        assert all(x.ticket_id == command.ticket_id for x in produced)
        if before.status in TERMINAL:  # only an automatic merge comes back, and only by UndoMerge
            undo = before.auto_merged and isinstance(command, c.UndoMerge)
            assert undo or produced == [], f"{before.status.value} accepted {command!r}"
        for produced_event in produced:
            self.state = evolve(self.state, produced_event)
            self.events.append(produced_event)
        event(f"reached {self.state.status.value}")

    @invariant()
    def status_is_a_status(self) -> None:
        assert isinstance(self.state.status, Status)

    @invariant()
    def assignee_exactly_while_someone_works_on_it(self) -> None:
        if self.state.status in WITH_ASSIGNEE:
            assert self.state.assignee is not None
        if self.state.status in WITHOUT_ASSIGNEE:
            assert self.state.assignee is None

    @invariant()
    def a_queued_ticket_has_a_queue(self) -> None:
        if self.state.status in QUEUED_OR_LATER:
            assert self.state.queue_id is not None and self.state.tier is not None

    @invariant()
    def merged_exactly_when_merged_into_another_ticket(self) -> None:
        assert (self.state.status is S.MERGED) == (self.state.merged_into is not None)
        assert self.state.merged_into != TICKET

    @invariant()
    def version_counts_the_events(self) -> None:
        assert self.state.version == len(self.events)

    @invariant()
    def folding_the_log_gives_the_same_state(self) -> None:
        assert fold(self.events) == self.state

    @invariant()
    def bookkeeping_matches_the_log(self) -> None:
        seen = {x.platform_message_id for x in self.events if isinstance(x, e.TicketOpened | e.CustomerMessageAdded)}
        assert self.state.message_ids == seen
        assert self.state.reopen_count == sum(isinstance(x, e.TicketReopened) for x in self.events)

    @invariant()
    def every_unassign_names_the_agent_who_had_it(self) -> None:
        holder: str | None = None
        for x in self.events:
            if isinstance(x, e.TicketAssigned):
                assert holder is None, "assigned over an assignee without unassigning first"
                holder = x.agent_id
            elif isinstance(x, e.TicketUnassigned):
                assert x.agent_id == holder
                holder = None
        assert holder == self.state.assignee


TicketLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_ticket_lifecycle = TicketLifecycle.TestCase
