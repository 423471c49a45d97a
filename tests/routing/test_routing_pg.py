"""The routing service on the real event store (PostgreSQL): decisions stored,
conflicts repaired, and a restart rebuilding the same state from the global log."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from routing_builders import World, joined, opened
from test_routing_rebuild import fingerprint

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.eventstore import EventStore
from ticketflow.routing.domain.decisions import Rejected, decide_ready
from ticketflow.routing.leader import LogFollower

pytestmark = pytest.mark.pg


async def kinds(store: EventStore, ticket_id: uuid.UUID) -> list[str]:
    return [type(env.event).__name__ for env in await store.read_stream(ticket_stream(ticket_id))]


async def test_decisions_are_stored_and_conflicts_are_repaired(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    world = World(store=store)
    # express-client: the other test of this module (same database) owns the b24-box queue.
    await world.agent("pg-anna", *joined("pg-anna", "express-client"))
    routed = await world.new_ticket("express", "client")
    assert await kinds(store, routed) == ["TicketOpened", "PreflightPassed", "TicketRouted", "TicketAssigned"]

    raced = uuid.uuid4()
    stream = ticket_stream(raced)
    await world.ticket(raced, opened(raced, "express", "client"))
    await store.append(stream, 1, [NewEvent(new_event_id(), e.PreflightPassed(raced, "updates"), world.now)])
    passed = (await store.read_stream(stream, 2))[0]
    message = e.CustomerMessageAdded(raced, "m2", "still broken", world.now)
    await store.append(stream, 2, [NewEvent(new_event_id(), message, world.now)])  # routing has not seen it
    await world.app.on_events([passed])
    assert await kinds(store, raced) == [
        "TicketOpened", "PreflightPassed", "CustomerMessageAdded", "TicketRouted", "TicketAssigned"
    ]  # fmt: skip
    assert world.state.roster.agents["pg-anna"].open_tickets.keys() == {routed, raced}


async def test_restart_rebuilds_the_same_state_from_the_store_and_decides_the_same(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    world = World(store=store)
    for name in ("pg-b1", "pg-b2", "pg-b3"):
        await world.agent(name, *joined(name, "b24-box", capacity=2))
    tickets = [await world.new_ticket() for _ in range(8)]  # 6 assigned round-robin, 2 waiting
    await world.ticket(tickets[0], e.TicketResolved(tickets[0], "fixed", "pg-b1"))
    envelope = CommandEnvelope(uuid.uuid4(), world.now, "lead-b24", c.AssignTicket(tickets[7], "pg-b1"))
    with pytest.raises(Rejected, match=r"^agent pg-b1 is at capacity \(2/2\)$"):
        await world.app.on_command(envelope)

    follower = LogFollower(store, world.desks)  # what a new term does before consuming
    await follower.catch_up()
    restarted = follower.state
    live = fingerprint(world.state)
    rebuilt = fingerprint(restarted)
    # The store may hold other tests' tickets (same module database): compare ours.
    mine = set(tickets)
    assert {t: v for t, v in rebuilt["tickets"].items() if t in mine} == live["tickets"]  # type: ignore[attr-defined]
    assert rebuilt["cursors"]["b24-box"] == live["cursors"]["b24-box"]  # type: ignore[index]
    for name in ("pg-b1", "pg-b2", "pg-b3"):
        assert rebuilt["agents"][name] == live["agents"][name]  # type: ignore[index]

    probe = uuid.uuid4()
    for state in (world.state, restarted):
        state.apply_ticket(opened(probe), 1, int(world.now.timestamp()))
        state.apply_ticket(e.PreflightPassed(probe, "updates"), 2, int(world.now.timestamp()))
    now = int(world.now.timestamp())
    assert decide_ready(restarted, probe, now) == decide_ready(world.state, probe, now)
