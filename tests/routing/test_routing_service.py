"""The application service on the in-memory event store: conflicts, gaps, redelivery, commands, ticks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from routing_builders import World, joined, opened

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.routing.domain.decisions import Rejected
from ticketflow.routing.domain.state import rebuild
from ticketflow.routing.metrics import RoutingMetrics


async def test_a_concurrent_append_makes_routing_decide_again_on_the_fresh_stream() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    ticket = uuid.uuid4()
    stream = ticket_stream(ticket)
    await world.app.on_events(await world.stored(stream, opened(ticket)))
    passed = await world.stored(stream, e.PreflightPassed(ticket, "updates"))
    # The customer writes again before routing has seen it: routing's append at version 2 conflicts.
    await world.stored(stream, e.CustomerMessageAdded(ticket, "m2", "still broken", world.now))
    await world.app.on_events(passed)
    assert [type(x).__name__ for x in await world.events(ticket)] == [
        "TicketOpened", "PreflightPassed", "CustomerMessageAdded", "TicketRouted", "TicketAssigned"
    ]  # fmt: skip
    assert world.state.version_of(ticket) == 5
    assert world.state.roster.agents["anna"].open_tickets.keys() == {ticket}


async def test_redelivered_events_and_echoes_of_our_own_change_nothing() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    ticket = await world.new_ticket()
    before = await world.log()
    for envelope in await world.store.read_stream(ticket_stream(ticket)):
        await world.app.on_events([envelope])  # Kafka redelivers, and echoes what routing stored
    assert await world.log() == before


async def test_a_gap_in_a_stream_is_filled_from_the_store() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    ticket = uuid.uuid4()
    _, passed = await world.stored(ticket_stream(ticket), opened(ticket), e.PreflightPassed(ticket, "updates"))
    await world.app.on_events([passed])  # version 2 first: 1 was missed
    assert world.assignee(ticket) == "anna"


async def test_rejected_commands_name_the_reason_and_store_nothing() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    ticket = await world.new_ticket()
    before = len(await world.log())
    unknown = CommandEnvelope(uuid.uuid4(), world.now, "lead", c.AssignTicket(uuid.uuid4(), "anna"))
    with pytest.raises(Rejected, match=r"^unknown ticket "):
        await world.app.on_command(unknown)
    nobody = CommandEnvelope(uuid.uuid4(), world.now, "lead", c.AssignTicket(ticket, "ghost"))
    with pytest.raises(Rejected, match=r"^unknown agent ghost$"):
        await world.app.on_command(nobody)
    assert len(await world.log()) == before


async def test_a_manual_unassign_hands_the_ticket_to_someone_else_and_records_the_actor() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    await world.agent("boris", *joined("boris", "b24-box"))
    ticket = await world.new_ticket()
    assert world.assignee(ticket) == "anna"
    command = CommandEnvelope(uuid.uuid4(), world.now, "lead-b24", c.UnassignTicket(ticket, "on holiday"))
    await world.app.on_command(command)
    assert (await world.events(ticket))[-2:] == [
        e.TicketUnassigned(ticket, "anna", "on holiday", "lead-b24"),
        e.TicketAssigned(ticket, "boris", "round_robin"),
    ]
    await world.app.on_command(command)  # redelivered: the same ids, nothing new
    assert len(await world.events(ticket)) == 6


async def test_tick_reassigns_after_business_minutes_only() -> None:
    friday_1850 = datetime(2026, 11, 27, 15, 50, tzinfo=UTC)
    world = World(start=friday_1850)
    await world.agent("anna", *joined("anna", "b24-box"))
    await world.agent("boris", *joined("boris", "b24-box"))
    ticket = await world.new_ticket()
    world.later(timedelta(hours=60))  # Monday 06:50 Moscow: 10 business minutes used
    assert await world.app.tick() == 0
    world.later(timedelta(hours=3, minutes=30))  # Monday 10:20 Moscow: 30 used
    assert await world.app.tick() == 1
    assert (await world.events(ticket))[-2:] == [
        e.TicketUnassigned(ticket, "anna", "no answer within 30 business minutes", "routing", "lead-b24"),
        e.TicketAssigned(ticket, "boris", "round_robin"),
    ]


async def test_after_a_restart_undecided_tickets_are_routed() -> None:
    world = World()
    await world.agent("anna", *joined("anna", "b24-box"))
    ticket = uuid.uuid4()
    await world.stored(ticket_stream(ticket), opened(ticket), e.PreflightPassed(ticket, "updates"))
    # Routing was down: the store has the events, Kafka's copies will be skipped as already applied.
    world.app.state = world.state = rebuild(world.desks, await world.log())
    await world.app.tick()
    assert world.assignee(ticket) == "anna"


async def test_a_ticket_no_rule_matches_goes_to_the_fallback_queue_and_bumps_the_warning_metric() -> None:
    metrics = RoutingMetrics()
    world = World()
    world.app.metrics = metrics
    await world.agent("ivan", *joined("ivan", "triage"))
    ticket = await world.new_ticket("generic", "default")
    routed = (await world.events(ticket))[2]
    assert isinstance(routed, e.TicketRouted) and (routed.queue_id, routed.rule_id) == ("triage", "fallback")
    assert metrics.value("ticketflow_routing_unmatched") == 1
    assert metrics.total("ticketflow_routing_assigned") == 1
    assert metrics.value("ticketflow_routing_routed", queue="triage", rule="fallback") == 1
