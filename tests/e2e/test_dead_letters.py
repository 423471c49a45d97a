"""Issue 15, on the running system (conftest.py): a bad record on every consumed topic reaches its
dead-letter topic from every consumer of that topic, and `ticketflow dlq show <topic>` (the command
docs/operations.md gives operators) prints who gave up on it and why, never `?`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

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


def dlq_show(topic: str) -> str:
    done = subprocess.run(
        [str(CLI), "dlq", "show", topic, "--limit", "100000"], capture_output=True, text=True, timeout=120,
        env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def lines_about(output: str, marker: str) -> list[str]:
    """Each dead letter is two lines (cause, then consumer and value): the pairs whose value has `marker`."""
    lines = output.splitlines()[:-1]  # the last line counts them
    return [f"{cause}\n{detail}" for cause, detail in zip(lines[0::2], lines[1::2], strict=True) if marker in detail]


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
            letters = lines_about(await asyncio.to_thread(dlq_show, topic), marker)
            seen = {c for c in consumers for letter in letters if f"consumer={c} " in letter}
            if seen != consumers:
                missing[topic] = consumers - seen
            for letter in letters:
                cause = letter.splitlines()[0]
                assert ": ?" not in cause and f"from {topic}[" in cause, letter  # where from, and why
                assert "undecodable" in cause or "invalid_record" in cause, letter
        if not missing:
            return
        await asyncio.sleep(1)
    pytest.fail(f"not dead-lettered by: {missing}")
