"""The AsyncAPI 3.0 document of every topic and message, generated from the topic declarations
(`topics.TOPICS`: partitions, retention, who writes and who reads) and the msgspec contracts (their JSON
Schemas, as `docs/schemas` has them). `make asyncapi` writes docs/asyncapi.json; a test fails when the
committed document differs from what this renders now.

One message per contract member: each event type in its envelope on `ticket.events` / `agent.events`,
each command type in its envelope on `ticket.commands`, each operator command on `ops.commands`, so a
reader sees every message a topic carries. A dead-letter topic carries its topic's messages, with the
dead-letter headers (`messaging.dead_letters`). Kafka bindings give partitions and the production
topic configuration (replication factor 3, `min.insync.replicas` 2: deploy/k8s renders the same)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from ticketflow.contracts.chat import ChatMessage, ChatReply
from ticketflow.contracts.commands import CommandEnvelope, TicketCommand
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.events import Event
from ticketflow.contracts.ops import OpsCommand, OpsCommandEnvelope, OpsEvent
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.contracts.topics import AGENT_EVENTS
from ticketflow.messaging import dead_letters as dl
from ticketflow.messaging.topics import CONTRACTS, TOPICS, TopicSpec

VERSION = "0.1.0"
PRODUCTION_REPLICAS, MIN_IN_SYNC = 3, 2
BINDING = "0.5.0"
REF = "#/components/schemas/{name}"
DEAD_LETTER_HEADERS = {
    dl.REASON: "the cause, short (undecodable, rejected, not an operator command, ...)",
    dl.DETAIL: "what exactly (at most 2,000 characters)",
    dl.CONSUMER: "the consumer that gave up on the record",
    dl.AT: "when, in epoch milliseconds",
    f"{dl.ORIGINAL}topic": "where the record was read: topic",
    f"{dl.ORIGINAL}partition": "partition",
    f"{dl.ORIGINAL}offset": "offset",
    f"{dl.ORIGINAL}timestamp": "the record's timestamp",
}


def _members(union: Any) -> list[type[msgspec.Struct]]:
    return list(getattr(union, "__args__", (union,)))


def _tag(cls: type[msgspec.Struct]) -> str:
    return str(cls.__struct_config__.tag or cls.__name__)


def _channel_id(topic: str) -> str:
    return topic.replace(".", "-")


def _messages(spec: TopicSpec) -> dict[str, dict[str, Any]]:
    """Message name -> payload schema (a $ref, or an envelope narrowed to one member)."""
    topic = spec.name.removesuffix(".dlq")
    contract = CONTRACTS[topic]
    if contract is EventEnvelope:
        members = _members(AgentEvent) if topic == AGENT_EVENTS else [
            m for m in _members(Event) if m not in _members(AgentEvent)
        ]  # fmt: skip
        return {_tag(m): _narrowed("EventEnvelope", "event", m) for m in members}
    if contract is CommandEnvelope:
        return {_tag(m): _narrowed("CommandEnvelope", "command", m) for m in _members(TicketCommand)}
    if contract is OpsCommandEnvelope:
        return {_tag(m): _narrowed("OpsCommandEnvelope", "command", m) for m in _members(OpsCommand)}
    return {contract.__name__: {"$ref": REF.format(name=contract.__name__)}}


def _narrowed(envelope: str, field: str, member: type[msgspec.Struct]) -> dict[str, Any]:
    narrowing = {"type": "object", "properties": {field: {"$ref": REF.format(name=member.__name__)}}}
    return {"allOf": [{"$ref": REF.format(name=envelope)}, narrowing]}


def _message_key(topic: str, name: str) -> str:
    return f"{_channel_id(topic)}.{name}"


def _channel(spec: TopicSpec, messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy], "retention.ms": spec.retention_ms,
                              "min.insync.replicas": MIN_IN_SYNC}  # fmt: skip
    channel: dict[str, Any] = {
        "address": spec.name,
        "title": spec.name,
        "description": spec.description + (f"; dead letters go to {spec.dead_letter}" if spec.dead_letter else ""),
        "messages": {n: {"$ref": f"#/components/messages/{_message_key(spec.name, n)}"} for n in messages},
        "bindings": {"kafka": {"topic": spec.name, "partitions": spec.partitions, "replicas": PRODUCTION_REPLICAS,
                               "topicConfiguration": config, "bindingVersion": BINDING}},
    }  # fmt: skip
    return channel


def _message(spec: TopicSpec, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": f"{name} on {spec.name}",
        "contentType": "application/json",
        "payload": payload,
        "bindings": {
            "kafka": {"key": {"type": "string", "description": spec.key or "none"}, "bindingVersion": BINDING}
        },
    }
    if spec.name.endswith(".dlq"):
        message["headers"] = {"type": "object", "properties": {h: {"type": "string", "description": d}
                                                                for h, d in DEAD_LETTER_HEADERS.items()}}  # fmt: skip
    return message


def _operations(spec: TopicSpec, channel_id: str) -> dict[str, dict[str, Any]]:
    operations: dict[str, dict[str, Any]] = {}
    for action, who in (("send", spec.written_by), ("receive", spec.read_by)):
        if who:
            operations[f"{action}-{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{', '.join(who)} {'write' if action == 'send' else 'read'} {spec.name}",
            }
    return operations


def _schemas() -> dict[str, Any]:
    types = (EventEnvelope, CommandEnvelope, OpsCommandEnvelope, OpsEvent, ChatMessage, ChatReply,
             *_members(Event), *_members(TicketCommand), *_members(OpsCommand))  # fmt: skip
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    return {name: _asyncapi_dialect(schema) for name, schema in sorted(components.items())}


def _asyncapi_dialect(schema: Any) -> Any:
    """msgspec writes OpenAPI's discriminator object; AsyncAPI's schema names only the property."""
    if isinstance(schema, dict):
        return {k: (v["propertyName"] if k == "discriminator" and isinstance(v, dict) else _asyncapi_dialect(v))
                for k, v in schema.items()}  # fmt: skip
    if isinstance(schema, list):
        return [_asyncapi_dialect(v) for v in schema]
    return schema


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS:
        channel_id = _channel_id(spec.name)
        payloads = _messages(spec)
        channels[channel_id] = _channel(spec, payloads)
        operations.update(_operations(spec, channel_id))
        messages.update({_message_key(spec.name, n): _message(spec, n, p) for n, p in payloads.items()})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ticketflow",
            "version": VERSION,
            "description": "Every Kafka topic of ticketflow and the messages it carries. Generated by "
            "`make asyncapi` from ticketflow.messaging.topics and ticketflow.contracts; do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "development": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make infra-up"},
            "production": {
                "host": "ticketflow-kafka-bootstrap:9093",
                "protocol": "kafka-secure",
                "description": "Strimzi (deploy/k8s): TLS, SASL/SCRAM-SHA-512 users",
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _schemas(),
            "securitySchemes": {"scram": {"type": "scramSha512", "description": "TICKETFLOW_KAFKA_SASL_*"}},
        },
    }


def render() -> bytes:
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/asyncapi.json")
    path.write_bytes(render())
    print(f"{path}: {len(TOPICS)} channels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
