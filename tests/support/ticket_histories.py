"""Realistic ticket histories for read-model tests and the query benchmark: each ticket's lifecycle events
come out of the real decider (commands in, events out), with the SLA and notification events the sla and
notifications services would write around them, on the two packaged desks (Bitrix24 box, eXpress).

`histories(first, count, rng, start)` yields, per ticket, its events in time order as `Step`s (stream, event,
time). Some tickets stop half-way (the open backlog), some are refused, referred, merged as duplicates, or
reopened; eXpress feature requests get an outcome. Times advance by business-ish minutes; the SLA events are
consistent with each other (started before met or breached), not computed with the desk calendars.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketflow.contracts import commands as c
from ticketflow.contracts import notification_events as ne
from ticketflow.contracts import roster_events as r
from ticketflow.contracts import sla_events as s
from ticketflow.contracts.ids import agent_stream, notification_stream, sla_stream, ticket_stream
from ticketflow.contracts.roster_events import AgentStatus
from ticketflow.contracts.values import ChatRef, Priority, Requester
from ticketflow.lifecycle import TicketState, decide, fold

BOX_PORTALS = [f"portal-{i:03d}" for i in range(40)]
EXPRESS_BOTS = ["8dada2c8-67a6-4434-9dec-570d244e78ee", "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"]
AGENTS = {
    "bitrix24-box": [f"box-agent-{i}" for i in range(12)],
    "express": [f"express-agent-{i}" for i in range(10)],
}
QUEUES = {
    "bitrix24-box": ["box-l1", "box-l2"],
    "express": ["client-l1", "product-requests", "technical-l2", "technical-l3"],
}
PRIORITIES: list[Priority] = ["urgent", "high", "normal", "normal", "normal", "low"]
OPEN_WINDOW = timedelta(days=14)  # with `now`: how recent a ticket must be to be still open
PAUSED = datetime.max.replace(tzinfo=UTC)  # a paused clock has no deadline: it never falls overdue
WORDS = [
    "портал",
    "обновление",
    "ошибка",
    "лицензия",
    "сертификат",
    "сервер",
    "чат",
    "бот",
    "звонок",
    "уведомления",
    "push",
    "web",
    "desktop",
]


@dataclass(frozen=True)
class Step:
    stream: str
    event: Any
    at: datetime


def roster(at: datetime) -> list[Step]:
    """Every agent joins their desk's queues and comes online."""
    steps = []
    for desk, agents in AGENTS.items():
        for i, agent in enumerate(agents):
            queues = QUEUES[desk][: 1 + i % len(QUEUES[desk])]
            for queue in queues:
                steps.append(Step(agent_stream(agent), r.AgentJoinedQueue(agent, queue, ("product",), ("ru",), 5), at))
            status: AgentStatus = "online" if i % 4 else "away"
            steps.append(Step(agent_stream(agent), r.AgentStatusChanged(agent, status), at))
    return steps


