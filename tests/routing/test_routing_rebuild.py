"""Restart: drop the in-memory state, rebuild it from the stored events, and decide the same."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

from routing_builders import GOLD_TENANT, World, joined, opened

from ticketflow.contracts import commands as c
from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.routing.domain.decisions import decide_backlog, decide_ready, decide_reassignment
from ticketflow.routing.domain.state import RoutingState, rebuild


def fingerprint(state: RoutingState) -> dict[str, object]:
    return {
        "cursors": dict(state.cursors),
        "waiting": dict(state.waiting),
        "reply_due": dict(state.reply_due),
        "agents": {
            a.agent_id: (sorted(a.queues), a.status, a.capacity, a.load, dict(a.open_tickets))
            for a in state.roster.agents.values()
        },
        "tickets": {t: (rec.state, sorted(rec.passed_over), rec.skills) for t, rec in state.tickets.items()},
    }


async def busy_day() -> World:
    world = World()
    rng = random.Random(3)
    for i in range(6):
        await world.agent(f"b{i}", *joined(f"b{i}", "b24-box", capacity=2 + i % 3))
        await world.agent(f"x{i}", *joined(f"x{i}", "express-client", capacity=3))
        await world.agent(
            f"t{i}", *joined(f"t{i}", "express-technical-premium", skills=["express-server"][: i % 2], capacity=2)
        )
    await world.agent("b5", r.AgentStatusChanged("b5", "offline"))
    tickets = []
    for n in range(300):
        kind = n % 3
        if kind == 0:
            tickets.append(await world.new_ticket())
        elif kind == 1:
            tickets.append(await world.new_ticket("express", "client", priority=rng.choice(["low", "urgent"])))
        else:
            tickets.append(await world.new_ticket("express", "technical", tenant=GOLD_TENANT))
        if rng.random() < 0.3:
            done = tickets.pop(rng.randrange(len(tickets)))
            if world.assignee(done):
                await world.ticket(done, e.AgentReplied(done, world.assignee(done) or "", "m", "hi"))
                await world.ticket(done, e.TicketResolved(done, "fixed", "agent"))
        if n == 150:
            target = tickets[-1]
            envelope = CommandEnvelope(
                uuid.uuid4(), world.now, "lead-b24", c.RouteTicket(target, "triage", "", "high", "")
            )
            await world.app.on_command(envelope)
        world.later(timedelta(minutes=1))
    world.later(timedelta(hours=2))
    assert await world.app.tick() > 0  # some assignees never answered
    return world


def test_rebuilt_state_equals_the_live_one_and_decides_the_same() -> None:
    world = asyncio.run(busy_day())
    live = world.state
    del world.state  # the process dies: only the stored events remain
    restarted = rebuild(world.desks, asyncio.run(world.log()))
    assert fingerprint(restarted) == fingerprint(live)

    now = int(world.now.timestamp())
    probe = uuid.uuid4()
    for state in (live, restarted):
        state.apply_ticket(opened(probe), 1, now)
        state.apply_ticket(e.PreflightPassed(probe, "configuration"), 2, now)
    assert decide_ready(restarted, probe, now) == decide_ready(live, probe, now)
    for queue in world.desks.queues:
        assert decide_backlog(restarted, queue, now) == decide_backlog(live, queue, now)
    later = now + 7 * 24 * 3600
    assert decide_reassignment(restarted, later) == decide_reassignment(live, later)
    assert decide_reassignment(live, later) is not None
