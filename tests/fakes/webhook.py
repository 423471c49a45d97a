"""A webhook receiver that verifies ticketflow's HMAC signature and records every delivery.

It keeps every accepted request (`received`), so a test can tell a duplicate send from a
duplicate it would have dropped (`unique_keys`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .asgi import Fault, Faults, serve


@dataclass(frozen=True)
class ReceivedHook:
    idempotency_key: str
    timestamp: str
    payload: dict[str, Any]
    raw: bytes
    traceparent: str | None = None  # the W3C trace context the sender propagated, if any


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Written out independently of the sender's code, so the test checks the contract."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class FakeWebhookReceiver:
    def __init__(self, *, secret: str, tolerance: float = 300.0) -> None:
        self.secret = secret
        self.tolerance = tolerance
        self.received: list[ReceivedHook] = []
        self.bad_signatures = 0
        self.faults = Faults()
        self.base_url = ""
        self.app = Starlette(routes=[Route("/hooks/ticketflow", self._hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return self.base_url + "/hooks/ticketflow"

    @property
    def unique_keys(self) -> set[str]:
        return {h.idempotency_key for h in self.received}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeWebhookReceiver]:
        async with serve(self.app) as base_url:
            self.base_url = base_url
            yield self

    def fail_next(self, status: int, times: int = 1, *, body: Any = b"", retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.faults.add(Fault(status, body, headers), times)

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        timestamp = request.headers.get("x-ticketflow-timestamp", "")
        signature = request.headers.get("x-ticketflow-signature", "")
        key = request.headers.get("idempotency-key", "")
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= self.tolerance
        valid = hmac.compare_digest(signature, expected_signature(self.secret, timestamp, raw))
        if not (fresh and valid and key):
            self.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        fault = self.faults.take()
        if fault is not None:
            return await fault.response()
        traceparent = request.headers.get("traceparent")
        self.received.append(ReceivedHook(key, timestamp, json.loads(raw), raw, traceparent))
        return JSONResponse({"ok": True}, status_code=202)
