"""Connecting to PostgreSQL, and which failures mean "try again"."""

from __future__ import annotations

import asyncio
import os
import re

import asyncpg

# The local development server (make infra-up) on loopback, without TLS: on 127.0.0.1 TLS protects
# nothing and costs CPU (asyncpg's default sslmode "prefer" negotiates it; measured 7,919 vs 9,653
# routing decisions/s). A deployment names its own server, and its sslmode, in TICKETFLOW_PG_DSN.
DEFAULT_DSN = "postgresql://ticketflow:ticketflow@127.0.0.1:5432/ticketflow?sslmode=disable"


_DSN_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@\s]+)@")
_PASSWORD_PARAMETER = re.compile(r"(?i)\b(password|passwd|pwd)=([^&\s'\"]+)")
MASK = "***"


def redact_dsn(text: str) -> str:
    """`text` with every DSN's password replaced by `***` (`postgresql://user:***@host/db`, and
    `password=` parameters): fit for a log line or an error message."""
    return _PASSWORD_PARAMETER.sub(rf"\1={MASK}", _DSN_PASSWORD.sub(rf"\1:{MASK}@", text))


def dsn_passwords(text: str) -> list[str]:
    """The passwords written in `text`'s DSNs (what `redact_dsn` hides)."""
    return [m.group(2) for m in _DSN_PASSWORD.finditer(text)] + [m.group(2) for m in _PASSWORD_PARAMETER.finditer(text)]


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
