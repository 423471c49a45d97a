"""Operators' commands in tests: writing records to an `ops.commands` topic and reading the answers of
`ops.events`, decoded with the contract's own decoder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ticketflow.contracts.ops import OpsEvent, ops_event_decoder


def command(command_id: str, body: dict[str, Any], *, target: str = "*", actor: str = "sre:test") -> bytes:
    """A record of ops.commands as an SRE writes it (plain JSON)."""
    record = {"version": 1, "command_id": command_id, "actor": actor, "target": target, "command": body}
    return json.dumps(record).encode()


async def send(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


class Answers:
    """Every answer on an ops.events topic, read from its beginning as they come."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.seen: list[OpsEvent] = []

    async def __aenter__(self) -> Answers:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def until(self, check: Callable[[list[OpsEvent]], bool], what: str, seconds: float = 30) -> list[OpsEvent]:
        try:
            async with asyncio.timeout(seconds):
                while not check(self.seen):
                    for records in (await self.consumer.getmany(timeout_ms=200)).values():
                        self.seen += [ops_event_decoder.decode(r.value or b"") for r in records]
        except TimeoutError:
            pytest.fail(f"not answered within {seconds}s: {what}; answers: {self.seen}")
        return self.seen

    async def of(self, command_id: str, status: str, seconds: float = 30) -> OpsEvent:
        """The answer with this status to this command (waiting for it)."""

        def found(seen: list[OpsEvent]) -> bool:
            return any(a.command_id == command_id and a.status == status for a in seen)

        await self.until(found, f"{command_id} {status}", seconds)
        return next(a for a in self.seen if a.command_id == command_id and a.status == status)

    async def reader_positioned(self, bootstrap: str, commands: str, target: str, seconds: float = 60) -> None:
        """A service's ops reader started at the topic's end: probe commands (SetLogLevel, changing nothing)
        are sent until one is answered, so what is sent from now on is read."""
        probe = {"type": "SetLogLevel", "level": "INFO", "logger": "ticketflow.test.probe"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        for n in range(10_000):
            await send(bootstrap, commands, command(f"probe-{n}", probe, target=target))
            try:
                await self.until(lambda seen: any(a.command_id.startswith("probe-") for a in seen), "a probe", 2)
                return
            except pytest.fail.Exception:
                if loop.time() > deadline:
                    raise
        raise AssertionError("unreachable")

    async def quiet(self, seconds: float = 1.0) -> list[OpsEvent]:
        """Everything answered after waiting `seconds` more (to check that nothing else came)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                self.seen += [ops_event_decoder.decode(r.value or b"") for r in records]
        return self.seen
