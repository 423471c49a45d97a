"""What the read models need of a ticket's lifecycle (status, priority, queue, assignee), followed with the
lifecycle decider's own `evolve`, so no read model can disagree with the rules about what a status means."""

from __future__ import annotations

from typing import Any, TypeGuard

import msgspec

from ticketflow.contracts import ticket_events as t
from ticketflow.lifecycle import Status, TicketState, evolve
from ticketflow.lifecycle.state import OPEN, TERMINAL, WITH_ASSIGNEE

OPEN_STATUSES = frozenset(s.value for s in OPEN)
TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL)
# Statuses in which the assignee holds the ticket (routing counts it against the agent's capacity).
HOLDING_STATUSES = frozenset(s.value for s in WITH_ASSIGNEE)
# Waiting in a queue or worked: the backlog (ready tickets wait for routing, without a queue yet).
BACKLOG_STATUSES = frozenset({"ready", "routed", "assigned", "in_progress", "waiting_on_customer"})


class Lifecycle(msgspec.Struct):
    status: str
    priority: str
    queue_id: str | None = None
    assignee: str | None = None

    def holds(self) -> str | None:
        """The agent the ticket counts against, if any."""
        return self.assignee if self.status in HOLDING_STATUSES else None


def follow(facts: Lifecycle, event: t.TicketEvent) -> Lifecycle:
    """The facts after one lifecycle event (status, priority, queue and assignee are all `evolve` needs
    to get the status right)."""
    state = TicketState(
        status=Status(facts.status),
        priority=facts.priority,  # type: ignore[arg-type]
        queue_id=facts.queue_id,
        assignee=facts.assignee,
    )
    after = evolve(state, event)
    return Lifecycle(after.status.value, after.priority, after.queue_id, after.assignee)


_TICKET_EVENTS = frozenset(t.TicketEvent.__args__)  # type: ignore[attr-defined]


def is_ticket_event(event: Any) -> TypeGuard[t.TicketEvent]:
    return type(event) in _TICKET_EVENTS  # a set lookup: every read model asks this of every event
