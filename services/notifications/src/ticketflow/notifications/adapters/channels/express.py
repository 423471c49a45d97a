"""eXpress (BotX) through pybotx: `Bot.send_message(..., wait_callback=False)` to the ticket's chat.

pybotx builds every URL as `{cts_url}/{path}` (`BotXMethod._build_url`), so `cts_url` may carry a
scheme and a port: `http://127.0.0.1:8765` reaches a local fake, `https://cts.example.ru` the real
server. With auth v2 (pybotx's default) each request carries an HS256 JWT signed with the bot
secret (`iss` = bot id, `aud` = the host name); with the deprecated v1, pybotx first fetches a
token from `/api/v2/botx/bots/{bot_id}/token?signature=...` and caches it.

pybotx's own retries stay off (`retry_policy=None`): the delivery engine owns retries, breaker and
the ledger, and must see each attempt.

No idempotency handle: BotX API v4 `POST /api/v4/botx/notifications/direct` (what pybotx 0.77 sends) takes
no id of ours; BotX chooses the message's `sync_id` and answers it. (The deprecated v3
`/api/v3/botx/notification/callback/direct` took an `event_sync_id`, "custom ID for message" in pybotx
0.21 and before, but nothing says BotX refuses a second message with the same one, and pybotx 0.77 cannot send
it.) `get_message_status(sync_id)` needs the answer an unknown outcome lacks. So a send whose answer is
lost is an unknown outcome, never sent again automatically (`OutcomeUnknown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from pybotx import Bot, BotAccountWithSecret, BotXAuthVersion, HandlerCollector
from pybotx.bot.exceptions import UnknownBotAccountError
from pybotx.client.exceptions.base import BaseClientError
from pybotx.client.exceptions.common import ChatNotFoundError, InvalidBotAccountError, PermissionDeniedError
from pybotx.client.exceptions.http import InvalidBotXResponsePayloadError, InvalidBotXStatusCodeError
from pybotx.client.exceptions.notifications import BotIsNotChatMemberError

from ticketflow.notifications.adapters.channels.base import (
    KEEPALIVE_S,
    DeliveryFailure,
    OutcomeUnknown,
    PermanentFailure,
    TemporaryFailure,
    failure_for_status,
    snippet,
)
from ticketflow.notifications.domain.model import Channel, OutgoingMessage

MAX_BODY = 4096  # pybotx refuses longer bodies (MAX_NOTIFICATION_BODY_LENGTH)
# httpx's 100 connections at most, one kept alive for each of the engine's 64 lanes to a bot, idle ones
# dropped early (base.KEEPALIVE_S).
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_S)
# httpx's errors raised before the request left: no connection (or none free in time), or a request
# httpx itself refused to send. Every other transport error may come after BotX got the request.
NOT_SENT = (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError, httpx.UnsupportedProtocol,
            httpx.LocalProtocolError, httpx.ProxyError)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExpressBot:
    bot_id: uuid.UUID
    cts_url: str  # e.g. "https://cts.example.ru" or "http://127.0.0.1:8765" in tests
    secret_key: str


class ExpressChannel:
    """`destination` is the bot id; `address` the chat's `group_chat_id`.

    `synchronous=True` uses `send_message_sync` (BotX >= 3.58), which reports an unknown chat in the
    answer instead of in a later callback; the default follows the callback-based API.

    BotX posts the callback of an asynchronous send to the bot's `/notification/callback`, which is
    served by intake, not here. Unless this process routes those callbacks into `self.bot`
    (`receives_callbacks=True`), pybotx's bookkeeping for each sync_id is released right after
    the send, so nothing accumulates and no "callback wasn't waited" error is logged.
    """

    channel = Channel.EXPRESS

    def __init__(
        self,
        bots: Sequence[ExpressBot],
        *,
        timeout: float = 10.0,
        auth_version: BotXAuthVersion = BotXAuthVersion.V2,
        synchronous: bool = False,
        callback_timeout: float = 60.0,
        receives_callbacks: bool = False,
    ) -> None:
        self._synchronous = synchronous
        self._receives_callbacks = receives_callbacks
        self._callback_timeout = callback_timeout
        self.bot = Bot(
            collectors=[HandlerCollector()],
            bot_accounts=[
                BotAccountWithSecret.model_validate({"id": b.bot_id, "cts_url": b.cts_url, "secret_key": b.secret_key})
                for b in bots
            ],
            httpx_client=httpx.AsyncClient(timeout=timeout, limits=LIMITS),
            auth_version=auth_version,
        )

    def ready(self, message: OutgoingMessage) -> bool:
        return True  # no rate limit of its own

    async def pace(self, message: OutgoingMessage) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str:
        try:
            bot_id = uuid.UUID(message.destination)
            chat_id = uuid.UUID(message.address)
        except ValueError:
            raise PermanentFailure(f"express: not a UUID: {message.destination!r}/{message.address!r}") from None
        body = message.body if len(message.body) <= MAX_BODY else message.body[: MAX_BODY - 1] + "…"
        try:
            if self._synchronous:
                sync_id = await self.bot.send_message_sync(bot_id=bot_id, chat_id=chat_id, body=body)
            else:
                sync_id = await self.bot.send_message(
                    bot_id=bot_id,
                    chat_id=chat_id,
                    body=body,
                    wait_callback=False,
                    callback_timeout=self._callback_timeout,
                )
        except Exception as exc:
            raise _failure(exc) from exc
        if not self._synchronous and not self._receives_callbacks:
            await self._forget_callback(sync_id)
        return str(sync_id)

    async def _forget_callback(self, sync_id: uuid.UUID) -> None:
        # pybotx has no public call for this (pinned ~=0.77.1 in pyproject.toml because of it)
        manager = getattr(self.bot, "_callbacks_manager", None)
        if manager is None:
            return
        with contextlib.suppress(Exception):
            manager.cancel_callback_timeout_alarm(sync_id)
            await manager.pop_botx_method_callback(sync_id)

    async def aclose(self) -> None:
        # Callback alarms of fire-and-forget sends would outlive the loop otherwise.
        alarms = getattr(getattr(self.bot, "_callbacks_manager", None), "_callback_alarms", {})
        for alarm in list(alarms.values()):
            alarm.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await alarm.task
        await self.bot.shutdown()


def _failure(exc: Exception) -> DeliveryFailure:
    if isinstance(exc, UnknownBotAccountError):
        return PermanentFailure("express: bot is not configured")
    if isinstance(exc, InvalidBotAccountError | PermissionDeniedError):
        return PermanentFailure("express: bot credentials rejected")
    if isinstance(exc, ChatNotFoundError | BotIsNotChatMemberError):
        return PermanentFailure(f"express: unknown chat ({type(exc).__name__})")
    if isinstance(exc, InvalidBotXResponsePayloadError):
        # A 2xx we cannot read: it may have been delivered, so never retried automatically.
        return PermanentFailure(f"express: unrecognised answer: {snippet(exc.response.text)}")
    if isinstance(exc, InvalidBotXStatusCodeError):
        response = exc.response
        return failure_for_status(response.status_code, response.headers, "express " + snippet(response.text))
    if isinstance(exc, NOT_SENT):
        return TemporaryFailure(f"express: connection error ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):  # the request may have left: BotX may have posted it
        return OutcomeUnknown(f"express: no answer ({type(exc).__name__})")
    if isinstance(exc, BaseClientError):
        return PermanentFailure(f"express: {type(exc).__name__}")
    return PermanentFailure(f"express: unexpected {type(exc).__name__}: {snippet(str(exc))}")
