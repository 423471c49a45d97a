"""A Bitrix24 portal's REST endpoint for `imbot.message.add`.

Accepts JSON or form bodies (and `auth` in the query string), checks the access token and the
bot id, answers `{"result": <message id>, "time": {...}}` like the portal. With `limit_rate` set it
enforces a leaky bucket the way the cloud portal does and answers 503 `QUERY_LIMIT_EXCEEDED`.
"""

from __future__ import annotations

import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .asgi import Fault, Faults, serve


@dataclass(frozen=True)
class ReceivedMessage:
    bot_id: int
    dialog_id: str
    message: str
    params: dict[str, Any]
    at: float


class FakeBitrix24:
    def __init__(
        self,
        *,
        auth_token: str,
        bot_id: int,
        known_dialogs: Iterable[str] | None = None,
        limit_rate: float | None = None,
        limit_burst: int = 50,
    ) -> None:
        self.auth_token = auth_token
        self.bot_id = bot_id
        self.known_dialogs = set(known_dialogs) if known_dialogs is not None else None
        self.limit_rate = limit_rate
        self.limit_burst = limit_burst
        self._level = 0.0
        self._level_at = time.monotonic()
        self.received: list[ReceivedMessage] = []
        self.requests = 0
        self.limited = 0
        self.faults = Faults()
        self._ids = itertools.count(1001)
        self.base_url = ""
        self.app = Starlette(routes=[Route("/rest/imbot.message.add.json", self._add, methods=["POST"])])

    @property
    def rest_url(self) -> str:
        return self.base_url + "/rest"

    @asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[FakeBitrix24]:
        async with serve(self.app, port) as base_url:
            self.base_url = base_url
            yield self

    def fail_next(self, status: int, times: int = 1, *, body: Any = None, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        default = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
        self.faults.add(Fault(status, default if body is None else body, headers), times)

    def query_limit_next(self, times: int = 1) -> None:
        body = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        self.faults.add(Fault(503, body), times)

    def _over_limit(self) -> bool:
        if self.limit_rate is None:
            return False
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._level_at) * self.limit_rate)
        self._level_at = now
        if self._level + 1 > self.limit_burst:
            return True
        self._level += 1
        return False

    async def _add(self, request: Request) -> Response:
        self.requests += 1
        raw = await request.body()
        params: dict[str, Any]
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                params = json.loads(raw)
                assert isinstance(params, dict)
            except (ValueError, AssertionError):
                return _error(400, "INVALID_REQUEST", "Body is not a JSON object")
        else:
            params = dict((await request.form()).items())
        auth = str(params.get("auth") or request.query_params.get("auth") or "")
        if not hmac.compare_digest(auth.encode(), self.auth_token.encode()):
            return _error(401, "invalid_token", "The access token provided is invalid.")
        if self._over_limit():
            self.limited += 1
            return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        fault = self.faults.take()
        if fault is not None:
            return await fault.response()
        try:
            bot_id = int(params.get("BOT_ID", 0))
        except (TypeError, ValueError):
            bot_id = 0
        if bot_id != self.bot_id:
            return _error(400, "BOT_ID_ERROR", "Bot not found")
        dialog_id, message = str(params.get("DIALOG_ID", "")), str(params.get("MESSAGE", ""))
        if not dialog_id or (self.known_dialogs is not None and dialog_id not in self.known_dialogs):
            return _error(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        if not message:
            return _error(400, "MESSAGE_EMPTY", "Message can't be empty")
        self.received.append(ReceivedMessage(bot_id, dialog_id, message, params, time.monotonic()))
        return JSONResponse({"result": next(self._ids), "time": {"start": time.time(), "duration": 0.01}})


def _error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)
