"""The JSON Schemas committed in docs/schemas/ are what the Structs say now (`make schemas` after a
contract change), and real encoded documents validate against them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from contract_samples import COMMAND_TYPES, instances
from hypothesis import given, settings

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope, envelope_encoder
from ticketflow.contracts.events import EVENT_TYPES
from ticketflow.contracts.schema import SCHEMAS, render
from ticketflow.contracts.ticket_events import TicketClosed

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EXAMPLES = settings(max_examples=150, deadline=None)


def committed(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    return document


VALIDATORS = {name: jsonschema_rs.validator_for(committed(name)) for name in SCHEMAS}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_committed_schema_is_what_the_structs_render_now(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.read_bytes() == render(name), f"{path} is stale: run `make schemas` and commit the result"


def test_no_stale_schema_files_are_left_behind() -> None:
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == {f"{name}.schema.json" for name in SCHEMAS}


def test_every_event_and_command_type_has_a_definition() -> None:
    assert set(EVENT_TYPES) <= set(committed("event-envelope")["$defs"])
    assert set(COMMAND_TYPES) <= set(committed("command-envelope")["$defs"])


def as_json(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


@EXAMPLES
@given(envelope=instances(EventEnvelope))
def test_encoded_event_envelopes_validate(envelope: EventEnvelope) -> None:
    VALIDATORS["event-envelope"].validate(json.loads(envelope_encoder.encode(envelope)))


@EXAMPLES
@given(envelope=instances(CommandEnvelope))
def test_encoded_command_envelopes_validate(envelope: CommandEnvelope) -> None:
    VALIDATORS["command-envelope"].validate(as_json(envelope))


@EXAMPLES
@given(message=instances(ChatMessage))
def test_encoded_chat_messages_validate(message: ChatMessage) -> None:
    VALIDATORS["chat-message"].validate(as_json(message))


def a_stored_envelope() -> dict[str, Any]:
    ticket = uuid.uuid4()
    event = TicketClosed(ticket, "confirmed by the customer", "customer")
    document: dict[str, Any] = as_json(
        EventEnvelope(uuid.uuid4(), f"ticket-{ticket}", 7, datetime.now(UTC), 1, event, position=42)
    )
    return document


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["event"].update(type="TicketTeleported"), ["event"]),
        (lambda d: d["event"].pop("reason"), ["event"]),
        (lambda d: d.update(stream_version="7"), ["stream_version"]),
        (lambda d: d.pop("stream_id"), []),
        (lambda d: d["metadata"].update(tenant="x"), ["metadata"]),
    ],
    ids=["unknown-event-type", "missing-event-field", "wrong-type", "missing-envelope-field", "unknown-field"],
)
def test_an_invalid_envelope_fails_the_schema_at_its_path(mutate: Any, path: list[str]) -> None:
    document = a_stored_envelope()
    VALIDATORS["event-envelope"].validate(document)
    mutate(document)
    errors = list(VALIDATORS["event-envelope"].iter_errors(document))
    assert errors and any(list(error.instance_path) == path for error in errors), [str(e) for e in errors]
