"""The normalised chat message: what every platform adapter produces and `chat.inbound` carries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from ticketflow.contracts.values import Attachment, ChatRef, Platform, Role


class ChatSender(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: str
    display_name: str = ""
    roles: tuple[Role, ...] = ()
    is_admin: bool = False
    locale: str = "ru"
    email: str | None = None
    # Bitrix24: why the portal could not be asked whether the sender is an administrator (REST
    # `user.admin`), e.g. "timeout"; `is_admin` is then False. None: the flag is the platform's answer.
    admin_unverified: str | None = None


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


class ChatReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A text the bot owes a chat outside the ticket lifecycle (self-help hints, `/status` and `/close`
    answers), decided by intake and delivered by notifications. Already in the requester's language.

    `reply_key` is the idempotency key of the delivery: the same on every republish, so a redelivered
    record sends nothing new. `cause_key` is the platform message that caused it."""

    reply_key: str
    chat: ChatRef
    reason: str
    body: str
    cause_key: str
    created_at: datetime
    ticket_id: str | None = None
    schema: Literal["chat.reply/v1"] = "chat.reply/v1"


chat_reply_decoder = msgspec.json.Decoder(ChatReply)
