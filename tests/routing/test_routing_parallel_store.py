"""A flush stores a segment as several transactions at once, split by queue. Whatever order they
commit in, a restart rebuilds the same cursors, loads and backlog order, and decides the same."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from datetime import timedelta

from routing_builders import DESKS, GOLD_TENANT, MONDAY_11_MSK, joined, opened

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.events import Event
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.eventstore import AppendRequest, AppendResult, InMemoryEventStore
from ticketflow.routing.adapters.batched_store import Segment, chunks
from ticketflow.routing.app import Routing
from ticketflow.routing.domain.decisions import decide_backlog, decide_ready
from ticketflow.routing.domain.state import RoutingState, rebuild


class ShuffledStreams:
    """The in-memory store, its `append_many` calls finishing in a random order, as transactions in
    flight at once may commit (and so reach the global log) in any order."""

    def __init__(self, inner: InMemoryEventStore, seed: int) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.calls = 0
        self.in_flight = self.most_in_flight = 0

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.rng.random() / 1000)
            return await self.inner.append_many(requests)
        finally:
            self.in_flight -= 1

    async def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> AppendResult:
        return await self.inner.append(stream_id, expected_version, events)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[EventEnvelope]:
        return await self.inner.read_stream(stream_id, from_version)


async def store(memory: InMemoryEventStore, stream_id: str, *events: Event) -> list[EventEnvelope]:
    """What another service appended (intake, preflight, agents): stored, then read from Kafka."""
    head = len(await memory.read_stream(stream_id))
    await memory.append(stream_id, head, [NewEvent(new_event_id(), ev, MONDAY_11_MSK) for ev in events])
    return await memory.read_stream(stream_id, head + 1)


def log_of(memory: InMemoryEventStore) -> list[EventEnvelope]:
    return [stored.envelope for stored in asyncio.run(memory.read_all(limit=1 << 62))]


def waiting_order(state: RoutingState) -> dict[str, list[uuid.UUID]]:
    """Each backlog in the order it is served (the keys' absolute sequence numbers may differ)."""
    queues: dict[str, list[tuple[tuple[int, int, int], uuid.UUID]]] = {}
    for ticket_id, (queue, key) in state.waiting.items():
        queues.setdefault(queue, []).append((key, ticket_id))
    return {queue: [t for _, t in sorted(entries)] for queue, entries in queues.items()}


def picture(state: RoutingState) -> dict[str, object]:
    return {
        "cursors": dict(state.cursors),
        "waiting": waiting_order(state),
        "reply_due": dict(state.reply_due),
        "loads": {a.agent_id: (a.load, dict(a.open_tickets)) for a in state.roster.agents.values()},
        "tickets": {t: (rec.state, sorted(rec.passed_over)) for t, rec in state.tickets.items()},
    }


async def busy_batches(seed: int) -> tuple[RoutingState, InMemoryEventStore, ShuffledStreams]:
    memory = InMemoryEventStore()
    shuffled = ShuffledStreams(memory, seed)
    state = RoutingState(DESKS)
    app = Routing(state, shuffled, clock=lambda: MONDAY_11_MSK + timedelta(minutes=5), store_parallel=4)
    rng = random.Random(seed)
    agents: list[EventEnvelope] = []
    for i in range(5):
        agents += await store(memory, agent_stream(f"b{i}"), *joined(f"b{i}", "b24-box", capacity=2 + i % 3))
        agents += await store(memory, agent_stream(f"x{i}"), *joined(f"x{i}", "express-client", capacity=3))
        skills = ["express-server"][: i % 2]
        agents += await store(
            memory, agent_stream(f"t{i}"), *joined(f"t{i}", "express-technical-premium", skills=skills)
        )
        agents += await store(memory, agent_stream(f"r{i}"), *joined(f"r{i}", "triage", capacity=4))
    agents += await store(memory, agent_stream("b4"), r.AgentStatusChanged("b4", "offline"))
    await app.on_events(agents)
    previous: list[EventEnvelope] = []
    for _ in range(12):  # Kafka batches: many tickets each, then some work done and freed
        await app.on_events(previous)  # redelivered (a rewind): nothing new may come of it
        batch: list[EventEnvelope] = []
        for _ in range(40):
            t = uuid.uuid4()
            kind = rng.randrange(3)
            if kind == 0:
                first = opened(t, priority=rng.choice(["low", "normal", "urgent"]))
            elif kind == 1:
                first = opened(t, "express", "client", priority=rng.choice(["low", "urgent"]))
            else:
                first = opened(t, "express", "technical", tenant=GOLD_TENANT)
            batch += await store(memory, ticket_stream(t), first, e.PreflightPassed(t, "configuration"))
        await app.on_events(batch)
        assigned = sorted((t for t, rec in state.tickets.items() if rec.state.assignee), key=str)
        freed: list[EventEnvelope] = []
        for t in rng.sample(assigned, len(assigned) // 3):
            freed += await store(memory, ticket_stream(t), e.TicketResolved(t, "ok", "agent"))
        await app.on_events(freed)  # backlogs drain: assignments from several queues in one flush
        previous = batch + freed
    return state, memory, shuffled


def test_every_queue_s_decisions_stay_in_one_part_in_decision_order() -> None:
    t = [uuid.UUID(int=i) for i in range(12)]
    queues = ["a", "b", "c", "a", "d", "b", "e", "a", "f", "c", "g", "h"]
    segment: Segment = {ticket: (0, [], frozenset({q})) for ticket, q in zip(t, queues, strict=True)}
    segment[t[11]] = (0, [], frozenset({"h", "b"}))  # moved from h to b: h and b stay together
    parts = chunks(segment, 3)
    assert 1 < len(parts) <= 3
    assert sorted(ticket for part in parts for ticket in part) == sorted(t)
    owner: dict[str, int] = {}
    for index, part in enumerate(parts):
        assert list(part) == [ticket for ticket in segment if ticket in part]  # decision order kept
        for _, _, qs in part.values():
            for q in qs:
                assert owner.setdefault(q, index) == index, f"queue {q} is in two parts"
    assert chunks(segment, 1) == [segment]


def test_a_restart_after_parallel_stores_decides_the_same() -> None:
    for seed in range(4):
        live, memory, shuffled = asyncio.run(busy_batches(seed))
        assert shuffled.most_in_flight > 1  # several transactions were in flight at once
        restarted = rebuild(DESKS, log_of(memory))
        assert picture(restarted) == picture(live)
        now = int((MONDAY_11_MSK + timedelta(minutes=6)).timestamp())
        probe = uuid.uuid4()
        for state in (live, restarted):
            state.apply_ticket(opened(probe), 1, now)
            state.apply_ticket(e.PreflightPassed(probe, "configuration"), 2, now)
        assert decide_ready(restarted, probe, now) == decide_ready(live, probe, now)
        for queue in DESKS.queues:
            assert decide_backlog(restarted, queue, now) == decide_backlog(live, queue, now)


def test_exactly_one_routing_and_assignment_per_ticket_when_stored_in_parallel_and_redelivered() -> None:
    live, memory, _ = asyncio.run(busy_batches(7))
    log = log_of(memory)
    streams: dict[str, list[str]] = {}
    for env in log:
        streams.setdefault(env.stream_id, []).append(type(env.event).__name__)
    for stream_id, kinds in streams.items():
        if stream_id.startswith("ticket-"):
            assert kinds.count("TicketRouted") == 1, kinds
            assert kinds.count("TicketAssigned") <= 1, kinds
    assert any(rec.state.assignee is None for rec in live.tickets.values())  # some waited in a backlog
    restarted = rebuild(DESKS, log)
    for state in (live, restarted):  # capacity is hard; nobody offline gets work
        assert all(len(agent.open_tickets) <= agent.capacity for agent in state.roster.agents.values())
        assert not state.roster.agents["b4"].open_tickets
