"""Operators' commands (`ops.commands`, `ticketflow.contracts.ops`), wired once for every service.

Each service registers the commands it executes (`Runtime.on_ops`); the runtime reads the topic and
answers on `ops.events`. Every instance reads every record (no consumer group: a command such as
SetLogLevel or ReloadDeskConfig must reach each instance), from its service's position in PostgreSQL.

- `each_instance=True` (log level, desk reload, intake pause): every running instance applies it; the
  first to claim the command id in `ops_commands` answers for the service (done, or rejected).
- otherwise (a rebuild, a redrive, a replay): the first instance to claim the command id executes it,
  answering `accepted`, then `done` with counts (or `failed`, or `rejected`); the others skip it.
- A command id is claimed once per service, so a command sent twice, or read again, is executed and
  answered once (idempotent by command id). A record that is not a command (not JSON, an unknown type,
  wrong fields, an unsupported version, an unknown target) is claimed by its place (topic, partition,
  offset): it is rejected once, by the first service to read it, with the reason, and dead-lettered by that
  service to `ops.commands.dlq` (`messaging.dead_letters`: reason "undecodable", or "rejected" for a
  decodable command to an unknown target; the detail is the reason). Nothing a record holds stops the
  consumer.
- A valid command that cannot be executed now (PostgreSQL or the broker away) waits and is retried, as
  in every consumer; readiness says so meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer

from ticketflow.contracts.ops import (
    OPS_COMMAND_TYPES,
    OPS_VERSION,
    SERVICES,
    OpsCommandEnvelope,
    OpsEvent,
    OpsStatus,
    SetLogLevel,
    ops_command_decoder,
)
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.outages import OUTAGES, Backoff, Waiting
from ticketflow.messaging.producer import Sender
from ticketflow.messaging.records import Record
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
Counts = Mapping[str, int]


@dataclass(frozen=True)
class OpsDone:
    """What a handler returns when its answer says more than counts ("the topic was empty")."""

    counts: Counts
    note: str = ""


OpsHandler = Callable[[Any, OpsCommandEnvelope], Awaitable[Counts | OpsDone]]  # (command, its envelope)
NOT_A_COMMAND = "*"  # the service name under which records that are not a command are claimed
_encoder = msgspec.json.Encoder()


class OpsRejected(Exception):
    """The command cannot be executed as sent (an unknown desk, a broken desk file): nothing changed.
    The message is the reason on `ops.events`."""


class NotACommand(OpsRejected):
    """The record does not decode as a command (not JSON, wrong fields, an unknown type or version)."""


def this_instance() -> str:
    """How answers name the process: its host (a Kubernetes pod's name) and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class _Registration:
    handler: OpsHandler
    each_instance: bool


@dataclass
class OpsHandlers:
    """The commands one service executes (`on`), and `SetLogLevel`, which every service executes."""

    service: str
    registered: dict[type, _Registration] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.on(SetLogLevel, set_log_level, each_instance=True)

    def on(self, command_type: type, handler: OpsHandler, *, each_instance: bool = False) -> None:
        self.registered[command_type] = _Registration(handler, each_instance)


async def set_log_level(command: SetLogLevel, _: OpsCommandEnvelope) -> Counts:
    logging.getLogger(command.logger or None).setLevel(command.level)
    return {"loggers": 1}


class OpsLedger:
    """`ops_commands` (claims, answers) and `ops_positions` (where each service reads from)."""

    def __init__(self, pool: asyncpg.Pool, instance: str) -> None:
        self.pool = pool
        self.instance = instance

    async def claim(self, service: str, command_id: str, command_type: str) -> bool:
        """True when this instance answers the command for `service` (it claimed it now, or earlier and
        has not finished: a retry after an outage)."""
        row = await self.pool.fetchrow(
            """INSERT INTO ops_commands (service, command_id, command_type, status, instance)
               VALUES ($1, $2, $3, 'accepted', $4)
               ON CONFLICT (service, command_id) DO UPDATE SET service = ops_commands.service
               RETURNING instance, status""",
            service, command_id, command_type, self.instance,
        )  # fmt: skip
        assert row is not None
        return bool(row["instance"] == self.instance and row["status"] == "accepted")

    async def finish(self, service: str, command_id: str, status: OpsStatus, reason: str) -> None:
        await self.pool.execute(
            """UPDATE ops_commands SET status = $3, reason = $4, answered_at = now()
               WHERE service = $1 AND command_id = $2""",
            service, command_id, status, reason,
        )  # fmt: skip

    async def positions(self, service: str) -> dict[int, int]:
        rows = await self.pool.fetch("SELECT partition, next_offset FROM ops_positions WHERE service = $1", service)
        return {r["partition"]: r["next_offset"] for r in rows}

    async def advance(self, service: str, partition: int, next_offset: int) -> None:
        await self.pool.execute(
            """INSERT INTO ops_positions (service, partition, next_offset) VALUES ($1, $2, $3)
               ON CONFLICT (service, partition) DO UPDATE
               SET next_offset = GREATEST(ops_positions.next_offset, EXCLUDED.next_offset)""",
            service, partition, next_offset,
        )  # fmt: skip


def decode(value: bytes) -> OpsCommandEnvelope:
    """The command, or `OpsRejected` with a reason a person can act on."""
    try:
        envelope = ops_command_decoder.decode(value)
    except msgspec.ValidationError as error:  # a DecodeError too: first
        raise NotACommand(_why_invalid(value, str(error))) from None
    except msgspec.DecodeError as error:
        raise NotACommand(f"not JSON: {error}") from None
    if envelope.target != "*" and envelope.target not in SERVICES:
        raise OpsRejected(f"unknown target {envelope.target!r}: one of {', '.join(SERVICES)}, or '*'")
    return envelope


def _why_invalid(value: bytes, error: str) -> str:
    loose = _loose(value)
    command = loose.get("command")
    version = loose.get("version")
    if version != OPS_VERSION and "version" in loose:
        return f"unsupported version {version!r}: this service reads version {OPS_VERSION}"
    if isinstance(command, dict) and "`$.command.type`" in error:
        known = ", ".join(t.__name__ for t in OPS_COMMAND_TYPES)
        return f"unknown command type {command.get('type')!r}: known types are {known}"
    return f"wrong fields: {error}"


def _loose(value: bytes) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


class OpsExecutor:
    """Executes and answers the records of `ops.commands` for one service instance."""

    def __init__(
        self,
        handlers: OpsHandlers,
        ledger: OpsLedger,
        producer: Sender,
        answers_topic: str,
        dead_letters: DeadLetterWriter | None = None,
    ) -> None:
        self.dead_letters = dead_letters  # None: a rejected record is answered only (tests of other things)
        self.handlers = handlers
        self.service = handlers.service
        self.ledger = ledger
        self.producer = producer
        self.answers_topic = answers_topic
        self.executed = 0

    async def handle(self, record: Record) -> None:
        """One record; raises only an outage (the caller waits and calls again)."""
        value = record.value or b""
        try:
            envelope = decode(value)
        except OpsRejected as rejected:
            loose_id = _loose(value).get("command_id")
            command_id = loose_id if isinstance(loose_id, str) and loose_id else _where(record)
            # Claimed by the record's place, not its id: two bad records reusing one id are each rejected.
            if await self.ledger.claim(NOT_A_COMMAND, _where(record), ""):
                if self.dead_letters is not None:
                    reason = "undecodable" if isinstance(rejected, NotACommand) else "rejected"
                    await self.dead_letters.send(record, reason, str(rejected), command_id=command_id)
                await self._answer(NOT_A_COMMAND, command_id, "", "rejected", str(rejected), claimed=_where(record))
            return
        if envelope.target not in ("*", self.service):
            return
        kind = type(envelope.command).__name__
        registration = self.handlers.registered.get(type(envelope.command))
        if registration is None:
            if envelope.target == self.service and await self.ledger.claim(self.service, envelope.command_id, kind):
                executes = ", ".join(sorted(t.__name__ for t in self.handlers.registered))
                await self._answer(self.service, envelope.command_id, kind, "rejected",
                                   f"{self.service} does not execute {kind} (it executes {executes})")  # fmt: skip
            return
        if registration.each_instance:
            await self._apply_here(envelope, kind, registration.handler)
        elif await self.ledger.claim(self.service, envelope.command_id, kind):
            await self._answer(self.service, envelope.command_id, kind, "accepted")
            await self._execute(envelope, kind, registration.handler)

    async def _apply_here(self, envelope: OpsCommandEnvelope, kind: str, handler: OpsHandler) -> None:
        status: OpsStatus
        try:
            counts, reason = _done(await handler(envelope.command, envelope))
            status = "done"
        except OpsRejected as rejected:
            counts, status, reason = {}, "rejected", str(rejected)
        self.executed += 1
        if await self.ledger.claim(self.service, envelope.command_id, kind):
            await self._answer(self.service, envelope.command_id, kind, status, reason, counts)

    async def _execute(self, envelope: OpsCommandEnvelope, kind: str, handler: OpsHandler) -> None:
        status: OpsStatus
        try:
            counts, reason = _done(await handler(envelope.command, envelope))
            status = "done"
        except OpsRejected as rejected:
            counts, status, reason = {}, "rejected", str(rejected)
        except OUTAGES:
            raise
        except Exception as error:
            log.exception("%s: ops command %s (%s) failed", self.service, envelope.command_id, kind)
            counts, status, reason = {}, "failed", repr(error)
        self.executed += 1
        await self._answer(self.service, envelope.command_id, kind, status, reason, counts)

    async def _answer(
        self,
        service: str,
        command_id: str,
        kind: str,
        status: OpsStatus,
        reason: str = "",
        counts: Counts | None = None,
        claimed: str | None = None,  # the ledger's key when it is not the command id (a record's place)
    ) -> None:
        event = OpsEvent(command_id, service, self.ledger.instance, status, datetime.now(UTC), kind, reason,
                         dict(counts or {}))  # fmt: skip
        await self.producer.send_and_wait(self.answers_topic, _encoder.encode(event), key=command_id.encode())
        if status != "accepted":
            await self.ledger.finish(service, claimed or command_id, status, reason)
        log.info("%s: ops command %s (%s): %s %s", service, command_id, kind or "?", status, reason or event.counts)


def _done(outcome: Counts | OpsDone) -> tuple[Counts, str]:
    return (outcome.counts, outcome.note) if isinstance(outcome, OpsDone) else (outcome, "")


def _where(record: Record) -> str:
    return f"{record.topic}:{record.partition}:{record.offset}"


@dataclass
class OpsConsumer:
    """Reads every partition of `topic` without a consumer group, from the service's positions (new
    service: the topic's end), and hands each record to the executor, in order."""

    executor: OpsExecutor
    bootstrap: str
    topic: str
    security: KafkaSecurity = PLAINTEXT
    backoff: Backoff = field(default_factory=Backoff)
    waiting: Waiting = field(default_factory=Waiting)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # positioned: what is written now is read

    async def run(self, stop: asyncio.Event) -> None:
        # Without a group, aiokafka assigns every partition of the topic to this consumer.
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            client_id=f"ticketflow-{self.service}-ops", **self.security.client_options(),
        )  # fmt: skip
        await consumer.start()
        try:
            await self._position(consumer)
            self.ready.set()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(record, stop)
                        await self.executor.ledger.advance(self.service, tp.partition, record.offset + 1)
        finally:
            await consumer.stop()

    @property
    def service(self) -> str:
        return self.executor.service

    async def _position(self, consumer: AIOKafkaConsumer, patience_s: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + patience_s
        while not (tps := sorted(consumer.assignment(), key=lambda tp: tp.partition)):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topic {self.topic} does not exist (make topics, or a Strimzi KafkaTopic)")
            await asyncio.sleep(0.1)
        positions = await self.executor.ledger.positions(self.service)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, positions.get(tp.partition, ends[tp]))
            await consumer.position(tp)  # resolved now: a record written from here on is read

    async def _handle(self, record: Record, stop: asyncio.Event) -> None:
        while True:
            try:
                await self.executor.handle(record)
                self.waiting.recovered()
                return
            except OUTAGES as outage:
                pause = self.backoff.delay(self.waiting.failed(outage))
                log.warning("%s: ops command at %s waits %.1fs: %r", self.service, _where(record), pause, outage)
                if stop.is_set():
                    raise
                await asyncio.sleep(pause)
