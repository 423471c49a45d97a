"""PostgreSQL checkpoints during a measured phase (benchmarks). A checkpoint that starts in a write-heavy
phase makes the first change of every page after it write a full-page image into the WAL: in the SLA
firing burst that has doubled PostgreSQL's CPU per event (docs/benchmarks.md). A phase's figures are
read together with this.

`pg_stat_bgwriter` (PostgreSQL 15; `pg_stat_checkpointer` from 17) counts the checkpoints the server
started and the buffers the checkpointer and the backends wrote; `pg_control_checkpoint()` says when the
latest completed checkpoint began. Both are server-wide (other databases' work too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

_STATS = """
SELECT checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_backend,
       (SELECT checkpoint_time FROM pg_control_checkpoint()) AS last_started
FROM pg_stat_bgwriter
"""


@dataclass(frozen=True)
class CheckpointStats:
    timed: int
    requested: int
    checkpointer_buffers: int
    backend_buffers: int
    last_started: datetime


async def checkpoint_stats(conn: Any) -> CheckpointStats:
    row = await conn.fetchrow(_STATS)
    return CheckpointStats(*row)


class CheckpointWatch:
    """`watch = await CheckpointWatch.begin(pool)` before a phase, `watch.summary(await checkpoint_stats(pool))`
    after it: one line for the phase's table."""

    def __init__(self, before: CheckpointStats) -> None:
        self.before = before

    @classmethod
    async def begin(cls, conn: Any) -> CheckpointWatch:
        return cls(await checkpoint_stats(conn))

    def started(self, after: CheckpointStats) -> int:
        return (after.timed + after.requested) - (self.before.timed + self.before.requested)

    def summary(self, after: CheckpointStats) -> str:
        b = self.before
        started = self.started(after)
        text = f"{started} started ({after.timed - b.timed} timed, {after.requested - b.requested} requested)"
        if after.last_started != b.last_started:
            text += f", the latest at {after.last_started:%H:%M:%S}"
        by_checkpointer = after.checkpointer_buffers - b.checkpointer_buffers
        by_backends = after.backend_buffers - b.backend_buffers
        return f"{text}; buffers written by the checkpointer {by_checkpointer:,}, by backends {by_backends:,}"