class _Ticket:
    def __init__(self, ticket_id: uuid.UUID, at: datetime, rng: random.Random) -> None:
        self.id, self.at, self.rng = ticket_id, at, rng
        self.state = TicketState()
        self.steps: list[Step] = []
        self.clocks: dict[str, datetime] = {}  # pending target -> deadline

    def later(self, low: int, high: int) -> datetime:
        self.at += timedelta(minutes=self.rng.randint(low, high), seconds=self.rng.randint(0, 59))
        return self.at

    def do(self, command: c.TicketCommand) -> None:
        events = decide(command, self.state)
        self.state = fold(events, self.state)
        self.steps.extend(Step(ticket_stream(self.id), e, self.at) for e in events)

    def sla(self, event: Any) -> None:
        self.steps.append(Step(sla_stream(self.id), event, self.at))

    def notify(self, template: str, recipient: str, *, failed: bool = False) -> None:
        key = f"{self.id}:{template}:{len(self.steps)}"
        if failed:
            event: Any = ne.NotificationFailed(self.id, key, "express", recipient, template, "chat is gone", True,
                                              self.at, 3)  # fmt: skip
        else:
            event = ne.NotificationDelivered(self.id, key, "bitrix24", recipient, template, self.at)
        self.steps.append(Step(notification_stream(self.id), event, self.at))

    def start_clocks(self, priority: Priority) -> None:
        minutes = {"urgent": 30, "high": 60, "normal": 120, "low": 240}[priority]
        for target, factor in (("first_response", 1), ("resolution", 20)):
            deadline = self.at + timedelta(minutes=minutes * factor)
            self.sla(s.SlaClockStarted(self.id, target, f"box/{priority}", minutes * factor * 60, self.at, deadline))  # type: ignore[arg-type]
            self.clocks[target] = deadline

    def answer_clock(self, target: str, late: bool) -> None:
        if target not in self.clocks:
            return
        if late:
            self.sla(s.SlaBreached(self.id, target, self.at - timedelta(minutes=5), self.at, ("lead",)))  # type: ignore[arg-type]
        self.sla(s.SlaMet(self.id, target, self.at, self.rng.randint(60, 20_000)))  # type: ignore[arg-type]
        self.clocks.pop(target, None)

    def stop(self, now: datetime | None) -> list[Step]:
        """The history so far; clocks overdue by `now` have breached, as the sla service would have said."""
        if now is not None:
            for target, deadline in sorted(self.clocks.items()):
                if deadline < now:
                    self.at = max(self.at, deadline)
                    self.sla(s.SlaBreached(self.id, target, deadline, self.at, ("lead",)))  # type: ignore[arg-type]
        return self.steps


