"""Routing's subscriptions without a broker (the real-broker runs are test_routing_e2e.py and the
pattern's own tests/messaging/test_ordered.py):
- ticket and agent events (the ordered pipeline with routing's `begin`): offsets are committed exactly,
  in order, and only once stored; a failed store seeks every partition back to the first record not
  stored and commits nothing past it; redelivered records store nothing twice; an undecodable record
  is dead-lettered and its batch committed;
- commands (per-key batches): a refused command is dead-lettered with the reason and the command id; a
  store outage gives the batch back, never a dead letter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

import msgspec
import pytest
from aiokafka import TopicPartition
from routing_builders import DESKS, MONDAY_11_MSK, World, joined, opened
from support.records import FakeRecord, RecordingProducer

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope, NewEvent, envelope_encoder
from ticketflow.contracts.ids import new_event_id, ticket_stream
from ticketflow.eventstore import AppendRequest, AppendResult, InMemoryEventStore
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.ordered import OrderedPipeline
from ticketflow.messaging.outages import Backoff
from ticketflow.messaging.per_key import BatchNotProcessed
from ticketflow.routing.app import Routing
from ticketflow.routing.consumer import commands_worker, events_pipeline
from ticketflow.routing.domain.state import RoutingState


class Consumer:
    """What the pipeline uses of an AIOKafkaConsumer: commits, seeks, and the position a fetch leaves."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = self.positions[tp] = offset


