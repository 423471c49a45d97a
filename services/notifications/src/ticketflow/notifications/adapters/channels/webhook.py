"""Generic webhook: POST JSON, signed with HMAC-SHA256.

Headers sent:
- `X-Ticketflow-Timestamp`: Unix seconds at signing time;
- `X-Ticketflow-Signature`: `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + exact body bytes);
  binding the timestamp lets a receiver refuse replays older than its tolerance;
- `Idempotency-Key`: the delivery's idempotency key; a resend carries the same key, so the
  receiver can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ticketflow.notifications.adapters.channels.base import (
    PermanentFailure,
    failure_for_status,
    snippet,
)
from ticketflow.notifications.adapters.channels.http import HttpClient
from ticketflow.notifications.domain.model import Channel, OutgoingMessage

SIGNATURE_HEADER = "X-Ticketflow-Signature"
TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0) -> bool:
    """For receivers (and the test fake): constant-time check plus a replay window."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    name: str
    url: str
    secret: str


class WebhookChannel:
    """`destination` names the endpoint; `address` is the recipient's id at the receiver."""

    channel = Channel.WEBHOOK

    def __init__(
        self,
        endpoints: Sequence[WebhookEndpoint],
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        max_connections_per_host: int = 64,
    ) -> None:
        self._endpoints = {e.name: e for e in endpoints}
        self._http = HttpClient(timeout=timeout, max_per_host=max_connections_per_host)
        self._clock = clock

    @staticmethod
    def body(message: OutgoingMessage) -> bytes:
        payload = {
            "idempotency_key": message.key,
            "event_id": message.event_id,
            "recipient": message.recipient,
            "address": message.address,
            "template": message.template,
            "locale": message.locale,
            "subject": message.subject,
            "body": message.body,
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def ready(self, message: OutgoingMessage) -> bool:
        return True  # no rate limit of its own

    async def pace(self, message: OutgoingMessage) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str:
        endpoint = self._endpoints.get(message.destination)
        if endpoint is None:
            raise PermanentFailure(f"webhook: endpoint {message.destination!r} is not configured")
        body = self.body(message)
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
            IDEMPOTENCY_HEADER: message.key,
        }
        response = await self._http.post(endpoint.url, body, headers, what="webhook")
        if not response.is_success:
            raise failure_for_status(response.status, response.headers, "webhook " + snippet(response.text))
        return response.headers.get("x-request-id") or message.key

    async def aclose(self) -> None:
        await self._http.aclose()