def history(ticket_id: uuid.UUID, n: int, rng: random.Random, at: datetime, now: datetime | None = None) -> list[Step]:
    """One ticket's events in time order (ticket, SLA and notification streams interleaved). With `now`, only
    tickets opened within `OPEN_WINDOW` of it may stop half-way (older ones were finished long ago) and
    clocks overdue by `now` have breached."""
    t = _Ticket(ticket_id, at, rng)
    recent = now is None or at >= now - OPEN_WINDOW
    express = rng.random() < 0.45
    desk = "express" if express else "bitrix24-box"
    if express:
        bot = rng.choice(EXPRESS_BOTS)
        track = "client" if bot == EXPRESS_BOTS[0] else "technical-standard"
        chat = ChatRef("express", bot, f"chat-{n % 5000}")
    else:
        track, chat = "box", ChatRef("bitrix24", rng.choice(BOX_PORTALS), f"dialog-{n % 5000}")
    requester = Requester(f"user-{n % 20_000}", f"User {n % 20_000}", roles=("portal_admin", "system_admin"))
    priority = rng.choice(PRIORITIES)
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
    t.do(c.OpenTicket(ticket_id, desk, track, chat, requester, f"{n}: {text}", f"m-{n}-0", t.at, priority))
    if rng.random() < 0.6:
        t.notify("ticket_opened", requester.user_id)
    fate = rng.random()
    if fate < 0.03:
        t.later(1, 3)
        t.do(c.RefuseTicket(ticket_id, "not_admin", "only portal administrators may contact support"))
        return t.steps
    if fate < 0.08:
        t.later(1, 3)
        t.do(c.ReferTicket(ticket_id, "custom_development", "partners do custom development"))
        t.later(60, 600)
        t.do(c.CloseTicket(ticket_id, "referred", "system"))
        return t.steps
    if fate < 0.11:
        t.later(1, 3)
        t.do(c.MarkDuplicate(ticket_id, ticket_id_of(max(0, n - 1)), 0.95, t.at))
        return t.steps
    feature = express and rng.random() < 0.3
    t.later(1, 5)
    t.do(c.RecordPreflightPassed(ticket_id, "feature_request" if feature else "how_to"))
    with_sla = track != "client"
    if with_sla:
        t.start_clocks(priority)
    queues = QUEUES[desk]
    queue = "product-requests" if feature else queues[0] if track != "technical-standard" else "technical-l2"
    t.later(0, 2)
    t.do(c.RouteTicket(ticket_id, queue, "l1", priority, "rule-1"))
    if recent and rng.random() < 0.04:  # still waiting in the queue
        return t.stop(now)
    agent = rng.choice(AGENTS[desk])
    t.later(1, 30)
    t.do(c.AssignTicket(ticket_id, agent, "round_robin"))
    if recent and rng.random() < 0.03:  # assigned, not yet answered
        return t.stop(now)
    late = rng.random() < 0.15
    t.later(5, 200 if late else 60)
    t.do(c.ReplyAsAgent(ticket_id, agent, f"r-{n}-1", f"please send the logs ({rng.choice(WORDS)})"))
    t.notify("agent_replied", requester.user_id, failed=rng.random() < 0.02)
    if with_sla:
        t.answer_clock("first_response", late)
    if rng.random() < 0.35:
        t.later(1, 10)
        t.do(c.WaitForCustomer(ticket_id, "asked for logs", agent))
        if "resolution" in t.clocks:
            t.sla(s.SlaClockPaused(ticket_id, "resolution", t.at, rng.randint(60, 5000)))
            t.clocks["resolution"] = PAUSED
        if recent and rng.random() < 0.05:  # still waiting on the customer
            return t.stop(now)
        t.later(30, 900)
        t.do(c.AddCustomerMessage(ticket_id, f"m-{n}-2", f"here are the logs: {rng.choice(WORDS)}", t.at))
        if "resolution" in t.clocks:
            t.clocks["resolution"] = t.at + timedelta(hours=8)
            t.sla(s.SlaClockResumed(ticket_id, "resolution", t.at, t.clocks["resolution"]))
    if feature:
        t.later(10, 600)
        outcome = rng.choice(["in_sprint", "planned", "declined"])
        reason = "not on the roadmap" if outcome == "declined" else ""
        t.do(c.SetFeatureRequestOutcome(ticket_id, outcome, agent, reason))  # type: ignore[arg-type]
    if recent and rng.random() < 0.04:  # in progress
        return t.stop(now)
    t.later(10, 900)
    t.do(c.ResolveTicket(ticket_id, "fixed", agent))
    t.answer_clock("resolution", rng.random() < 0.1)
    if rng.random() < 0.3:
        t.notify("ticket_resolved", requester.user_id)
    if rng.random() < 0.08:
        t.later(60, 2000)
        t.do(c.AddCustomerMessage(ticket_id, f"m-{n}-3", "it broke again", t.at))  # reopens
        t.later(30, 600)
        t.do(c.ResolveTicket(ticket_id, "fixed again", agent))
    if rng.random() < 0.7:  # the rest stay resolved until someone closes them
        t.later(600, 4000)
        t.do(c.CloseTicket(ticket_id, "confirmed", "customer"))
    return t.steps


def ticket_id_of(n: int) -> uuid.UUID:
    """A stable id per ticket number, laid out as a UUIDv7 whose time part grows with `n` (ticket ids sort in
    the order tickets were opened, as real ones do)."""
    return uuid.UUID(int=(n << 80) | (0x7 << 76) | (0x2 << 62) | (n * 0x9E3779B97F4A7C15 & ((1 << 62) - 1)))


def histories(
    first: int, count: int, rng: random.Random, start: datetime, spacing_s: float = 30.0, now: datetime | None = None
) -> Iterator[tuple[uuid.UUID, list[Step]]]:
    """`count` tickets numbered from `first`, opened `spacing_s` apart from `start` (`now`: see `history`)."""
    for n in range(first, first + count):
        ticket_id = ticket_id_of(n)
        yield ticket_id, history(ticket_id, n, rng, start + timedelta(seconds=n * spacing_s), now)


async def append_steps(store: Any, steps: list[Step], versions: dict[str, int]) -> None:
    """Append each step to its stream, one event per append, in order (`versions`: each stream's head so far)."""
    from ticketflow.contracts.envelope import EventMetadata, NewEvent
    from ticketflow.contracts.ids import new_event_id

    for step in steps:
        version = versions.get(step.stream, 0)
        await store.append(step.stream, version, [NewEvent(new_event_id(), step.event, step.at, EventMetadata())])
        versions[step.stream] = version + 1