class FlakyStore(InMemoryEventStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def append_many(self, requests: Sequence[AppendRequest], *, conn: object = None) -> list[AppendResult]:
        if self.failures:
            self.failures -= 1
            raise OSError("connection to PostgreSQL lost")
        return await super().append_many(requests)


async def ticket_records(
    store: InMemoryEventStore, partition: int, first_offset: int
) -> tuple[uuid.UUID, list[FakeRecord]]:
    """A ticket as intake and preflight stored it, and its two records on ticket.events."""
    t = uuid.uuid4()
    events = [opened(t), e.PreflightPassed(t, "updates")]
    await store.append(ticket_stream(t), 0, [NewEvent(new_event_id(), ev, MONDAY_11_MSK) for ev in events])
    envelopes: list[EventEnvelope] = await store.read_stream(ticket_stream(t))
    return t, [
        FakeRecord("ticket.events", partition, first_offset + i, str(t).encode(), envelope_encoder.encode(env))
        for i, env in enumerate(envelopes)
    ]


async def setup(store: InMemoryEventStore) -> tuple[OrderedPipeline, Routing, RecordingProducer]:
    state = RoutingState(DESKS)
    for event in joined("anna", "b24-box", capacity=50):
        state.apply_agent(event)
    app = Routing(state, store, clock=lambda: MONDAY_11_MSK)
    producer = RecordingProducer()
    pipeline = events_pipeline(app, DeadLetterWriter(producer, "routing"))  # type: ignore[arg-type]
    pipeline.retry_after_s = 0
    return pipeline, app, producer


async def fetch(pipeline: OrderedPipeline, consumer: Consumer, records: Sequence[FakeRecord]) -> None:
    """The consumer fetched `records` (its position moves past them); the subscriber hands them on."""
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        consumer.positions[tp] = max(consumer.positions.get(tp, 0), r.offset + 1)
    await pipeline.handle(records, consumer)


async def settled(pipeline: OrderedPipeline) -> None:
    """Every batch in flight stored (or failed) and committed (or sought back)."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if pipeline.in_flight == 0:
            await asyncio.sleep(0.01)  # a recovery, if one runs, ends (retry_after_s = 0)
            if pipeline.in_flight == 0:
                return
    raise AssertionError("batches still in flight")


async def kinds(store: InMemoryEventStore, ticket: uuid.UUID) -> list[str]:
    return [type(env.event).__name__ for env in await store.read_stream(ticket_stream(ticket))]


async def test_offsets_are_committed_exactly_and_in_order_once_stored() -> None:
    store = InMemoryEventStore()
    pipeline, app, _ = await setup(store)
    consumer = Consumer()
    first, batch1 = await ticket_records(store, 0, 10)
    second, batch2 = await ticket_records(store, 1, 20)
    await fetch(pipeline, consumer, batch1)
    await fetch(pipeline, consumer, batch2)
    await settled(pipeline)
    assert consumer.commits == [{TopicPartition("ticket.events", 0): 12}, {TopicPartition("ticket.events", 1): 22}]
    assert {app.state.tickets[t].state.assignee for t in (first, second)} == {"anna"}
    assert len(await kinds(store, first)) == 4


async def test_a_failed_store_rewinds_every_partition_and_commits_nothing_past_it() -> None:
    store = FlakyStore(failures=0)
    pipeline, app, _ = await setup(store)
    consumer = Consumer()
    first, batch1 = await ticket_records(store, 0, 10)
    _, batch2 = await ticket_records(store, 1, 20)
    store.failures = 1  # routing's first store
    await fetch(pipeline, consumer, batch1)
    await fetch(pipeline, consumer, batch2)
    await settled(pipeline)
    assert consumer.seeks == {TopicPartition("ticket.events", 0): 10, TopicPartition("ticket.events", 1): 20}
    assert consumer.commits == []  # the second batch was read before the rewind: it comes again
    # (The next flush already refolded the forgotten ticket from the store and decided it again.)
    # Redelivered from the sought-back positions: now stored, and committed.
    await fetch(pipeline, consumer, batch1 + batch2)
    await settled(pipeline)
    assert await kinds(store, first) == ["TicketOpened", "PreflightPassed", "TicketRouted", "TicketAssigned"]
    assert app.state.tickets[first].state.assignee == "anna"  # once: nothing decided twice
    assert consumer.commits[-1] == {TopicPartition("ticket.events", 0): 12, TopicPartition("ticket.events", 1): 22}


async def test_an_undecodable_record_is_dead_lettered_and_its_batch_committed() -> None:
    store = InMemoryEventStore()
    pipeline, app, producer = await setup(store)
    consumer = Consumer()
    ticket, records = await ticket_records(store, 0, 10)
    garbage = FakeRecord("ticket.events", 0, 12, b"t", b'{"not": "an envelope"}')
    await fetch(pipeline, consumer, [*records, garbage])
    await settled(pipeline)
    [sent] = producer.sent
    letter = DeadLetter.of(FakeRecord(sent["topic"], 0, 0, sent["key"], sent["value"], headers=sent["headers"]))
    assert (sent["topic"], letter.reason, letter.consumer) == ("ticket.events.dlq", "undecodable", "routing")
    assert (letter.original_topic, letter.original_offset, letter.value) == ("ticket.events", 12, garbage.value)
    assert app.state.tickets[ticket].state.assignee == "anna"  # the good records around it are decided
    assert consumer.commits == [{TopicPartition("ticket.events", 0): 13}]


def command_record(envelope: CommandEnvelope, offset: int = 0) -> FakeRecord:
    return FakeRecord(
        "ticket.commands", 0, offset, str(envelope.command.ticket_id).encode(), msgspec.json.encode(envelope)
    )


async def routed_ticket(store: InMemoryEventStore) -> tuple[Routing, uuid.UUID]:
    """Anna on the b24-box queue, and a ticket routed and given to her."""
    world = World(store=store)
    await world.agent("anna", *joined("anna", "b24-box"))
    return world.app, await world.new_ticket()


async def test_a_refused_command_is_dead_lettered_with_the_reason_and_the_command_id() -> None:
    store = InMemoryEventStore()
    app, ticket = await routed_ticket(store)
    producer = RecordingProducer()
    worker = commands_worker(app, DeadLetterWriter(producer, "routing"))  # type: ignore[arg-type]
    refused = CommandEnvelope(uuid.uuid4(), MONDAY_11_MSK, "lead-b24", c.AssignTicket(ticket, "ghost"))
    moved = CommandEnvelope(uuid.uuid4(), MONDAY_11_MSK, "lead-b24", c.ChangePriority(ticket, "high", "lead-b24"))
    await worker.process([command_record(refused, 0), command_record(moved, 1)])
    [sent] = producer.sent
    letter = DeadLetter.of(FakeRecord(sent["topic"], 0, 0, sent["key"], sent["value"], headers=sent["headers"]))
    assert sent["topic"] == "ticket.commands.dlq"
    assert (letter.reason, letter.detail) == ("rejected", "unknown agent ghost")
    assert letter.context == {"command-id": str(refused.command_id)}
    assert (await kinds(store, ticket))[-1] == "PriorityChanged"  # the next command is applied


async def test_a_store_outage_gives_the_commands_back_and_dead_letters_nothing() -> None:
    store = FlakyStore(failures=0)
    app, ticket = await routed_ticket(store)
    producer = RecordingProducer()
    worker = commands_worker(app, DeadLetterWriter(producer, "routing"))  # type: ignore[arg-type]
    worker.backoff = Backoff(first_s=0.001, cap_s=0.001)
    store.failures = 10  # longer than the in-place retries
    command = CommandEnvelope(
        uuid.uuid4(), MONDAY_11_MSK + timedelta(minutes=1), "lead-b24", c.ChangePriority(ticket, "urgent", "lead-b24")
    )
    with pytest.raises(BatchNotProcessed):
        await worker.process([command_record(command)])
    assert producer.sent == []
    store.failures = 0  # the outage ends: the batch comes again
    await worker.process([command_record(command)])
    await worker.process([command_record(command)])  # and again (a redelivery): nothing twice
    assert (await kinds(store, ticket)).count("PriorityChanged") == 1
    assert producer.sent == []
