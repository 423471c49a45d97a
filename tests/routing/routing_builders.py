"""Builders for routing tests: the fixture's desk configuration, events, and a world on the in-memory
event store (or, in `pg` tests, the real one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from routing_toml import load

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, NewEvent
from ticketflow.contracts.events import Event
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.contracts.ticket_events import TicketEvent
from ticketflow.contracts.values import ChatRef, Priority, Requester
from ticketflow.eventstore import InMemoryEventStore, Store
from ticketflow.routing.app import Routing
from ticketflow.routing.domain.config import Desks
from ticketflow.routing.domain.state import RoutingState

ROUTING_TOML = Path(__file__).with_name("routing-fixture.toml")
DESKS = load(ROUTING_TOML)
GOLD_TENANT = "8dada2c8-67a6-4434-9dec-570d244e78ee"
MONDAY_11_MSK = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a working Monday, 11:00 Moscow time


def opened(
    ticket_id: uuid.UUID,
    desk: str = "bitrix24-box",
    track: str = "box",
    *,
    tenant: str = "portal-1",
    locale: str = "ru",
    priority: Priority = "normal",
    at: datetime = MONDAY_11_MSK,
) -> e.TicketOpened:
    platform = "express" if desk == "express" else "bitrix24"
    return e.TicketOpened(
        ticket_id,
        desk,
        track,
        ChatRef(platform, tenant, "chat-1"),  # type: ignore[arg-type]
        Requester("user-1", locale=locale, roles=("portal_admin",)),
        "help",
        f"msg-{ticket_id}",
        at,
        priority,
    )


def joined(
    agent_id: str,
    queue: str,
    *,
    capacity: int = 5,
    skills: Iterable[str] = (),
    languages: Iterable[str] = ("ru",),
) -> list[AgentEvent]:
    """An agent who joined a queue and came online."""
    return [
        r.AgentJoinedQueue(agent_id, queue, tuple(skills), tuple(languages), capacity),
        r.AgentStatusChanged(agent_id, "online"),
    ]


def given(state: RoutingState, *events: Event, at: datetime = MONDAY_11_MSK) -> None:
    """Apply events as if read from their streams (versions follow on from the state's)."""
    for event in events:
        if isinstance(event, TicketEvent.__args__):  # type: ignore[attr-defined]
            version = state.version_of(event.ticket_id) + 1  # type: ignore[union-attr]
            state.apply_ticket(event, version, int(at.timestamp()))  # type: ignore[arg-type]
        else:
            state.apply_agent(event)  # type: ignore[arg-type]


class World:
    """Routing on an event store (in memory unless given), driven like the real service: events in,
    decisions stored."""

    def __init__(self, desks: Desks = DESKS, start: datetime = MONDAY_11_MSK, store: Store | None = None) -> None:
        self.desks = desks
        self.now = start
        self.store: Store = store or InMemoryEventStore()  # the real EventStore in `pg` tests
        self.state = RoutingState(desks)
        self.app = Routing(self.state, self.store, clock=lambda: self.now)

    def later(self, delta: timedelta) -> None:
        self.now += delta

    async def stored(self, stream_id: str, *events: Event) -> list[EventEnvelope]:
        """What another service appended (intake, preflight, agents), not yet seen by routing."""
        head = len(await self.store.read_stream(stream_id))
        await self.store.append(stream_id, head, [NewEvent(new_event_id(), event, self.now) for event in events])
        return await self.store.read_stream(stream_id, head + 1)

    async def record(self, stream_id: str, *events: Event) -> list[EventEnvelope]:
        """Stored, then read by routing from Kafka one record at a time."""
        stored = await self.stored(stream_id, *events)
        for envelope in stored:
            await self.app.on_events([envelope])
        return stored

    async def agent(self, agent_id: str, *events: AgentEvent) -> None:
        await self.record(agent_stream(agent_id), *events)

    async def ticket(self, ticket_id: uuid.UUID, *events: TicketEvent) -> None:
        await self.record(ticket_stream(ticket_id), *events)

    async def new_ticket(
        self, desk: str = "bitrix24-box", track: str = "box", category: str = "configuration", **kw: object
    ) -> uuid.UUID:
        ticket_id = uuid.uuid4()
        await self.ticket(ticket_id, opened(ticket_id, desk, track, at=self.now, **kw))  # type: ignore[arg-type]
        await self.ticket(ticket_id, e.PreflightPassed(ticket_id, category))
        return ticket_id

    async def events(self, ticket_id: uuid.UUID) -> list[Event]:
        return [env.event for env in await self.store.read_stream(ticket_stream(ticket_id))]

    async def log(self) -> list[EventEnvelope]:
        """Every stored event in log order (in memory: this world's alone)."""
        return [stored.envelope for stored in await self.store.read_all(limit=1 << 62)]

    def assignee(self, ticket_id: uuid.UUID) -> str | None:
        return self.state.tickets[ticket_id].state.assignee
