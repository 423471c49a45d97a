"""A chat message or a command over `MAX_INPUT_RECORD_BYTES` is refused before it is decoded: the event it
would become might not fit in a Kafka record and would hold up the relay (tests/poison shows the
whole system; this is the rule alone)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from support.records import FakeRecord

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.commands import CommandEnvelope, ReplyAsAgent
from ticketflow.contracts.topics import MAX_INPUT_RECORD_BYTES
from ticketflow.intake.consumer import decode_chat_messages, decode_command


def message_of(size: int) -> bytes:
    """A well-formed chat message of exactly `size` bytes."""
    empty = ChatMessage("express", "bot", "chat", "m-1", ChatSender("u-1"), "", datetime.now(UTC))
    value = msgspec.json.encode(msgspec.structs.replace(empty, text="x" * (size - len(msgspec.json.encode(empty)))))
    assert len(value) == size
    return value


def command_of(size: int) -> bytes:
    def encoded(text: str) -> bytes:
        reply = ReplyAsAgent(uuid.UUID(int=1), "ann", "", text)
        return msgspec.json.encode(CommandEnvelope(uuid.UUID(int=2), datetime(2026, 1, 1, tzinfo=UTC), "ann", reply))

    value = encoded("x" * (size - len(encoded(""))))
    assert len(value) == size
    return value


def record(value: bytes) -> FakeRecord:
    return FakeRecord("chat.inbound", 0, 7, b"k", value)


def test_a_chat_message_at_the_limit_is_decoded_and_one_byte_more_is_refused_naming_the_limit() -> None:
    decoded, refused = decode_chat_messages([record(message_of(MAX_INPUT_RECORD_BYTES))])
    assert len(decoded) == 1 and not refused
    decoded, refused = decode_chat_messages([record(message_of(MAX_INPUT_RECORD_BYTES + 1))])
    assert not decoded
    [(_, why)] = refused
    assert f"{MAX_INPUT_RECORD_BYTES + 1} bytes exceeds the {MAX_INPUT_RECORD_BYTES}-byte limit" in why


def test_a_command_at_the_limit_is_decoded_and_one_byte_more_is_refused_naming_the_limit() -> None:
    assert decode_command(command_of(MAX_INPUT_RECORD_BYTES)).command_id == uuid.UUID(int=2)
    with pytest.raises(msgspec.ValidationError, match=f"exceeds the {MAX_INPUT_RECORD_BYTES}-byte limit"):
        decode_command(command_of(MAX_INPUT_RECORD_BYTES + 1))
