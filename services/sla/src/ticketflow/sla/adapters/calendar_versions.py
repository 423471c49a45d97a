"""Calendar versions in PostgreSQL: each version's definition, so a desk configuration change (or a
restart with a changed configuration) still finds the calendar the clocks were counting in.

The service saves every version of its configuration at start-up, before it consumes anything, so
a version recorded in a ticket's state is always stored; and loads them all into `DeskRules`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

_SAVE = """
INSERT INTO sla_calendar_versions (version, definition)
SELECT u.version, u.definition FROM unnest($1::text[], $2::text[]) AS u(version, definition)
ON CONFLICT (version) DO NOTHING
"""
_LOAD = "SELECT version, definition FROM sla_calendar_versions"


async def save(pool: asyncpg.Pool | Any, definitions: Mapping[str, bytes]) -> None:
    """Store the versions not stored yet (a version's definition never changes: its hash names it)."""
    if not definitions:
        return
    versions = list(definitions)
    texts = [definitions[version].decode() for version in versions]
    async with pool.acquire() as conn:
        await conn.execute(_SAVE, versions, texts)


async def load(pool: asyncpg.Pool | Any) -> dict[str, bytes]:
    """Every stored version with its definition (for `DeskRules.remember`)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_LOAD)
    return {row["version"]: row["definition"].encode() for row in rows}
