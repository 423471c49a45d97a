"""The `bitrix24_installs` table: one verified install per portal, its tokens, and their renewal.

Reads are cached per process for `ttl_s` seconds (5 by default), found or not found, so an uninstall or
a deleted row stops being trusted by every process within that time, with no notification machinery to
lose messages; a portal costs one primary-key read per process per `ttl_s`.

Renewal (`renew`) is one at a time per portal across every process: the row is locked (`SELECT ... FOR
UPDATE`) while the OAuth server is asked, and whoever gets the lock second sees the new tokens and does
not ask again. Bitrix24 refresh tokens are single-use, so two processes renewing at once would otherwise
spend the same refresh token and the second would fail (and could not know the first one's new pair).
A refusal from the OAuth server is written on the row (`refresh_failure`) so no process asks again until
the portal installs the application anew. If the OAuth server took the refresh token but its answer was
lost (a timeout after sending), the pair is gone: that is Bitrix24's protocol; the next renewal gets
`invalid_grant` and the portal must reinstall (logged)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from ticketflow.bitrix24.errors import NotInstalled, TokenRefreshRefused, Unavailable
from ticketflow.bitrix24.oauth import Grant, OAuthServer

log = logging.getLogger("ticketflow.bitrix24")
RENEW_BEFORE = timedelta(seconds=60)  # renew a token this close to its end rather than fail a call with it
_COLUMNS = """member_id, client_id, domain, application_token, access_token, refresh_token, access_expires_at,
              token_generation, refresh_failure, bot_id"""
_GET = f"SELECT {_COLUMNS} FROM bitrix24_installs WHERE member_id = $1"
_LOCK = f"SELECT {_COLUMNS} FROM bitrix24_installs WHERE member_id = $1 FOR UPDATE"
_SAVE = """
INSERT INTO bitrix24_installs (member_id, client_id, domain, application_token, access_token, refresh_token,
                               access_expires_at, bot_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (member_id) DO UPDATE SET
    client_id = excluded.client_id, domain = excluded.domain, application_token = excluded.application_token,
    access_token = excluded.access_token, refresh_token = excluded.refresh_token,
    access_expires_at = excluded.access_expires_at, token_generation = bitrix24_installs.token_generation + 1,
    refresh_failure = NULL, bot_id = excluded.bot_id, installed_at = now(), refreshed_at = now()
"""
_RENEWED = """
UPDATE bitrix24_installs SET access_token = $2, refresh_token = $3, access_expires_at = $4,
       token_generation = token_generation + 1, refreshed_at = now()
WHERE member_id = $1 RETURNING token_generation
"""
_REFUSED = "UPDATE bitrix24_installs SET refresh_failure = $2 WHERE member_id = $1"
_DELETE = "DELETE FROM bitrix24_installs WHERE member_id = $1"
_SET_BOT = "UPDATE bitrix24_installs SET bot_id = $2 WHERE member_id = $1"


@dataclass(frozen=True)
class Install:
    member_id: str
    client_id: str
    domain: str  # host[:port]
    application_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    token_generation: int = 1
    refresh_failure: str | None = None
    bot_id: int | None = None

    @classmethod
    def from_grant(cls, grant: Grant, client_id: str, application_token: str) -> Install:
        return cls(grant.member_id, client_id, grant.domain, application_token, grant.access_token,
                   grant.refresh_token, grant.expires_at)  # fmt: skip

    @classmethod
    def _from_row(cls, row: Any) -> Install:
        return cls(
            member_id=row["member_id"],
            client_id=row["client_id"],
            domain=row["domain"],
            application_token=row["application_token"],
            access_token=row["access_token"],
            refresh_token=row["refresh_token"],
            access_expires_at=row["access_expires_at"],
            token_generation=row["token_generation"],
            refresh_failure=row["refresh_failure"],
            bot_id=row["bot_id"],
        )

    def rest_url(self, method: str) -> str:
        return f"https://{self.domain}/rest/{method}.json"

    def expiring(self, now: datetime | None = None) -> bool:
        return self.access_expires_at - (now or datetime.now(UTC)) < RENEW_BEFORE


class Installs:
    def __init__(self, pool: asyncpg.Pool, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Install | None]] = {}
        self._renewing: dict[str, asyncio.Lock] = {}

    async def get(self, member_id: str, *, fresh: bool = False) -> Install | None:
        """The portal's install, at most `ttl_s` old (`fresh`: read now)."""
        member_id = member_id.lower()
        cached = self._cache.get(member_id)
        if not fresh and cached is not None and self._clock() - cached[0] < self.ttl_s:
            return cached[1]
        row = await self.pool.fetchrow(_GET, member_id)
        install = Install._from_row(row) if row is not None else None
        self._cache[member_id] = (self._clock(), install)
        return install

    async def save(self, install: Install) -> None:
        """Store a verified install, replacing the portal's previous one (tokens, application token, bot)."""
        await self.pool.execute(
            _SAVE, install.member_id, install.client_id, install.domain, install.application_token,
            install.access_token, install.refresh_token, install.access_expires_at, install.bot_id,
        )  # fmt: skip
        self._cache[install.member_id] = (self._clock(), install)

    async def delete(self, member_id: str) -> bool:
        member_id = member_id.lower()
        deleted: str = await self.pool.execute(_DELETE, member_id)
        self._cache[member_id] = (self._clock(), None)
        return deleted.endswith(" 1")

    async def set_bot(self, member_id: str, bot_id: int | None) -> None:
        await self.pool.execute(_SET_BOT, member_id.lower(), bot_id)
        self._cache.pop(member_id.lower(), None)

    async def renew(self, member_id: str, oauth: OAuthServer, client_secret: str, *, stale: str | None) -> Install:
        """The install with a usable access token: the stored one if it is not `stale` (the token a call was
        refused with) and not about to expire, else a new pair from the OAuth server, under the row's lock."""
        member_id = member_id.lower()
        lock = self._renewing.setdefault(member_id, asyncio.Lock())
        async with lock:  # one waiter per process on the row lock; the others reuse its result
            refused: TokenRefreshRefused | None = None
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(_LOCK, member_id)
                if row is None:
                    self._cache[member_id] = (self._clock(), None)
                    raise NotInstalled("not_installed", f"portal {member_id} has no install")
                install = Install._from_row(row)
                if install.refresh_failure:
                    raise TokenRefreshRefused("refresh_refused", install.refresh_failure)
                if install.access_token != stale and not install.expiring():
                    self._cache[member_id] = (self._clock(), install)
                    return install  # another process (or coroutine) renewed it meanwhile
                if not client_secret:
                    raise TokenRefreshRefused("app_disabled", f"no client secret for application {install.client_id}")
                try:
                    grant = await oauth.refresh(install.client_id, client_secret, install.refresh_token)
                except TokenRefreshRefused as exc:
                    refused = TokenRefreshRefused("refresh_refused", f"{exc.reason}: {exc.detail}"[:300])
                    await conn.execute(_REFUSED, member_id, refused.detail)
                else:
                    if grant.member_id != member_id:
                        raise Unavailable("oauth_wrong_portal", f"renewal answered for {grant.member_id}")
                    generation = await conn.fetchval(
                        _RENEWED, member_id, grant.access_token, grant.refresh_token, grant.expires_at
                    )
                    install = replace(install, access_token=grant.access_token, refresh_token=grant.refresh_token,
                                      access_expires_at=grant.expires_at, token_generation=generation)  # fmt: skip
            if refused is not None:
                self._cache.pop(member_id, None)
                log.error("Bitrix24 portal %s: the OAuth server refused to renew its tokens (%s); the portal "
                          "must install the application again", member_id, refused)  # fmt: skip
                raise refused
            self._cache[member_id] = (self._clock(), install)
            log.info("Bitrix24 portal %s: tokens renewed (generation %d)", member_id, install.token_generation)
            return install
