"""NUL characters in inbound text: PostgreSQL `jsonb` and `text` cannot store U+0000, so one in a message
would fail the transaction of the whole batch it travels in.

The rule (docs/intake.md, "NUL characters"): in a customer's free text (message text, display name, file
name, e-mail ...) each NUL becomes U+FFFD, so the message is kept and what is stored shows that something
was there; in an identifier (tenant, conversation, message, user or delivery id) a NUL is malformed input
and the message is refused (`MalformedIdentifier`: a 422 over HTTP, a dead letter on `chat.inbound`).
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from ticketflow.contracts.chat import ChatMessage, chat_message_decoder

NUL = "\x00"
REPLACEMENT = "\ufffd"

# A NUL in msgspec's JSON is the escape `\u0000` (JSON strings cannot hold raw control characters). The
# escape counts only if preceded by an even number of backslashes: `\\u0000` is a literal backslash
# followed by the text "u0000", which stays as it is.
_ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
_encoder = msgspec.json.Encoder()
T = TypeVar("T")


class MalformedIdentifier(ValueError):
    """An identifier of an inbound message contains a NUL character."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} contains a NUL character (U+0000), which no identifier may contain")
        self.field = field


def without_nul(text: str) -> str:
    """`text` with each NUL replaced by U+FFFD (the replacement character); nothing else changes."""
    return text.replace(NUL, REPLACEMENT)


def has_escaped_nul(json_text: bytes) -> bool:
    """Whether a JSON document holds a NUL character in one of its strings (or keys)."""
    return b"\\u0000" in json_text and _ESCAPED_NUL.search(json_text) is not None


def normalise_chat_message(message: ChatMessage) -> ChatMessage:
    """The message as intake stores it: identifiers with a NUL are refused (`MalformedIdentifier`); in every
    other string field, nested ones included, each NUL becomes U+FFFD. Without a NUL, the same object."""
    sender = message.sender
    for field, value in (
        ("tenant_id", message.tenant_id),
        ("conversation_id", message.conversation_id),
        ("message_id", message.message_id),
        ("sender.user_id", sender.user_id),
        ("delivery_id", message.delivery_id or ""),
    ):
        if NUL in value:
            raise MalformedIdentifier(field)
    return with_nul_replaced(message, chat_message_decoder)


def with_nul_replaced(value: T, decoder: msgspec.json.Decoder[T]) -> T:
    """`value` with each NUL in every string field, nested ones included, replaced by U+FFFD (`decoder`
    decodes `value`'s type). Without a NUL, the same object. Check identifiers first: this changes them too."""
    encoded = _encoder.encode(value)
    if not has_escaped_nul(encoded):
        return value  # the common case: one C call and a substring search, no copy
    # Every string field at once, including fields added later: the JSON round trip is exact for a
    # wire-format Struct, and only this rare path pays for it.
    return decoder.decode(_ESCAPED_NUL.sub(rb"\1\\ufffd", encoded))
