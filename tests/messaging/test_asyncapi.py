"""docs/asyncapi.json: what the topic declarations and the contracts render now (`make asyncapi` after a
change), a valid AsyncAPI 3.0 document (the vendored official schema), and complete: every topic a
channel, every event, command and operator command a message, every reference resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from ticketflow.contracts.commands import TicketCommand
from ticketflow.contracts.events import Event
from ticketflow.contracts.ops import OpsCommand
from ticketflow.messaging import asyncapi
from ticketflow.messaging.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"


def test_the_committed_document_is_what_the_code_renders_now() -> None:
    assert COMMITTED.read_bytes() == asyncapi.render(), "docs/asyncapi.json is stale: run `make asyncapi`"


def test_it_is_a_valid_asyncapi_3_document() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "asyncapi-3.0.0.schema.json").read_bytes())
    errors = [f"{list(e.instance_path)}: {e.message[:200]}" for e in
              jsonschema_rs.validator_for(schema).iter_errors(asyncapi.document())]  # fmt: skip
    assert errors == []


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in refs(v)]
    return [r for v in node for r in refs(v)] if isinstance(node, list) else []


def test_every_topic_and_message_is_there_and_every_reference_resolves() -> None:
    doc = asyncapi.document()
    assert sorted(c["address"] for c in doc["channels"].values()) == sorted(t.name for t in TOPICS)
    names = {m["name"] for m in doc["components"]["messages"].values()}
    for union in (Event, TicketCommand, OpsCommand):
        assert {t.__struct_config__.tag for t in union.__args__} <= names
    for ref in refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    dlq = doc["channels"]["chat-inbound-dlq"]
    assert dlq["bindings"]["kafka"]["replicas"] == 3 and dlq["bindings"]["kafka"]["topicConfiguration"][
        "min.insync.replicas"] == 2  # fmt: skip
    letter = doc["components"]["messages"]["chat-inbound-dlq.ChatMessage"]
    assert "x-dead-letter-reason" in letter["headers"]["properties"]
