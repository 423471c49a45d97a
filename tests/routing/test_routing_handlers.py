"""The pipelined event handler: offsets are committed exactly, in order, and only once stored; a
failed store rewinds every partition to the first record not stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from routing_builders import DESKS, MONDAY_11_MSK, opened

from ticketflow.contracts import roster_events as r
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope, NewEvent, envelope_encoder
from ticketflow.contracts.ids import agent_stream, new_event_id, ticket_stream
from ticketflow.eventstore.store import AppendRequest
from ticketflow.routing.handlers import RoutingHandlers
from ticketflow.routing.memory import Appended, MemoryStreams
from ticketflow.routing.service import RoutingService
from ticketflow.routing.state import RoutingState


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


class FlakyStreams(MemoryStreams):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        if self.failures:
            self.failures -= 1
            raise OSError("connection to PostgreSQL lost")
        return await super().append_many(requests)


class NoDeadLetters:
    async def send(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing here is undecodable")


def ticket_records(streams: MemoryStreams, partition: int, first_offset: int) -> tuple[uuid.UUID, list[Record]]:
    """A ticket as intake and preflight stored it, and its two records on ticket.events."""
    t = uuid.uuid4()
    events = [opened(t), e.PreflightPassed(t, "updates")]
    streams.append_now(ticket_stream(t), 0, [NewEvent(new_event_id(), ev, MONDAY_11_MSK) for ev in events])
    envelopes: list[EventEnvelope] = streams.streams[ticket_stream(t)]
    return t, [
        Record("ticket.events", partition, first_offset + i, envelope_encoder.encode(env))
        for i, env in enumerate(envelopes)
    ]


async def setup(streams: MemoryStreams) -> tuple[RoutingHandlers, RoutingService]:
    state = RoutingState(DESKS)
    for event in (r.AgentJoinedQueue("anna", "b24-box", capacity=50), r.AgentStatusChanged("anna", "online")):
        state.apply_agent(event)
    streams.append_now(agent_stream("anna"), 0, [])
    service = RoutingService(state, streams, clock=lambda: MONDAY_11_MSK)
    handlers = RoutingHandlers(NoDeadLetters(), max_in_flight=2)  # type: ignore[arg-type]
    handlers.retry_pause = 0
    handlers.service = service
    handlers.ready.set()
    return handlers, service


async def settle(handlers: RoutingHandlers) -> None:
    await asyncio.gather(*(task for task, _ in handlers._in_flight))


async def test_offsets_are_committed_exactly_and_in_order_once_stored() -> None:
    streams = MemoryStreams()
    handlers, service = await setup(streams)
    consumer = Consumer()
    first, batch1 = ticket_records(streams, 0, 10)
    second, batch2 = ticket_records(streams, 1, 20)
    await handlers.events_pipelined(batch1, consumer)
    await handlers.events_pipelined(batch2, consumer)
    await settle(handlers)
    assert consumer.commits == [{TopicPartition("ticket.events", 0): 12}, {TopicPartition("ticket.events", 1): 22}]
    assert {service.state.tickets[t].state.assignee for t in (first, second)} == {"anna"}
    assert len(streams.streams[ticket_stream(first)]) == 4


async def test_a_failed_store_rewinds_every_partition_and_commits_nothing_past_it() -> None:
    streams = FlakyStreams(failures=1)
    handlers, service = await setup(streams)
    consumer = Consumer()
    first, batch1 = ticket_records(streams, 0, 10)
    _, batch2 = ticket_records(streams, 1, 20)
    await handlers.events_pipelined(batch1, consumer)
    await handlers.events_pipelined(batch2, consumer)
    await settle(handlers)
    assert consumer.seeks == {TopicPartition("ticket.events", 0): 10, TopicPartition("ticket.events", 1): 20}
    assert consumer.commits == []  # the second batch was read before the rewind: it comes again
    # (The next flush already refolded the forgotten ticket from the store and decided it again.)
    # Redelivered from the rewound positions: now stored, and committed.
    consumer.commits.clear()
    await handlers.events_pipelined(batch1 + batch2, consumer)
    await settle(handlers)
    assert [type(env.event).__name__ for env in streams.streams[ticket_stream(first)]] == [
        "TicketOpened",
        "PreflightPassed",
        "TicketRouted",
        "TicketAssigned",
    ]  # once: nothing decided twice
    assert service.state.tickets[first].state.assignee == "anna"
    assert consumer.commits[-1] == {TopicPartition("ticket.events", 0): 12, TopicPartition("ticket.events", 1): 22}
