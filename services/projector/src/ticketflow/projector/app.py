"""The projector's application: the read models it keeps from the global log, and their rebuild.

The projector decides nothing and appends nothing: it follows the event store (`ProjectionRunner`:
a batch of the log and its checkpoint in one transaction) and, in the same process, relays the outbox to
Kafka (`ticketflow.messaging.relay`)."""

from __future__ import annotations

import asyncio

from ticketflow.eventstore import EventStore
from ticketflow.eventstore.projections import ProjectionRunner
from ticketflow.projector.adapters.ticket_summaries import TicketSummaries

PROJECTIONS = ("ticket_summaries",)  # the read models this service keeps (rebuildable by name)


class Projector:
    def __init__(self, store: EventStore, *, batch_size: int = 1000) -> None:
        self.runner = ProjectionRunner(store, TicketSummaries(), batch_size=batch_size)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the read models current until stopped."""
        await self.runner.run(stop)

    async def rebuild(self, *, show_progress: bool = False) -> int:
        """Empty the read models and replay the whole store into them; returns the events applied."""
        return await self.runner.rebuild(show_progress=show_progress)
