"""What the delivery engine is asked to send, and what it answers.

Pure data: no I/O. The application service plans `Notification`s from ticket events (`messages`, `policy`)
and hands them to `Deliverer.deliver` (`adapters.delivery`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Channel(enum.StrEnum):
    EXPRESS = "express"
    BITRIX24 = "bitrix24"
    EMAIL = "email"
    WEBHOOK = "webhook"


def idempotency_key(event_id: str, recipient: str, channel: Channel | str) -> str:
    """One key per (event, person, channel): the unit that must reach the person exactly once."""
    raw = f"{event_id}\x1f{recipient}\x1f{Channel(channel).value}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one person on one channel.

    `destination` names the configured platform account the message goes through (an eXpress bot
    id, a Bitrix24 portal id, an SMTP relay name, a webhook endpoint name); `address` is where on
    that platform (eXpress chat UUID, Bitrix24 DIALOG_ID, e-mail address, the receiver's user id).
    A missing `address` is a dead letter, never a crash.
    """

    key: str
    event_id: str
    channel: Channel
    recipient: str
    destination: str
    address: str | None
    template: str
    locale: str
    variables: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_event(
        cls,
        *,
        event_id: str,
        channel: Channel,
        recipient: str,
        destination: str,
        address: str | None,
        template: str,
        locale: str,
        variables: Mapping[str, Any],
    ) -> Notification:
        return cls(
            key=idempotency_key(event_id, recipient, channel),
            event_id=event_id,
            channel=channel,
            recipient=recipient,
            destination=destination,
            address=address,
            template=template,
            locale=locale,
            variables=dict(variables),
        )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered notification, as a channel client sends it."""

    key: str
    destination: str
    address: str
    subject: str
    body: str
    locale: str
    template: str
    event_id: str
    recipient: str


class OutcomeStatus(enum.StrEnum):
    DELIVERED = "delivered"  # sent now
    DUPLICATE = "duplicate"  # was delivered before: nothing sent
    IN_FLIGHT = "in_flight"  # another worker holds the claim: nothing sent
    DEAD_LETTER = "dead_letter"  # given up; `reason` says why; `redrive` can send it later
    UNKNOWN = "unknown"  # a request left, no answer says what the platform did: a person checks the chat


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    key: str
    status: OutcomeStatus
    attempts: int = 0
    reason: str | None = None
    provider_message_id: str | None = None

    @property
    def sent_now(self) -> bool:
        return self.status is OutcomeStatus.DELIVERED
