"""Every event and command survives msgspec JSON unchanged: alone, through the tagged unions,
through the stored-event codec, and inside the envelopes that travel on Kafka."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from contract_samples import ALL_COMMAND_TYPES, ALL_EVENT_TYPES, COMMAND_TYPES, instances
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketflow.contracts.chat import ChatMessage, chat_message_decoder
from ticketflow.contracts.codec import default_codec
from ticketflow.contracts.commands import CommandEnvelope, TicketCommand, command_envelope_decoder
from ticketflow.contracts.envelope import EventEnvelope, envelope_decoder, envelope_encoder
from ticketflow.contracts.events import EVENT_TYPES, Event, event_type_name, schema_version_of

CODEC = default_codec()
EXAMPLES = settings(max_examples=25, deadline=None)


def test_every_event_type_is_registered_once_under_its_class_name() -> None:
    members = Event.__args__  # type: ignore[attr-defined]
    assert len(members) == len(EVENT_TYPES), "two event types share a tag"
    assert all(name == cls.__name__ for name, cls in EVENT_TYPES.items())
    assert len(COMMAND_TYPES) == len({cls.__struct_config__.tag for cls in COMMAND_TYPES.values()})


@pytest.mark.parametrize("cls", [*EVENT_TYPES.values(), *COMMAND_TYPES.values()], ids=lambda cls: cls.__name__)
def test_contracts_are_frozen_strict_and_tagged_by_type(cls: type[msgspec.Struct]) -> None:
    config = cls.__struct_config__
    assert config.frozen and config.forbid_unknown_fields
    assert (config.tag_field, config.tag) == ("type", cls.__name__)


@pytest.mark.parametrize("name", ALL_EVENT_TYPES)
def test_events_carry_a_positive_schema_version(name: str) -> None:
    assert isinstance(schema_version_of(name), int) and schema_version_of(name) >= 1
    assert CODEC.current_version(name) == schema_version_of(name)


@pytest.mark.parametrize("name", ALL_EVENT_TYPES)
@EXAMPLES
@given(data=st.data())
def test_every_event_round_trips(name: str, data: st.DataObject) -> None:
    event: Any = data.draw(instances(EVENT_TYPES[name]))
    encoded = msgspec.json.encode(event)
    assert msgspec.json.decode(encoded)["type"] == name == event_type_name(event)
    assert msgspec.json.decode(encoded, type=EVENT_TYPES[name]) == event
    assert msgspec.json.decode(encoded, type=Event) == event  # type: ignore[arg-type]
    assert CODEC.decode(name, CODEC.current_version(name), CODEC.encode(event)) == event


@pytest.mark.parametrize("name", ALL_COMMAND_TYPES)
@EXAMPLES
@given(data=st.data())
def test_every_command_round_trips(name: str, data: st.DataObject) -> None:
    command: Any = data.draw(instances(COMMAND_TYPES[name]))
    encoded = msgspec.json.encode(command)
    assert msgspec.json.decode(encoded, type=TicketCommand) == command  # type: ignore[arg-type]
    envelope = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), "lead", command)
    assert command_envelope_decoder.decode(msgspec.json.encode(envelope)) == envelope


@settings(max_examples=100, deadline=None)
@given(envelope=instances(EventEnvelope))
def test_event_envelopes_round_trip(envelope: EventEnvelope) -> None:
    assert envelope_decoder.decode(envelope_encoder.encode(envelope)) == envelope


@settings(max_examples=100, deadline=None)
@given(message=instances(ChatMessage))
def test_chat_messages_round_trip(message: ChatMessage) -> None:
    assert chat_message_decoder.decode(msgspec.json.encode(message)) == message
