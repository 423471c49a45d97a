"""Operators' commands from the command line: written to `ops.commands` as an SRE would with any Kafka
client, then the services' answers on `ops.events` followed until they settle."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from ticketflow.cli.context import CliError, Context
from ticketflow.contracts.ops import OpsCommand, OpsCommandEnvelope, OpsEvent, ops_event_decoder
from ticketflow.messaging.producer import make_producer
from ticketflow.runtime.ops_commands import OpsRejected, decode

SETTLE_S = 2.0  # after a final answer, how long to wait for other services' answers


def new_command_id(command: OpsCommand) -> str:
    return f"{type(command).__name__}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def envelope_of(value: bytes) -> OpsCommandEnvelope:
    """A command given as JSON, checked as the services check it (so a bad one never leaves here)."""
    try:
        return decode(value)
    except OpsRejected as rejected:
        raise CliError(f"not a valid ops command: {rejected}") from None


async def _answers_from_now(ctx: Context, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=ctx.bootstrap, enable_auto_commit=False,
                                **ctx.security.client_options())  # fmt: skip
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    deadline = asyncio.get_running_loop().time() + 30
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            await consumer.stop()
            raise CliError(f"{topic} does not exist: run `ticketflow topics create`")
        await asyncio.sleep(0.1)
    tps: list[TopicPartition] = list(consumer.assignment())
    for tp, end in (await consumer.end_offsets(tps)).items():
        consumer.seek(tp, end)
        await consumer.position(tp)
    return consumer


async def publish(ctx: Context, envelope: OpsCommandEnvelope, *, wait_s: float) -> list[OpsEvent]:
    """Send the command to the ops topic (TICKETFLOW_OPS_COMMANDS_TOPIC, as the services read it); with
    `wait_s` > 0, print the answers as they come and return them."""
    topic, answers = ctx.ops_topic, ctx.ops_events_topic
    if not topic or not answers:
        raise CliError("TICKETFLOW_OPS_COMMANDS_TOPIC and TICKETFLOW_OPS_EVENTS_TOPIC must name topics")
    consumer = await _answers_from_now(ctx, answers) if wait_s > 0 else None
    try:
        await _send(ctx, topic, envelope)
    except BaseException:
        if consumer is not None:
            await consumer.stop()
        raise
    if not ctx.json:
        ctx.console.print(f"sent {type(envelope.command).__name__} {envelope.command_id} to {topic}", markup=False)
    if consumer is None:
        ctx.emit({"command_id": envelope.command_id, "sent": True})
        return []
    try:
        got = await _follow(ctx, consumer, envelope.command_id, wait_s)
    finally:
        await consumer.stop()
    ctx.emit({"command_id": envelope.command_id, "answers": got})
    if not got:
        raise CliError(
            f"no service answered {envelope.command_id} within {wait_s:.0f}s (is the executing one running?)"
        )
    bad = [a for a in got if a.status in ("rejected", "failed")]
    if bad:
        raise CliError(f"{bad[0].service} {bad[0].status} {envelope.command_id}: {bad[0].reason}")
    return got


async def _send(ctx: Context, topic: str, envelope: OpsCommandEnvelope) -> None:
    producer = make_producer(ctx.bootstrap, ctx.security)
    try:
        await producer.start()
        await producer.send_and_wait(topic, msgspec.json.encode(envelope), key=envelope.command_id.encode())
    finally:
        await producer.stop()


async def _follow(ctx: Context, consumer: AIOKafkaConsumer, command_id: str, wait_s: float) -> list[OpsEvent]:
    loop = asyncio.get_running_loop()
    deadline, settled_at = loop.time() + wait_s, None
    got: list[OpsEvent] = []
    while loop.time() < (settled_at or deadline):
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                answer = ops_event_decoder.decode(record.value or b"")
                if answer.command_id != command_id:
                    continue
                got.append(answer)
                if not ctx.json:
                    counts = " ".join(f"{k}={v}" for k, v in answer.counts.items())
                    ctx.console.print(f"{answer.service} ({answer.instance}): {answer.status} {counts} {answer.reason}"
                                      .rstrip(), markup=False)  # fmt: skip
                if answer.status != "accepted":
                    settled_at = min(deadline, loop.time() + SETTLE_S)
    return got


def envelope(command: OpsCommand, *, actor: str, target: str, command_id: str | None) -> OpsCommandEnvelope:
    return OpsCommandEnvelope(1, command_id or new_command_id(command), actor, command, target,
                              datetime.now(UTC))  # fmt: skip
