"""Bad input is refused at the boundary, and the error names the offending field by its JSON path."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from ticketflow.contracts.chat import chat_message_decoder
from ticketflow.contracts.codec import UnknownEventType, default_codec
from ticketflow.contracts.commands import command_envelope_decoder
from ticketflow.contracts.envelope import envelope_decoder

CODEC = default_codec()
TICKET_ID = "018f0000-0000-7000-8000-000000000001"
TICKET_OPENED: dict[str, Any] = {
    "type": "TicketOpened",
    "ticket_id": TICKET_ID,
    "desk_id": "bitrix24-box",
    "track_id": "box",
    "chat": {"platform": "bitrix24", "tenant_id": "portal-1", "conversation_id": "chat-1"},
    "requester": {"user_id": "user-1", "roles": ["portal_admin"]},
    "text": "the portal is slow",
    "platform_message_id": "m1",
    "opened_at": "2026-11-23T08:00:00Z",
}
CHAT_MESSAGE: dict[str, Any] = {
    "platform": "express",
    "tenant_id": "bot-1",
    "conversation_id": "chat-1",
    "message_id": "m1",
    "sender": {"user_id": "huid-1", "is_admin": True},
    "text": "the app does not start",
    "received_at": "2026-11-23T08:00:00+03:00",
}


def changed(document: dict[str, Any], path: str, value: Any) -> bytes:
    """A copy of `document` with the dotted `path` set to `value` (or removed, for `...`)."""
    copy = json.loads(json.dumps(document))
    *parents, leaf = path.split(".")
    node = copy
    for key in parents:
        node = node[key]
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return json.dumps(copy).encode()


def test_the_valid_documents_decode() -> None:
    assert type(CODEC.decode("TicketOpened", 1, json.dumps(TICKET_OPENED))).__name__ == "TicketOpened"
    assert chat_message_decoder.decode(json.dumps(CHAT_MESSAGE)).sender.is_admin


def test_an_unknown_event_type_is_refused_by_the_codec() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'TicketTeleported'"):
        CODEC.decode("TicketTeleported", 1, b"{}")
    with pytest.raises(UnknownEventType, match="TicketTeleported"):
        CODEC.current_version("TicketTeleported")


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("requester.user_id", 5, "Expected `str`, got `int` - at `$.requester.user_id`"),
        ("requester.user_id", ..., "Object missing required field `user_id` - at `$.requester`"),
        ("requester.roles", ["root"], "Invalid enum value 'root' - at `$.requester.roles[0]`"),
        ("chat.platform", "telegram", "Invalid enum value 'telegram' - at `$.chat.platform`"),
        ("ticket_id", "not-a-uuid", "Invalid UUID - at `$.ticket_id`"),
        ("opened_at", "yesterday", "Invalid RFC3339 encoded datetime - at `$.opened_at`"),
        ("priority", "whenever", "Invalid enum value 'whenever' - at `$.priority`"),
        ("chat.shard", "eu", "Object contains unknown field `shard` - at `$.chat`"),
        ("type", "TicketClosed", "Invalid value 'TicketClosed' - at `$.type`"),  # stored type and tag disagree
    ],
)
def test_an_invalid_stored_event_is_refused_with_the_field_path(path: str, value: Any, error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        CODEC.decode("TicketOpened", 1, changed(TICKET_OPENED, path, value))
    assert str(refused.value) == error


def envelope(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": "018f0000-0000-7000-8000-0000000000e1",
        "stream_id": f"ticket-{TICKET_ID}",
        "stream_version": 1,
        "occurred_at": "2026-11-23T08:00:00Z",
        "schema_version": 1,
        "event": event,
    }


def test_an_envelope_with_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value 'TicketTeleported' - at `\$.event.type`"):
        envelope_decoder.decode(json.dumps(envelope({**TICKET_OPENED, "type": "TicketTeleported"})))


def test_an_envelope_with_an_invalid_event_names_the_nested_path() -> None:
    bad = json.loads(changed(TICKET_OPENED, "requester.user_id", 5))
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.event.requester.user_id`"):
        envelope_decoder.decode(json.dumps(envelope(bad)))


def test_a_command_envelope_with_an_unknown_command_is_refused() -> None:
    document = {
        "command_id": "018f0000-0000-7000-8000-0000000000c1",
        "issued_at": "2026-11-23T08:00:00Z",
        "actor": "sre",
        "command": {"type": "DeleteTicket", "ticket_id": TICKET_ID},
    }
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value 'DeleteTicket' - at `\$.command.type`"):
        command_envelope_decoder.decode(json.dumps(document))


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("sender.user_id", 42, "Expected `str`, got `int` - at `$.sender.user_id`"),
        ("sender.user_id", ..., "Object missing required field `user_id` - at `$.sender`"),
        ("sender.is_admin", "yes", "Expected `bool`, got `str` - at `$.sender.is_admin`"),
        ("platform", "telegram", "Invalid enum value 'telegram' - at `$.platform`"),
        ("schema", "chat.message/v2", "Invalid enum value 'chat.message/v2' - at `$.schema`"),
        ("message_id", ..., "Object missing required field `message_id`"),
        ("received_at", 1700000000, "Expected `datetime`, got `int` - at `$.received_at`"),
    ],
)
def test_an_invalid_chat_message_is_refused_with_the_field_path(path: str, value: Any, error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        chat_message_decoder.decode(changed(CHAT_MESSAGE, path, value))
    assert str(refused.value) == error


def test_a_chat_message_that_is_not_json_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        chat_message_decoder.decode(b"data[PARAMS][MESSAGE]=hi")
