"""What every channel client promises, and how HTTP answers map onto retry decisions."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Protocol

from ticketflow.notifications.domain.model import Channel, OutgoingMessage


class DeliveryFailure(Exception):
    """A send did not succeed. `reason` is short, stable and safe to store in the ledger."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryFailure(DeliveryFailure):
    """Worth trying again later (timeouts, connection errors, 429, 5xx, rate limits)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OutcomeUnknown(DeliveryFailure):
    """The request may have reached the platform, but no answer says what it did: a timeout or a dropped
    connection after the request left. Sending again could deliver the message twice, so the engine sends
    again only where the receiver drops duplicates by our key (webhook, e-mail); elsewhere the outcome is
    recorded as unknown for a person to check."""


class PermanentFailure(DeliveryFailure):
    """Trying again cannot help until a person fixes the cause (credentials, address, payload).

    Also used for an unrecognised 2xx answer: the message may have been delivered, so an automatic
    retry could send it twice.
    """


class ChannelClient(Protocol):
    channel: Channel

    def ready(self, message: OutgoingMessage) -> bool:
        """Whether the destination may be called now without waiting (a rate limit's token is taken when
        it may); the engine then makes the claim the attempt's fence."""
        ...

    async def pace(self, message: OutgoingMessage) -> None:
        """Wait until the destination may be called (a rate limit). The engine calls it before an
        attempt's fence, outside the attempt's deadline: waiting is not sending."""
        ...

    async def send(self, message: OutgoingMessage) -> str:
        """Send one message; return the platform's id for it. Raise a `DeliveryFailure` otherwise:
        `TemporaryFailure` only when the request surely did not take effect (not sent, or refused),
        `OutcomeUnknown` when it may have."""
        ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Idle connections are dropped after this long: servers close theirs after 5 s and more (uvicorn and Apache 5,
# nginx 75), so a request is never written into a connection its server is closing at that moment. Such a
# request fails after it left, and the delivery would be an unknown outcome (seen in tests/outage).
KEEPALIVE_S = 2.0


def failure_for_status(status: int, headers: Mapping[str, str], detail: str = "") -> DeliveryFailure:
    """Classify a non-2xx HTTP answer."""
    suffix = f": {detail}" if detail else ""
    if status in RETRYABLE_STATUS or status >= 500:
        return TemporaryFailure(f"http {status}{suffix}", parse_retry_after(headers.get("retry-after")))
    return PermanentFailure(f"http {status}{suffix}")


def snippet(text: str, limit: int = 200) -> str:
    """A bounded, single-line excerpt of a remote answer for a dead-letter reason."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
