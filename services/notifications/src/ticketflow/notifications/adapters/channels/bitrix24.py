"""Bitrix24 chat bot messages: REST `imbot.message.add` with the portal's install (`ticketflow.bitrix24`).

The destination is the portal's `member_id` (a ticket's `ChatRef.tenant_id`), the address the DIALOG_ID.
Everything about the portal comes from its verified install, none of it from configuration: the address
(the install's domain, SSRF-guarded), the OAuth access token (renewed when it expires, and when the portal
answers `expired_token`, then the message is sent once more: a refused call had no effect), and the bot
(`BOT_ID`: the bot registered at install).

Bitrix24 limits request intensity per portal with a leaky bucket (cloud: about 2 requests/s with a burst
of 50) and answers `QUERY_LIMIT_EXCEEDED` beyond it: each portal gets its own token bucket here (`rate`,
`burst`: the notifications config's `[bitrix24]`; taken by `ready`/`pace`, which the delivery engine calls
before each attempt, outside the attempt's deadline), and that answer is retryable.
`imbot.message.add` has no idempotency key: a request whose answer is lost after it left (a timeout, a
dropped connection) is an unknown outcome, never sent again automatically.

Failures: the portal or the OAuth server unreachable, a rate limit, a 5xx, a portal installed without a
bot yet, the installs table unreachable (a database outage): temporary (retried). Not installed (or
uninstalled), a renewal the OAuth server refused (the portal must reinstall), an address the guard
refuses, a REST error (wrong DIALOG_ID...), an answer we cannot read (it may have been delivered):
permanent, with the cause.
"""

from __future__ import annotations

import asyncpg

from ticketflow.bitrix24 import (
    BadAnswer,
    ForbiddenAddress,
    NotInstalled,
    PortalRest,
    RestError,
    TokenRefreshRefused,
    Unavailable,
)
from ticketflow.notifications.adapters.channels.base import OutcomeUnknown, PermanentFailure, TemporaryFailure
from ticketflow.notifications.adapters.resilience import TokenBucket
from ticketflow.notifications.domain.model import Channel, OutgoingMessage

NO_BOT_RETRY_S = 60.0  # a portal installed without a bot: asked again after this long
# The installs table cannot be read or written now: the message waits, it is not dead-lettered.
DATABASE_OUTAGES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class Bitrix24Channel:
    channel = Channel.BITRIX24

    def __init__(self, rest: PortalRest | None, *, rate: float = 2.0, burst: int = 10) -> None:
        """`rest`: None where no Bitrix24 application is configured (every send is then a permanent failure)."""
        self._rest = rest
        self._rate, self._burst = rate, burst
        self._buckets: dict[str, TokenBucket] = {}

    def ready(self, message: OutgoingMessage) -> bool:
        return self._bucket(message.destination).try_acquire()

    async def pace(self, message: OutgoingMessage) -> None:
        """The portal's token bucket: the engine waits here before an attempt (outside its deadline)."""
        await self._bucket(message.destination).acquire()

    def _bucket(self, portal: str) -> TokenBucket:
        return self._buckets.setdefault(portal, TokenBucket(rate=self._rate, burst=self._burst))

    async def send(self, message: OutgoingMessage) -> str:
        try:
            return await self._send(message)
        except DATABASE_OUTAGES as exc:
            raise TemporaryFailure(f"bitrix24: the installs cannot be read now ({type(exc).__name__})") from exc

    async def _send(self, message: OutgoingMessage) -> str:
        portal = message.destination
        if self._rest is None:
            raise PermanentFailure(f"bitrix24: portal {portal!r}: no Bitrix24 application is configured")
        try:
            install = await self._rest.install(portal)
        except (NotInstalled, TokenRefreshRefused, ForbiddenAddress) as exc:
            raise PermanentFailure(f"bitrix24: portal {portal!r}: {exc}") from exc
        if install.bot_id is None:
            raise TemporaryFailure(f"bitrix24: portal {portal!r} has no chat bot registered yet", NO_BOT_RETRY_S)
        bucket = self._bucket(portal)  # taken by `ready`/`pace`; drained on QUERY_LIMIT_EXCEEDED
        params = {"BOT_ID": install.bot_id, "DIALOG_ID": message.address, "MESSAGE": message.body}
        try:
            result = await self._rest.call(portal, "imbot.message.add", params)
        except Unavailable as exc:
            if exc.maybe_sent:
                raise OutcomeUnknown(f"bitrix24 {exc}") from exc
            if exc.reason == "QUERY_LIMIT_EXCEEDED":
                bucket.drain()
                retry = exc.retry_after if exc.retry_after is not None else 1.0 / bucket.rate
                raise TemporaryFailure(f"bitrix24 {exc}", retry) from exc
            raise TemporaryFailure(f"bitrix24 {exc}", exc.retry_after) from exc
        except BadAnswer as exc:  # may have been delivered: never retried automatically
            raise PermanentFailure(f"bitrix24: unrecognised answer: {exc.detail}") from exc
        except (NotInstalled, TokenRefreshRefused, ForbiddenAddress, RestError) as exc:
            raise PermanentFailure(f"bitrix24 {exc}") from exc
        if result is False:
            raise PermanentFailure("bitrix24: message refused (result=false)")
        if isinstance(result, bool) or not isinstance(result, int | str) or result in ("", 0):
            # A success status we cannot read: it may have been delivered, so never retried automatically.
            raise PermanentFailure(f"bitrix24: unrecognised answer: {str(result)[:200]}")
        return str(result)

    async def aclose(self) -> None:
        return None  # the REST client belongs to the service (closed by its runtime)
