"""Delivery outcomes (stream `notification-<ticket id>`), so dashboards show delivery state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

import msgspec


class _NotificationEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    schema_version: ClassVar[int] = 1
    ticket_id: uuid.UUID
    notification_key: str
    channel: str
    recipient: str
    template: str


class NotificationDelivered(_NotificationEvent, tag="NotificationDelivered", frozen=True):
    delivered_at: datetime
    attempts: int = 1


class NotificationFailed(_NotificationEvent, tag="NotificationFailed", frozen=True):
    reason: str
    permanent: bool
    failed_at: datetime
    attempts: int = 1


class NotificationOutcomeUnknown(_NotificationEvent, tag="NotificationOutcomeUnknown", frozen=True):
    """A request left for the chat and no answer said whether the platform posted it (a timeout, a lost
    connection, a worker stopped mid-send). It is not sent again automatically, so it cannot arrive twice:
    the agent checks the chat, and an operator redrives it if it did not arrive."""

    reason: str
    at: datetime
    attempts: int = 1


NotificationEvent = NotificationDelivered | NotificationFailed | NotificationOutcomeUnknown
