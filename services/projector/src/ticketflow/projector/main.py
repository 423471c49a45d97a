"""Composition: the projector keeps the read models current, serves the dashboard API and relays the
outbox to Kafka (several instances may run: one relays, holding the relay lock; projections are
checkpointed in the database, so any instance continues where another stopped).

Run: `python -m ticketflow.projector` (TICKETFLOW_PROJECTOR_PORT, default 8006)."""

from __future__ import annotations

import asyncio

from ticketflow.eventstore import EventStore
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.relay import OutboxRelay
from ticketflow.projector import ops
from ticketflow.projector.app import Projector
from ticketflow.projector.http import routes
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import Runtime, Service


def build(settings: ProjectorSettings) -> Service:
    async def start(rt: Runtime) -> None:
        store = EventStore(rt.pool)
        projector = Projector(store, batch_size=settings.projection_batch)
        rt.serve(*routes(rt.pool))
        rt.background("projections", projector.run)
        ops.register(rt)
        if settings.relay:
            rt.background("outbox relay", lambda stop: relay(store, stop))

    async def relay(store: EventStore, stop: asyncio.Event) -> None:
        producer = make_producer(
            settings.kafka_bootstrap, settings.kafka_security(), client_id="ticketflow-projector-relay"
        )
        await producer.start()
        try:
            relay = OutboxRelay(store, producer, batch_size=settings.relay_batch, topic_names=settings.relay_topics)
            await relay.run(stop)
        finally:
            await producer.stop()

    return Service("projector", settings, start)
