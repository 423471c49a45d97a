"""Composition: the projector keeps the read models current and relays the event store's log to Kafka
(several instances may run: one relays, holding the relay lock, and a former relay is fenced by Kafka;
each read model's batches take turns on its checkpoint row, so instances share the work and any
continues where another stopped). The query API over
the read models is the queries service (docs/queries.md).

Run: `python -m ticketflow.projector` (TICKETFLOW_PROJECTOR_PORT, default 8006: health only)."""

from __future__ import annotations

from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.messaging.relay import Relay
from ticketflow.messaging.relay_metrics import RelayMetrics
from ticketflow.projector import ops
from ticketflow.projector.app import Projector
from ticketflow.projector.settings import ProjectorSettings
from ticketflow.runtime.service import Runtime, Service


def build(settings: ProjectorSettings) -> Service:
    desks = load_desks(settings.desk_folder())

    async def start(rt: Runtime) -> None:
        store = EventStore(rt.pool)
        projector = Projector(store, desks, batch_size=settings.projection_batch)
        rt.background("projections", projector.run)
        ops.register(rt, desks, settings.relay_topics)
        relay = Relay(store, settings.kafka_bootstrap, settings.kafka_security(), name=settings.relay_name,
                      batch_size=settings.relay_batch, topic_names=settings.relay_topics,
                      max_record_bytes=settings.relay_max_record_bytes)  # fmt: skip
        if settings.relay:
            rt.background("relay", relay.run)
        if rt.measuring:  # the relay's backlog and lag, measured apart from the relay (which may run elsewhere)
            rt.background("relay metrics", RelayMetrics(relay, every_s=settings.metrics_interval_seconds).run)

    return Service("projector", settings, start)
