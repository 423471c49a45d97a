"""JSON Schema export of every event, command, the chat message and the chat reply (docs/schemas/*.json).

Run `python -m ticketflow.contracts.schema docs/schemas` (make schemas); a test fails when the
committed files are stale."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from ticketflow.contracts.chat import ChatMessage, ChatReply
from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ops import OpsCommandEnvelope, OpsEvent

SCHEMAS: dict[str, Any] = {
    "event-envelope": EventEnvelope,
    "command-envelope": CommandEnvelope,
    "chat-message": ChatMessage,
    "chat-reply": ChatReply,
    "ops-command": OpsCommandEnvelope,
    "ops-event": OpsEvent,
}


def render(name: str) -> bytes:
    schema = msgspec.json.schema(SCHEMAS[name])
    return msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / f"{name}.schema.json"
        path.write_bytes(render(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(p)
