"""Fairness: thousands of tickets through agents of different capacities, checked against each
strategy's promise (round-robin within one; least-loaded never over capacity; offline gets nothing)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from routing_builders import World, joined

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.values import PRIORITIES
from ticketflow.routing.domain.roster import Agent


def assigned_counts(log: list[EventEnvelope]) -> Counter[str]:
    return Counter(ev.agent_id for env in log if isinstance(ev := env.event, e.TicketAssigned))


def check_hard_limits(world: World) -> None:
    for agent in world.state.roster.agents.values():
        assert len(agent.open_tickets) <= agent.capacity, agent
    for ticket_id in world.state.waiting:  # work-conserving: nobody who could take it is idle
        record = world.state.tickets[ticket_id]
        queue = record.state.queue_id
        assert queue is not None
        now = int(world.now.timestamp())
        idle = [
            a.agent_id
            for a in world.state.roster.queue_members(queue)
            if a.available(now) and a.agent_id not in record.passed_over
        ]
        assert idle == [], (ticket_id, idle)


async def _round_robin_run(capacities: list[int], tickets: int, seed: int) -> World:
    world = World()
    for i, capacity in enumerate(capacities):
        await world.agent(f"agent-{i:02}", *joined(f"agent-{i:02}", "b24-box", capacity=capacity))
    rng = random.Random(seed)
    open_tickets: list[uuid.UUID] = []
    for _ in range(tickets):
        open_tickets.append(await world.new_ticket())
        # Resolve soon enough that nobody is ever full: round-robin's promise is about turns.
        while len(open_tickets) >= min(capacities):
            done = open_tickets.pop(rng.randrange(len(open_tickets)))
            await world.ticket(done, e.TicketResolved(done, "fixed", world.assignee(done) or ""))
        check_hard_limits(world)
    return world


def test_round_robin_thousands_of_tickets_differ_by_at_most_one() -> None:
    world = asyncio.run(_round_robin_run([3, 5, 8, 13, 21], tickets=3001, seed=7))
    counts = assigned_counts(asyncio.run(world.log()))
    assert sum(counts.values()) == 3001
    assert max(counts.values()) - min(counts.values()) <= 1, counts


async def _least_loaded_run(seed: int, tickets: int) -> tuple[list[EventEnvelope], set[str]]:
    world = World()
    capacities = {"anna": 2, "boris": 4, "vera": 8, "gleb": 16, "dana": 10}
    for agent_id, capacity in capacities.items():
        await world.agent(agent_id, *joined(agent_id, "express-client", capacity=capacity))
    await world.agent("dana", r.AgentStatusChanged("dana", "offline"))
    rng = random.Random(seed)
    open_tickets: list[uuid.UUID] = []
    offline_since: dict[str, int] = {"dana": 0}
    for n in range(tickets):
        priority = rng.choice(PRIORITIES)
        open_tickets.append(await world.new_ticket("express", "client", priority=priority))
        if rng.random() < 0.45 and open_tickets:
            done = open_tickets.pop(rng.randrange(len(open_tickets)))
            if world.state.tickets[done].state.assignee is not None:
                await world.ticket(done, e.TicketResolved(done, "fixed", "agent"))
        if n == tickets // 2:  # vera leaves mid-shift: she keeps what she has, gets nothing new
            await world.agent("vera", r.AgentStatusChanged("vera", "away"))
            offline_since["vera"] = len(await world.log())
        world.later(timedelta(seconds=1))
        if n % 97 == 0:  # the check scans every waiting ticket: not after each of thousands of steps
            check_hard_limits(world)
    check_hard_limits(world)
    log = await world.log()
    given_after = {
        ev.agent_id
        for env in log
        if isinstance(ev := env.event, e.TicketAssigned) and env.position > offline_since.get(ev.agent_id, 10**9)
    }
    return log, given_after


def test_least_loaded_never_exceeds_capacity_and_nobody_offline_gets_work() -> None:
    log, got_work_while_away = asyncio.run(_least_loaded_run(seed=11, tickets=3000))
    assert got_work_while_away == set()
    counts = assigned_counts(log)
    assert "dana" not in counts
    # Saturated most of the time: bigger agents take more.
    assert counts["gleb"] > counts["boris"] > counts["anna"] > 0


def test_least_loaded_balances_by_capacity_when_nobody_is_full() -> None:
    async def run() -> dict[str, Agent]:
        world = World()
        for agent_id, capacity in {"anna": 10, "boris": 20, "vera": 40}.items():
            await world.agent(agent_id, *joined(agent_id, "express-client", capacity=capacity))
        for _ in range(35):  # half of the 70 slots, all normal priority
            await world.new_ticket("express", "client")
        agents: dict[str, Agent] = world.state.roster.agents
        return agents

    agents = asyncio.run(run())
    assert {a: len(x.open_tickets) for a, x in agents.items()} == {"anna": 5, "boris": 10, "vera": 20}


operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(PRIORITIES)),
        st.tuples(st.just("resolve"), st.integers(0, 1000)),
        st.tuples(st.just("status"), st.integers(0, 3), st.sampled_from(["online", "away", "offline"])),
        st.tuples(st.just("capacity"), st.integers(0, 3), st.integers(1, 4)),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(operations, st.sampled_from(["b24-box", "express-client", "express-technical"]))
def test_any_interleaving_keeps_the_hard_limits(ops: list[tuple[object, ...]], queue: str) -> None:
    async def run() -> None:
        world = World()
        desk, track = {"b24-box": ("bitrix24-box", "box"), "express-client": ("express", "client")}.get(
            queue, ("express", "technical")
        )
        for i in range(4):
            await world.agent(f"a{i}", *joined(f"a{i}", queue, capacity=1 + i, skills=["express-server"][: i % 2]))
        tickets: list[uuid.UUID] = []
        for op in ops:
            start = len(await world.log())
            if op[0] == "open":
                tickets.append(await world.new_ticket(desk, track, priority=op[1]))
            elif op[0] == "resolve" and tickets:
                done = tickets.pop(int(op[1]) % len(tickets))  # type: ignore[call-overload]
                await world.ticket(done, e.TicketResolved(done, "fixed", "agent"))
            elif op[0] == "status":
                agent_id = f"a{op[1]}"
                before = len(await world.log())
                await world.agent(agent_id, r.AgentStatusChanged(agent_id, op[2]))  # type: ignore[arg-type]
                if op[2] != "online":
                    given_to = [
                        env.event.agent_id
                        for env in (await world.log())[before:]
                        if isinstance(env.event, e.TicketAssigned)
                    ]
                    assert agent_id not in given_to
            elif op[0] == "capacity":
                agent_id = f"a{op[1]}"
                await world.agent(agent_id, r.AgentProfileUpdated(agent_id, (), ("ru",), int(op[2])))  # type: ignore[call-overload]
            check_new_assignments(world, (await world.log())[start:])

    asyncio.run(run())


def check_new_assignments(world: World, new: list[EventEnvelope]) -> None:
    """Every assignment one step made went to an online agent within capacity. (Lowering a capacity
    below the open count takes nothing away, so only new assignments are checked.)"""
    for env in new:
        if isinstance(ev := env.event, e.TicketAssigned):
            agent = world.state.roster.agents[ev.agent_id]
            assert len(agent.open_tickets) <= agent.capacity
            assert agent.status == "online"
