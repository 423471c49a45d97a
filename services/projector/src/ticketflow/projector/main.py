"""Composition: the projector keeps the read models current, serves the dashboard API and relays the
event store's log to Kafka (several instances may run: one relays, holding the relay lock, and a former
relay is fenced by Kafka; projections are checkpointed in the database, so any instance continues
where another stopped).

Run: `python -m ticketflow.projector` (TICKETFLOW_PROJECTOR_PORT, default 8006)."""

from __future__ import annotations

from ticketflow.eventstore import EventStore
from ticketflow.messaging.relay import Relay
from ticketflow.messaging.relay_metrics import RelayMetrics
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
        ops.register(rt, settings.relay_topics)
        relay = Relay(store, settings.kafka_bootstrap, settings.kafka_security(), name=settings.relay_name,
                      batch_size=settings.relay_batch, topic_names=settings.relay_topics)  # fmt: skip
        if settings.relay:
            rt.background("relay", relay.run)
        if rt.measuring:  # the relay's backlog and lag, measured apart from the relay (which may run elsewhere)
            rt.background("relay metrics", RelayMetrics(relay, every_s=settings.metrics_interval_seconds).run)

    return Service("projector", settings, start)
