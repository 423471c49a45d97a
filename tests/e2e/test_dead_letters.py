"""Issue 15, on the running system (conftest.py): a bad record on every consumed topic reaches its
dead-letter topic from every consumer of that topic, and `ticketflow dlq list <topic>` (the command
docs/operations.md gives operators) shows who gave up on it and why, never `?`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from ticketflow.contracts.topics import AGENT_EVENTS, CHAT_INBOUND, CHAT_REPLIES, TICKET_COMMANDS, TICKET_EVENTS

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka]
CLI = Path(sys.executable).with_name("ticketflow")
# Every consumer of each topic, by the name its dead letters carry.
CONSUMERS = {
    TICKET_EVENTS: {"preflight", "routing", "sla", "notifications"},
    AGENT_EVENTS: {"routing"},
    CHAT_INBOUND: {"intake"},
    CHAT_REPLIES: {"notifications"},
    TICKET_COMMANDS: {"intake-commands", "routing"},
}


def dlq_list(topic: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(CLI), "--json", "dlq", "list", topic, "--limit", "100000"], capture_output=True, text=True, timeout=120,
        env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    letters: list[dict[str, Any]] = json.loads(done.stdout)
    return letters


def letters_about(letters: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """The dead letters whose value has `marker`."""
    return [letter for letter in letters if marker in letter["value"]]


async def test_a_bad_record_on_every_consumed_topic_is_dead_lettered_by_each_consumer_with_its_cause(
    system: str, kafka_bootstrap: str
) -> None:
    marker = f"not-a-record-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for topic in CONSUMERS:
            await producer.send_and_wait(topic, f"{{{marker}".encode(), key=marker.encode())
    finally:
        await producer.stop()
    missing: dict[str, set[str]] = {}
    for _ in range(90):
        missing = {}
        for topic, consumers in CONSUMERS.items():
            letters = letters_about(await asyncio.to_thread(dlq_list, topic), marker)
            seen = {letter["consumer"] for letter in letters} & consumers
            if seen != consumers:
                missing[topic] = consumers - seen
            for letter in letters:
                assert letter["original_topic"] == topic, letter  # where from, and why
                assert letter["reason"] in ("undecodable", "invalid_record"), letter
        if not missing:
            return
        await asyncio.sleep(1)
    pytest.fail(f"not dead-lettered by: {missing}")
