"""Through the real broker: TicketOpened appended to the store, relayed from the store to Kafka, consumed
by preflight's per-key worker (in-process, group "preflight-<random>"), and the decisions found back in
the store. A record that is not an envelope lands on `<topic>.dlq` with its cause."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from preflight_fakes import Certificates, ServeFactory, healthy_routes
from support.dead_letters import read_dead_letters
from support.infra import KafkaTopicFactory
from support.polling import eventually
from support.relay import relay_from_now
from test_service_preflight import PRODUCT_ERROR, events_of, make_service, open_ticket, ticket_of

from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.topics import TICKET_EVENTS
from ticketflow.deskconfig import load_desks
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.per_key import per_key_batches
from ticketflow.messaging.producer import make_producer
from ticketflow.preflight.adapters.checks import ChecksConfig
from ticketflow.preflight.consumer import worker

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


async def test_preflight_decides_tickets_relayed_through_kafka(
    pool: asyncpg.Pool,
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    kafka_topic_factory: KafkaTopicFactory,
    config: ChecksConfig,
    serve: ServeFactory,
    certs: Certificates,
) -> None:
    topic = await kafka_topic_factory(partitions=3, suffix="ticket-events")
    dead_letter_topic = f"{topic}.dlq"
    await kafka_admin.create_topics([NewTopic(dead_letter_topic, num_partitions=1, replication_factor=1)])
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, load_desks(), config)
    stop = asyncio.Event()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    relay = await relay_from_now(service.store, kafka_bootstrap, {TICKET_EVENTS: topic})
    relaying = asyncio.create_task(relay.run(stop))
    broker = KafkaBroker(kafka_bootstrap)
    events = worker(service, DeadLetterWriter(producer, "preflight"), 64)
    per_key_batches(broker, [topic], f"preflight-{uuid.uuid4()}", events, max_records=64)
    await broker.start()
    try:
        admin = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url())
        visitor = await open_ticket(service.store, text=PRODUCT_ERROR, roles=("end_user",), portal_url=server.url())
        await broker.publish(b"not an envelope", topic=topic, key=b"junk")

        async def decided(envelope_ticket: uuid.UUID, kind: type) -> bool:
            return any(isinstance(ev, kind) for ev in await events_of(service.store, envelope_ticket))

        await eventually(lambda: decided(ticket_of(admin), e.PreflightPassed), "PreflightPassed for the admin")
        await eventually(lambda: decided(ticket_of(visitor), e.TicketRefused), "TicketRefused for the visitor")
        refused = (await events_of(service.store, ticket_of(visitor)))[-1]
        assert refused.code == "not_portal_admin"

        [letter] = await read_dead_letters(kafka_bootstrap, dead_letter_topic)
        assert (letter.value, letter.reason, letter.consumer) == (b"not an envelope", "undecodable", "preflight")
        assert letter.original_topic == topic
        # The decisions came back through the relay as well (two opened, two decided): PreflightPassed is
        # nothing to do, and a refused ticket leaves the duplicate index (an idempotent delete).
        await eventually(lambda: events.handled >= 4, "own decisions seen")
        assert len(await events_of(service.store, ticket_of(admin))) == 2
    finally:
        stop.set()
        await broker.stop()
        with contextlib.suppress(Exception):
            await relaying
        await producer.stop()
        await kafka_admin.delete_topics([dead_letter_topic])
