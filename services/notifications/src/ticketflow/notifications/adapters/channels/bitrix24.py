"""Bitrix24 chat bot messages: REST `imbot.message.add` over aiohttp (`channels/http.py`), asynchronously.

b24pysdk is synchronous and would block the event loop, so the call is made directly:
`POST {rest_url}/imbot.message.add.json` with `BOT_ID`, `DIALOG_ID`, `MESSAGE`, (`CLIENT_ID`) and
`auth` (the portal's access token). Bitrix24 limits request intensity per portal with a leaky
bucket (cloud: about 2 requests/s with a burst of 50) and answers `QUERY_LIMIT_EXCEEDED` beyond it:
each portal gets its own token bucket here (taken by `ready`/`pace`, which the delivery engine calls
before each attempt), and that answer is retryable. `imbot.message.add` has no idempotency key: a
request whose answer is lost is an unknown outcome (`channels/http.py`), never sent again automatically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ticketflow.notifications.adapters.channels.base import (
    DeliveryFailure,
    PermanentFailure,
    TemporaryFailure,
    failure_for_status,
    parse_retry_after,
    snippet,
)
from ticketflow.notifications.adapters.channels.http import HttpAnswer, HttpClient
from ticketflow.notifications.adapters.resilience import TokenBucket
from ticketflow.notifications.domain.model import Channel, OutgoingMessage

RETRYABLE_ERRORS = frozenset({"QUERY_LIMIT_EXCEEDED", "INTERNAL_SERVER_ERROR", "OPERATION_TIME_LIMIT"})


@dataclass(frozen=True, slots=True)
class Bitrix24Portal:
    portal_id: str  # our name for it; the portal's member_id is a good choice
    rest_url: str  # e.g. "https://portal.example.ru/rest" ("http://127.0.0.1:port/rest" in tests)
    bot_id: int
    auth_token: str
    client_id: str | None = None  # the app's CLIENT_ID, when the bot belongs to an app
    rate: float = 2.0  # requests per second
    burst: int = 10


class Bitrix24Channel:
    """`destination` is the portal id; `address` the DIALOG_ID (`chat123` or a user id)."""

    channel = Channel.BITRIX24

    def __init__(
        self, portals: Sequence[Bitrix24Portal], *, timeout: float = 10.0, max_connections_per_portal: int = 64
    ) -> None:
        self._portals = {p.portal_id: p for p in portals}
        self._buckets = {p.portal_id: TokenBucket(rate=p.rate, burst=p.burst) for p in portals}
        self._http = HttpClient(timeout=timeout, max_per_host=max_connections_per_portal)

    def set_auth_token(self, portal_id: str, token: str) -> None:
        """The OAuth access token is refreshed elsewhere (install / ONAPPINSTALL handler)."""
        portal = self._portals[portal_id]
        self._portals[portal_id] = Bitrix24Portal(
            portal.portal_id,
            portal.rest_url,
            portal.bot_id,
            token,
            portal.client_id,
            portal.rate,
            portal.burst,
        )

    def ready(self, message: OutgoingMessage) -> bool:
        bucket = self._buckets.get(message.destination)
        return bucket is None or bucket.try_acquire()  # an unknown portal fails in send, without waiting

    async def pace(self, message: OutgoingMessage) -> None:
        """The portal's token bucket: the engine waits here before an attempt (outside its deadline)."""
        bucket = self._buckets.get(message.destination)
        if bucket is not None:
            await bucket.acquire()

    async def send(self, message: OutgoingMessage) -> str:
        portal = self._portals.get(message.destination)
        if portal is None:
            raise PermanentFailure(f"bitrix24: portal {message.destination!r} is not configured")
        params: dict[str, Any] = {
            "BOT_ID": portal.bot_id,
            "DIALOG_ID": message.address,
            "MESSAGE": message.body,
            "auth": portal.auth_token,
        }
        if portal.client_id:
            params["CLIENT_ID"] = portal.client_id
        bucket = self._buckets[portal.portal_id]  # taken by `ready`/`pace`; drained on QUERY_LIMIT_EXCEEDED
        url = portal.rest_url.rstrip("/") + "/imbot.message.add.json"
        body = msgspec.json.encode(params)
        response = await self._http.post(url, body, _JSON, what="bitrix24")
        return _message_id(response, bucket)

    async def aclose(self) -> None:
        await self._http.aclose()


_JSON = {"Content-Type": "application/json"}


def _message_id(response: HttpAnswer, bucket: TokenBucket) -> str:
    try:
        answer = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise _error_failure(response, answer, bucket)
    if not response.is_success:
        raise failure_for_status(response.status, response.headers, "bitrix24 " + snippet(response.text))
    result = answer.get("result") if isinstance(answer, dict) else None
    if result is False:
        raise PermanentFailure("bitrix24: message refused (result=false)")
    if isinstance(result, bool) or not isinstance(result, int | str) or result in ("", 0):
        # A success status we cannot read: it may have been delivered, so never retried automatically.
        raise PermanentFailure(f"bitrix24: unrecognised answer: {snippet(response.text)}")
    return str(result)


def _error_failure(response: HttpAnswer, answer: dict[str, Any], bucket: TokenBucket) -> DeliveryFailure:
    code: str = answer["error"]
    description = snippet(str(answer.get("error_description", "")))
    reason = f"bitrix24 {code}: {description}" if description else f"bitrix24 {code}"
    if code == "QUERY_LIMIT_EXCEEDED":
        bucket.drain()
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return TemporaryFailure(reason, retry_after if retry_after is not None else 1.0 / bucket.rate)
    if code in RETRYABLE_ERRORS or response.status >= 500:
        return TemporaryFailure(reason, parse_retry_after(response.headers.get("retry-after")))
    if response.status == 429:
        return TemporaryFailure(reason, parse_retry_after(response.headers.get("retry-after")))
    # expired_token / invalid_token / NO_AUTH_FOUND / ACCESS_DENIED / wrong DIALOG_ID and the like.
    return PermanentFailure(reason)
