"""docs/operations.md's copy-paste examples: every one is a valid operator command, and one of them, sent
with Kafka's own console producer (installed by `make infra-up`), is read and answered by the runtime.
The tools are installed here when missing (deploy/scripts/kafka-tools.sh, into this checkout's .local)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from support.infra import KafkaTopicFactory
from support.ops import Answers

from ticketflow.contracts.ops import OPS_COMMAND_TYPES
from ticketflow.runtime.ops_commands import OpsConsumer, OpsExecutor, OpsHandlers, OpsLedger, decode

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".local" / "kafka" / "bin"
EXAMPLE = re.compile(r"^echo '(\{.*\})' \\$", re.MULTILINE)


def examples() -> list[str]:
    return EXAMPLE.findall((ROOT / "docs" / "operations.md").read_text(encoding="utf-8"))


def test_every_example_in_the_docs_is_a_valid_command_and_every_type_has_one() -> None:
    found = [decode(text.encode()) for text in examples()]
    assert {type(e.command) for e in found} == set(OPS_COMMAND_TYPES)
    assert len({e.command_id for e in found}) == len(found)  # each its own id


def console_producer() -> Path:
    tool = TOOLS / "kafka-console-producer"
    if not tool.exists():
        done = subprocess.run(["bash", str(ROOT / "deploy/scripts/kafka-tools.sh")], capture_output=True, text=True,
                              check=False, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"installing Kafka's tools failed:\n{done.stdout}{done.stderr}"
    return tool


@pytest.mark.kafka
@pytest.mark.pg
async def test_a_command_sent_with_kafkas_console_producer_is_executed_and_answered(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: KafkaTopicFactory
) -> None:
    commands, events = await kafka_topic_factory(suffix="ops-commands"), await kafka_topic_factory(suffix="ops-events")
    [line] = [text for text in examples() if '"SetLogLevel"' in text and '"target":"*"' in text]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    reader = OpsConsumer(OpsExecutor(OpsHandlers("notifications"), OpsLedger(pool, "pod-n"), producer, events),
                         kafka_bootstrap, commands)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        async with Answers(kafka_bootstrap, events) as answers:
            await asyncio.wait_for(reader.ready.wait(), 30)
            sent = await asyncio.create_subprocess_exec(
                str(console_producer()), "--bootstrap-server", kafka_bootstrap, "--topic", commands,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(sent.communicate(line.encode() + b"\n"), 120)
            assert sent.returncode == 0, output.decode()
            answer = await answers.of(json.loads(line)["command_id"], "done", seconds=60)
    finally:
        stop.set()
        await task
        await producer.stop()
    assert (answer.service, answer.command_type, answer.counts) == ("notifications", "SetLogLevel", {"loggers": 1})
