"""The agent roster, rebuilt from agent events, and each agent's open tickets (their load).

An agent is available only when online, on shift (if a shift is set) and below capacity: these are
hard limits, checked for every automatic and manual assignment. A newly seen agent is offline until
an `AgentStatusChanged` says otherwise, so nobody gets work by accident.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ticketflow.calendar import BusinessCalendar, CalendarError, CalendarSpec
from ticketflow.contracts import roster_events as r
from ticketflow.contracts.roster_events import AgentEvent, AgentStatus
from ticketflow.contracts.values import Priority

# Least-loaded weighs open tickets by priority: an urgent ticket occupies an agent more than a low one.
PRIORITY_WEIGHT: dict[Priority, int] = {"urgent": 6, "high": 3, "normal": 2, "low": 1}


@dataclass(slots=True)
class Agent:
    agent_id: str
    queues: set[str] = field(default_factory=set)
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset({"ru"})
    capacity: int = 5
    status: AgentStatus = "offline"
    shift: BusinessCalendar | None = None
    shift_error: str | None = None  # a shift that can never be open: never on shift
    open_tickets: dict[uuid.UUID, int] = field(default_factory=dict)  # ticket -> priority weight
    load: int = 0  # sum of open_tickets' weights

    def on_shift(self, now_ts: int) -> bool:
        if self.shift_error is not None:
            return False
        return self.shift is None or self.shift.is_open_ts(now_ts)

    def has_room(self) -> bool:
        return len(self.open_tickets) < self.capacity

    def available(self, now_ts: int) -> bool:
        return self.status == "online" and self.has_room() and self.on_shift(now_ts)

    def why_unavailable(self, now_ts: int) -> str | None:
        if self.status != "online":
            return f"agent {self.agent_id} is {self.status}"
        if not self.has_room():
            return f"agent {self.agent_id} is at capacity ({len(self.open_tickets)}/{self.capacity})"
        if not self.on_shift(now_ts):
            return f"agent {self.agent_id} is off shift" + (f" ({self.shift_error})" if self.shift_error else "")
        return None


def _shift(event: r.AgentShiftSet) -> BusinessCalendar | None:
    if not event.weekly:
        return None
    spec = CalendarSpec.from_text(event.timezone, event.weekly, holiday_country=event.holiday_country)
    return BusinessCalendar(spec)


class Roster:
    def __init__(self) -> None:
        self.agents: dict[str, Agent] = {}
        self.members: dict[str, list[str]] = {}  # queue -> agent ids, sorted (round-robin order)
        self.versions: dict[str, int] = {}  # agent stream versions applied

    def agent(self, agent_id: str) -> Agent:
        found = self.agents.get(agent_id)
        if found is None:
            found = self.agents[agent_id] = Agent(agent_id)
        return found

    def apply(self, event: AgentEvent) -> None:
        agent = self.agent(event.agent_id)
        match event:
            case r.AgentJoinedQueue():
                agent.skills = frozenset(event.skills)
                agent.languages = frozenset(event.languages)
                agent.capacity = event.capacity
                if event.queue_id not in agent.queues:
                    agent.queues.add(event.queue_id)
                    members = self.members.setdefault(event.queue_id, [])
                    members.append(agent.agent_id)
                    members.sort()
            case r.AgentLeftQueue():
                if event.queue_id in agent.queues:
                    agent.queues.discard(event.queue_id)
                    self.members[event.queue_id].remove(agent.agent_id)
            case r.AgentStatusChanged():
                agent.status = event.status
            case r.AgentProfileUpdated():
                agent.skills = frozenset(event.skills)
                agent.languages = frozenset(event.languages)
                agent.capacity = event.capacity
            case r.AgentShiftSet():
                try:
                    agent.shift, agent.shift_error = _shift(event), None
                except CalendarError as error:
                    # Unusable hours must not mean "unlimited": such an agent is never on shift.
                    agent.shift, agent.shift_error = None, str(error)

    def queue_members(self, queue_id: str) -> list[Agent]:
        return [self.agents[a] for a in self.members.get(queue_id, ())]

    def take(self, agent_id: str, ticket_id: uuid.UUID, priority: Priority) -> None:
        agent = self.agent(agent_id)
        weight = PRIORITY_WEIGHT[priority]
        agent.load += weight - agent.open_tickets.get(ticket_id, 0)
        agent.open_tickets[ticket_id] = weight

    def release(self, agent_id: str, ticket_id: uuid.UUID) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None and ticket_id in agent.open_tickets:
            agent.load -= agent.open_tickets.pop(ticket_id)
