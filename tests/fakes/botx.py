"""A BotX (eXpress CTS) server speaking the parts of the API a bot uses to send.

- `GET /api/v2/botx/bots/{bot_id}/token?signature=...`: answers a token when the signature is
  right (upper-case hex of HMAC-SHA256(secret, bot_id), as pybotx computes it); 401 otherwise.
- `POST /api/v4/botx/notifications/direct` (and `/direct/sync`): checks `Authorization: Bearer`
  (a token issued above, or a v2 HS256 JWT signed with the bot secret: `iss` = bot id,
  `aud` = this host), records the notification and answers 202 `{"status":"ok","result":{"sync_id"}}`.
  An unknown chat is answered in the sync variant (`chat_not_found`) and recorded as undeliverable
  in the callback variant (real BotX reports it later, in a callback). The request's `traceparent`
  header is kept with the notification (tracing tests: the delivery continues the ticket's trace).

Latency: `answer_delay` seconds pass between recording a notification (it reached the platform, the chat
shows it) and answering it; a client whose deadline is shorter sees no answer, although it was posted.
BotX has no idempotency key: the same notification posted twice is shown twice (`received` has both).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .asgi import Fault, Faults, serve


@dataclass(frozen=True)
class ReceivedNotification:
    bot_id: uuid.UUID
    chat_id: uuid.UUID
    body: str
    payload: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when it reached the platform (bench-system's latency)
    traceparent: str | None = None  # the W3C trace context the sender propagated, if any


class FakeBotX:
    def __init__(self, bots: Mapping[uuid.UUID, str], *, known_chats: Iterable[uuid.UUID] | None = None):
        self.bots = dict(bots)
        self.known_chats = set(known_chats) if known_chats is not None else None
        self.received: list[ReceivedNotification] = []
        self.undeliverable: list[ReceivedNotification] = []
        self.token_requests = 0
        self.rejected_auth = 0
        self.faults = Faults()
        self.answer_delay = 0.0
        self._tokens: dict[str, uuid.UUID] = {}
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/api/v2/botx/bots/{bot_id}/token", self._token, methods=["GET"]),
                Route("/api/v4/botx/notifications/direct", self._direct, methods=["POST"]),
                Route("/api/v4/botx/notifications/direct/sync", self._direct_sync, methods=["POST"]),
            ]
        )

    @asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[FakeBotX]:
        async with serve(self.app, port) as base_url:
            self.base_url = base_url
            yield self

    def fail_next(self, status: int, times: int = 1, *, retry_after: str | None = None, body: Any = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        default = {"status": "error", "reason": "server_error", "errors": [], "error_data": {}}
        self.faults.add(Fault(status, default if body is None else body, headers), times)

    @staticmethod
    def signature(bot_id: uuid.UUID, secret: str) -> str:
        digest = hmac.new(secret.encode(), str(bot_id).encode(), hashlib.sha256).digest()
        return base64.b16encode(digest).decode()

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        try:
            bot_id = uuid.UUID(request.path_params["bot_id"])
        except ValueError:
            return _error(404, "bot_not_found")
        secret = self.bots.get(bot_id)
        given = request.query_params.get("signature", "")
        if secret is None or not hmac.compare_digest(given, self.signature(bot_id, secret)):
            return _error(401, "invalid_signature")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = bot_id
        return JSONResponse({"status": "ok", "result": token})

    def _authorised_bot(self, request: Request) -> uuid.UUID | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ")
        if token in self._tokens:
            return self._tokens[token]
        try:
            bot_id = uuid.UUID(jwt.decode(token, options={"verify_signature": False})["iss"])
            secret = self.bots[bot_id]
            jwt.decode(token, secret, algorithms=["HS256"], audience=request.url.hostname, issuer=str(bot_id))
        except (jwt.PyJWTError, KeyError, ValueError):
            return None
        return bot_id

    async def _accept(self, request: Request) -> tuple[Response | None, ReceivedNotification | None]:
        bot_id = self._authorised_bot(request)
        if bot_id is None:
            self.rejected_auth += 1
            return _error(401, "invalid_token"), None
        fault = self.faults.take()
        if fault is not None:
            return await fault.response(), None
        try:
            payload = json.loads(await request.body())
            chat_id = uuid.UUID(payload["group_chat_id"])
            body = payload["notification"]["body"]
            assert isinstance(body, str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "invalid_payload"), None
        traceparent = request.headers.get("traceparent")
        return None, ReceivedNotification(bot_id, chat_id, body, payload, traceparent=traceparent)

    def _chat_known(self, chat_id: uuid.UUID) -> bool:
        return self.known_chats is None or chat_id in self.known_chats

    async def _direct(self, request: Request) -> Response:
        early, notification = await self._accept(request)
        if early is not None or notification is None:
            return early or _error(500, "server_error")
        (self.received if self._chat_known(notification.chat_id) else self.undeliverable).append(notification)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return JSONResponse({"status": "ok", "result": {"sync_id": str(uuid.uuid4())}}, status_code=202)

    async def _direct_sync(self, request: Request) -> Response:
        early, notification = await self._accept(request)
        if early is not None or notification is None:
            return early or _error(500, "server_error")
        if not self._chat_known(notification.chat_id):
            self.undeliverable.append(notification)
            return JSONResponse(
                {"status": "error", "reason": "chat_not_found", "errors": [], "error_data": {}}, status_code=200
            )
        self.received.append(notification)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return JSONResponse({"status": "ok", "result": {"sync_id": str(uuid.uuid4())}})


def _error(status: int, reason: str) -> Response:
    return JSONResponse({"status": "error", "reason": reason, "errors": [], "error_data": {}}, status_code=status)
