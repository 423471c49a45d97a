"""The operators' commands the projector executes (`ops.commands`, `ticketflow.runtime.ops_commands`):
rebuilding a read model, and, as the process that runs the outbox relay, replaying a ticket's events and
redriving a dead-letter topic. One instance executes each command."""

from __future__ import annotations

import asyncpg

from ticketflow.contracts.ops import OpsCommandEnvelope, RebuildProjection, RedriveDeadLetters, ReplayTicket
from ticketflow.eventstore import EventStore
from ticketflow.messaging.redrive import DeadLetterFilter, NoDeadLetterTopic, redrive
from ticketflow.messaging.replay import replay_streams, ticket_streams
from ticketflow.projector.app import PROJECTIONS, Projector
from ticketflow.runtime.ops_commands import Counts, OpsDone, OpsRejected
from ticketflow.runtime.service import Runtime


async def rebuild_projection(pool: asyncpg.Pool, projection: str, *, show_progress: bool = False) -> int:
    """The one way a rebuild is started (the CLI and `RebuildProjection`): empties the read model and
    replays the whole store into it; returns the events applied. Raises KeyError for an unknown one."""
    if projection not in PROJECTIONS:
        raise KeyError(f"unknown projection {projection!r}: the projector keeps {', '.join(PROJECTIONS)}")
    return await Projector(EventStore(pool)).rebuild(show_progress=show_progress)


def register(rt: Runtime) -> None:
    security = rt.settings.kafka_security()

    async def rebuild(command: RebuildProjection, _: OpsCommandEnvelope) -> Counts:
        try:
            return {"events": await rebuild_projection(rt.pool, command.projection)}
        except KeyError as unknown:
            raise OpsRejected(unknown.args[0]) from None

    async def replay(command: ReplayTicket, _: OpsCommandEnvelope) -> Counts:
        return {"events": await replay_streams(rt.pool, ticket_streams(command.ticket_id))}

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
