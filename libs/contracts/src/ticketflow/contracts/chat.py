"""The normalised chat message: what every platform adapter produces and `chat.inbound` carries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from ticketflow.contracts.values import Attachment, Platform, Role


class ChatSender(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: str
    display_name: str = ""
    roles: tuple[Role, ...] = ()
    is_admin: bool = False
    locale: str = "ru"
    email: str | None = None


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One inbound message. `message_id` (the platform's own id) is the idempotency key; `delivery_id`
    names one delivery attempt of a webhook, for logs only."""

    platform: Platform
    tenant_id: str
    conversation_id: str
    message_id: str
    sender: ChatSender
    text: str
    received_at: datetime
    schema: Literal["chat.message/v1"] = "chat.message/v1"
    attachments: tuple[Attachment, ...] = ()
    delivery_id: str | None = None
    sent_at: datetime | None = None
    # Bitrix24: the portal's public address from the event (auth[domain]); preflight checks it.
    portal_url: str | None = None

    def idempotency_key(self) -> str:
        return f"{self.platform}:{self.tenant_id}:{self.message_id}"


chat_message_decoder = msgspec.json.Decoder(ChatMessage)
