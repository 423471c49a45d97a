"""The operators' commands the projector executes (`ops.commands`, `ticketflow.runtime.ops_commands`):
rebuilding a read model, and, as the process that runs the relay, replaying a ticket's events and
redriving a dead-letter topic. One instance executes each command."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from tqdm import tqdm

from ticketflow.contracts.ops import OpsCommandEnvelope, RebuildProjection, RedriveDeadLetters, ReplayTicket
from ticketflow.deskconfig import DeskRegistry
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.rebuild import RebuildInProgress, RebuildProgress
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.redrive import DeadLetterFilter, NoDeadLetterTopic, redrive
from ticketflow.messaging.replay import replay_streams, ticket_streams
from ticketflow.projector.app import UnknownReadModel, rebuild
from ticketflow.runtime.ops_commands import Counts, OpsDone, OpsRejected
from ticketflow.runtime.service import Runtime


async def rebuild_projection(
    pool: asyncpg.Pool, desks: DeskRegistry, projection: str, *, show_progress: bool = False
) -> int:
    """A rebuild started by `ticketflow rebuild` or `RebuildProjection`: the read model is filled in copies of
    its tables and swapped in while the projector runs (`app.rebuild`); returns the events applied. Raises
    KeyError for a read model the projector does not keep, or while another rebuild of it runs."""
    bars: dict[str, Any] = {}

    def show(progress: RebuildProgress) -> None:
        bar = bars.get(progress.projection)
        if bar is None:
            bar = bars[progress.projection] = tqdm(total=progress.total, unit="ev", desc=progress.projection)
        bar.update(progress.applied - bar.n)

    try:
        reports = await rebuild(pool, desks, [projection], progress=show if show_progress else None)
    except (UnknownReadModel, RebuildInProgress) as refused:
        raise KeyError(str(refused)) from None
    finally:
        for bar in bars.values():
            bar.close()
    return sum(report.applied for report in reports)


def register(rt: Runtime, desks: DeskRegistry, topic_names: Mapping[str, str]) -> None:
    """`topic_names`: the relay's (a replay goes where the relay publishes)."""
    security = rt.settings.kafka_security()

    async def rebuild(command: RebuildProjection, _: OpsCommandEnvelope) -> Counts:
        try:
            return {"events": await rebuild_projection(rt.pool, desks, command.projection)}
        except KeyError as unknown:
            raise OpsRejected(unknown.args[0]) from None

    async def replay(command: ReplayTicket, _: OpsCommandEnvelope) -> Counts:
        producer = make_producer(rt.settings.kafka_bootstrap, security, client_id="ticketflow-projector-replay")
        await producer.start()
        try:
            streams = ticket_streams(command.ticket_id)
            return {"events": await replay_streams(EventStore(rt.pool), producer, streams, topic_names)}
        finally:
            await producer.stop()

    async def redrive_dead_letters(command: RedriveDeadLetters, _: OpsCommandEnvelope) -> OpsDone:
        which = DeadLetterFilter(command.reason, command.min_age_seconds, command.max_age_seconds)
        try:
            result = await redrive(rt.settings.kafka_bootstrap, command.topic, which=which, limit=command.limit,
                                   security=security)  # fmt: skip
        except NoDeadLetterTopic as missing:
            raise OpsRejected(str(missing)) from None
        counts = {"read": result.read, "redriven": result.redriven, "left": result.left}
        return OpsDone(counts, result.describe())

    rt.on_ops(RebuildProjection, rebuild)
    rt.on_ops(ReplayTicket, replay)
    rt.on_ops(RedriveDeadLetters, redrive_dead_letters)
