"""The projector: the event store's outbound side. It relays the outbox to Kafka, keeps the
read models current from the global log, and serves the dashboard query API.

Several instances may run: one relays (advisory lock), the others stand by; projections are
checkpointed per batch in the database, so any instance can continue where another stopped."""

from __future__ import annotations

import asyncio

from ticketflow.eventstore import EventStore
from ticketflow.eventstore.outbox import OutboxRelay, make_producer
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.projector.handlers import routes
from ticketflow.projector.projection import TicketSummaries
from ticketflow.runtime.service import Service, new_service, run


def build() -> Service:
    service = new_service("projector")
    service.routes.extend(routes(lambda: service.pool))

    async def relay(stop: asyncio.Event) -> None:
        assert service.pool is not None
        producer = make_producer(service.settings.kafka_bootstrap)
        await producer.start()
        try:
            await OutboxRelay(EventStore(service.pool), producer).run(stop)
        finally:
            await producer.stop()

    async def project(stop: asyncio.Event) -> None:
        assert service.pool is not None
        await ProjectionRunner(EventStore(service.pool), TicketSummaries()).run(stop)

    service.background += [relay, project]
    return service


def main() -> None:
    run(build())


if __name__ == "__main__":
    main()
