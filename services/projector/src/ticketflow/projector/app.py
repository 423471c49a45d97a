"""The projector's application: the read models it keeps from the global log, and their rebuild.

The projector decides nothing and appends nothing. Each read model is a projection with its own checkpoint
(`ProjectionRunner`: a batch of the log and the checkpoint in one transaction), run concurrently; in the
same process the store's log is relayed to Kafka (`ticketflow.messaging.relay`). A rebuild fills copies of a
read model's tables and swaps them in while the projector runs (`ticketflow.eventstore.rebuild`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import asyncpg

from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.projections import Projection, ProjectionRunner
from ticketflow.eventstore.rebuild import RebuildProgress, RebuildReport, rebuild_projection
from ticketflow.projector.adapters.read_models import NAMES, read_models


class UnknownReadModel(ValueError):
    """A rebuild named a read model the projector does not keep; the message lists the ones it keeps."""


class Projector:
    def __init__(self, store: EventStore, desks: DeskRegistry, *, batch_size: int = 1000) -> None:
        self.store = store
        self.projections = read_models(desks)
        self.runners = [ProjectionRunner(store, p, batch_size=batch_size) for p in self.projections]

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every read model current until stopped (each follows the log at its own pace)."""
        await asyncio.gather(*(runner.run(stop) for runner in self.runners))

    async def catch_up(self) -> int:
        """Apply everything committed before this call to every read model; returns the events applied."""
        return sum(await asyncio.gather(*(runner.catch_up() for runner in self.runners)))


def choose(projections: Sequence[Projection], names: Sequence[str]) -> list[Projection]:
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise UnknownReadModel(f"no read model {', '.join(unknown)}; the read models: {', '.join(NAMES)}")
    return [p for p in projections if not names or p.name in names]


async def rebuild(
    pool: asyncpg.Pool,
    desks: DeskRegistry,
    names: Sequence[str] = (),
    *,
    batch_size: int = 1000,
    progress: Callable[[RebuildProgress], None] | None = None,
) -> list[RebuildReport]:
    """Rebuild the named read models (all when `names` is empty), one after another, each into copies of its
    tables swapped in atomically; the projector may keep running. Raises `UnknownReadModel` for a name it
    does not keep, `RebuildInProgress` when another rebuild of the same read model runs."""
    store = EventStore(pool)
    reports = []
    for projection in choose(read_models(desks), names):
        reports.append(await rebuild_projection(store, projection, batch_size=batch_size, progress=progress))
    return reports
