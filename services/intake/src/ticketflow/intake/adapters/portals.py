"""Bitrix24 portals' application tokens and domains (stored at ONAPPINSTALL/ONAPPUPDATE), with an
in-process cache. The stored domain is the only address intake ever calls for a portal (`user.admin`)."""

from __future__ import annotations

import asyncpg

from ticketflow.intake.platforms.bitrix24 import Bitrix24Event, tokens_match
from ticketflow.intake.platforms.web import Problem

_GET = "SELECT application_token, domain FROM intake_bitrix24_portals WHERE member_id = $1"
_INSERT = """
INSERT INTO intake_bitrix24_portals (member_id, application_token, domain, client_endpoint)
VALUES ($1, $2, $3, $4) ON CONFLICT (member_id) DO NOTHING RETURNING true
"""
_TOUCH = """
UPDATE intake_bitrix24_portals
SET domain = $2, client_endpoint = $3, updated_at = now(), bot_deleted_at = NULL
WHERE member_id = $1
"""
_BOT_DELETED = "UPDATE intake_bitrix24_portals SET bot_deleted_at = now() WHERE member_id = $1"


class PortalTokens:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._cache: dict[str, str] = {}
        self._domains: dict[str, str] = {}

    async def _stored(self, member_id: str, *, fresh: bool = False) -> str | None:
        if not fresh and member_id in self._cache:
            return self._cache[member_id]
        row = await self.pool.fetchrow(_GET, member_id)
        if row is None:
            return None
        self._cache[member_id] = row["application_token"]
        self._domains[member_id] = row["domain"]
        return str(row["application_token"])

    async def domain(self, member_id: str, *, expected: str = "") -> str | None:
        """The domain stored for an installed portal. When the caller saw another one (`expected`), the
        row is read again: another intake process may have handled an ONAPPUPDATE meanwhile."""
        known = self._domains.get(member_id)
        if known is None or (expected and expected.lower() != known.lower()):
            await self._stored(member_id, fresh=True)
        return self._domains.get(member_id) or None

    async def verify(self, event: Bitrix24Event) -> None:
        """403 unless the event carries the token this portal installed with."""
        stored = await self._stored(event.member_id)
        if stored is not None and not tokens_match(stored, event.application_token):
            stored = await self._stored(event.member_id, fresh=True)  # another process may know better
        if stored is None:
            raise Problem(403, "portal_not_installed", f"portal {event.member_id!r} has not installed the app")
        if not tokens_match(stored, event.application_token):
            raise Problem(403, "wrong_application_token", "auth[application_token] does not match")

    async def install(self, event: Bitrix24Event) -> bool:
        """First install stores the token (True); a repeat must present the same token (else 403)."""
        if not event.application_token:
            raise Problem(422, "invalid_payload", "auth[application_token] is empty")
        async with self.pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                _INSERT, event.member_id, event.application_token, event.domain, event.client_endpoint
            )
            if created:
                self._cache[event.member_id] = event.application_token
                self._domains[event.member_id] = event.domain
                return True
        await self.verify(event)
        await self.pool.execute(_TOUCH, event.member_id, event.domain, event.client_endpoint)
        self._domains[event.member_id] = event.domain
        return False

    async def bot_deleted(self, event: Bitrix24Event) -> None:
        await self.verify(event)
        await self.pool.execute(_BOT_DELETED, event.member_id)
