"""The service's own PostgreSQL pool: the ledger and the event store share it.

Why not the runtime's pool: released connections here skip asyncpg's default reset query, a round trip
per released connection, i.e. per ledger statement (fc0f1fb; `tests/load/notifications/bench_e2e.py`,
docs/benchmarks.md "Notifications"). That is safe only because this service sets no session state,
takes no advisory locks on it (the liveness lock has a session of its own) and never LISTENs; an open
transaction is still rolled back by the pool before the reset hook runs. The runtime's pool answers
readiness only.
"""

from __future__ import annotations

import asyncpg


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The reset hook: nothing to reset (see the module docstring)."""


async def make_pool(dsn: str, size: int) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=2, max_size=size, reset=_keep_session)
    return pool
