"""Composition: the projector keeps the read models current and relays the outbox to Kafka (several
instances may run: one relays, holding the relay lock; each read model's batches take turns on its
checkpoint row, so instances share the work and any continues where another stopped). The query API over
the read models is the queries service (docs/queries.md).

Run: `python -m ticketflow.projector` (TICKETFLOW_PROJECTOR_PORT, default 8006: health only)."""

from __future__ import annotations

import asyncio

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.relay import OutboxRelay
from ticketflow.projector.app import Projector
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import Runtime, Service


def build(settings: ProjectorSettings) -> Service:
    desks = load_desks(settings.desk_folder())

    async def start(rt: Runtime) -> None:
        store = EventStore(rt.pool)
        projector = Projector(store, desks, batch_size=settings.projection_batch)
        rt.background("projections", projector.run)
        if settings.relay:
            rt.background("outbox relay", lambda stop: relay(store, stop))

    async def relay(store: EventStore, stop: asyncio.Event) -> None:
        producer = make_producer(settings.kafka_bootstrap, client_id="ticketflow-projector-relay")
        await producer.start()
        try:
            relay = OutboxRelay(store, producer, batch_size=settings.relay_batch, topic_names=settings.relay_topics)
            await relay.run(stop)
        finally:
            await producer.stop()

    return Service("projector", settings, start)
