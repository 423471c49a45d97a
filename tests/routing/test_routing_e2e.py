"""End to end through the real broker: the store's relay publishes ticket and agent events to
Kafka, routing consumes them, decides, stores its decisions (which the relay publishes in turn), and
manual commands on ticket.commands are applied or dead-lettered with the reason (the subscriptions
of one term of leadership, as leader.py makes them)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from routing_builders import DESKS, joined, opened
from support.polling import eventually
from support.relay import relay_from_now

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import NewEvent
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.contracts.topics import AGENT_EVENTS, TICKET_EVENTS
from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.producer import make_producer
from ticketflow.routing.app import Routing
from ticketflow.routing.consumer import subscribe
from ticketflow.routing.domain.state import RoutingState
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.settings import load_settings

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]


async def test_routing_through_relay_and_broker(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, kafka_topic_factory: object
) -> None:
    new_topic = kafka_topic_factory
    ticket_events = await new_topic(partitions=3, suffix="ticket-events")  # type: ignore[operator]
    agent_events = await new_topic(partitions=1, suffix="agent-events")  # type: ignore[operator]
    commands = await new_topic(partitions=1, suffix="commands")  # type: ignore[operator]
    dead_letters = f"{commands}.dlq"
    await kafka_admin.create_topics([NewTopic(dead_letters, num_partitions=1, replication_factor=1)])
    store = EventStore(pool)
    stop = asyncio.Event()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    relay = await relay_from_now(store, kafka_bootstrap, {TICKET_EVENTS: ticket_events, AGENT_EVENTS: agent_events})
    relaying = asyncio.create_task(relay.run(stop))
    settings = load_settings(
        RoutingSettings, group=f"routing-{uuid.uuid4()}", event_topics=(ticket_events, agent_events),
        commands_topic=commands,
    )  # fmt: skip
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    app = Routing(RoutingState(DESKS), store)
    subscriptions = subscribe(broker, app, DeadLetterWriter(producer, "routing"), settings)  # as a term begins
    await subscriptions.start()
    now = datetime.now(UTC)
    try:
        for agent in ("e2e-anna", "e2e-boris"):
            await store.append(
                agent_stream(agent), 0, [NewEvent(new_event_id(), ev, now) for ev in joined(agent, "b24-box")]
            )
        # A fresh consumer group: the first assignment can take a while on a busy broker.
        await eventually(lambda: len(app.state.roster.members.get("b24-box", [])) == 2, "agents", 90)

        ticket = uuid.uuid4()
        stream = ticket_stream(ticket)
        facts = [opened(ticket), e.PreflightPassed(ticket, "updates")]
        await store.append(stream, 0, [NewEvent(new_event_id(), ev, now) for ev in facts])

        async def assigned() -> bool:
            return any(isinstance(env.event, e.TicketAssigned) for env in await store.read_stream(stream))

        await eventually(assigned, "routed and assigned")
        first = [env.event for env in await store.read_stream(stream)][2:]
        assert first == [
            e.TicketRouted(
                ticket, "b24-box", "standard", "normal", "b24-box", "rule b24-box: desk=bitrix24-box, track=box"
            ),
            e.TicketAssigned(ticket, "e2e-anna", "round_robin"),
        ]

        bad = CommandEnvelope(uuid.uuid4(), now, "lead-b24", c.AssignTicket(ticket, "ghost"))
        good = CommandEnvelope(uuid.uuid4(), now, "lead-b24", c.AssignTicket(ticket, "e2e-boris"))
        for command in (bad, good):
            await broker.publish(msgspec.json.encode(command), topic=commands, key=str(ticket).encode())

        async def reassignment_stored() -> bool:
            return len(await store.read_stream(stream)) >= 6

        # Routing decides in memory, then stores: wait for the store, not for the in-memory state.
        await eventually(reassignment_stored, "manual assign stored")
        assert app.state.tickets[ticket].state.assignee == "e2e-boris"
        assert [env.event for env in await store.read_stream(stream)][4:] == [
            e.TicketUnassigned(ticket, "e2e-anna", "reassigned to e2e-boris", "lead-b24"),
            e.TicketAssigned(ticket, "e2e-boris", "manual", "lead-b24"),
        ]

        [letter] = await read_dead_letters(kafka_bootstrap, dead_letters)
        assert (letter.reason, letter.detail, letter.consumer) == ("rejected", "unknown agent ghost", "routing")
        assert letter.context == {"command-id": str(bad.command_id)}
        assert letter.value == msgspec.json.encode(bad) and letter.original_topic == commands
    finally:
        stop.set()
        await subscriptions.stop()
        await broker.stop()
        with contextlib.suppress(Exception):
            await relaying
        await producer.stop()
        await kafka_admin.delete_topics([dead_letters])


async def read_dead_letters(bootstrap: str, topic: str, count: int = 1, timeout_s: float = 30) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return [DeadLetter.of(await asyncio.wait_for(consumer.getone(), timeout_s)) for _ in range(count)]
    finally:
        await consumer.stop()
