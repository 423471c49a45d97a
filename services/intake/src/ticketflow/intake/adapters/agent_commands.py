"""`ticket.commands` → the ticket's stream, for the agent workflow commands (see ../agent_commands.py).

One record at a time, in partition order (key = ticket id, so one ticket's commands stay in order).
Never raises: an undecodable record, an unknown ticket, an invalid command or one the ticket's state
refuses goes to `ticket.commands.dlq` with `x-dead-letter-reason` (and `x-command-id`); a store outage
is retried with backoff, then dead-lettered with "retries exhausted". Event ids derive from the
command id, so a redelivered command adds nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from ticketflow.contracts.commands import CommandEnvelope, command_envelope_decoder
from ticketflow.contracts.envelope import EventMetadata
from ticketflow.contracts.ids import deterministic_event_id, ticket_stream
from ticketflow.contracts.topics import TICKET_COMMANDS
from ticketflow.eventstore.commands import execute
from ticketflow.eventstore.connection import retryable_errors
from ticketflow.eventstore.errors import RetryableStoreError, UnstorableEvent
from ticketflow.eventstore.store import EventStore
from ticketflow.intake.agent_commands import InvalidCommand, prepare
from ticketflow.lifecycle import IllegalTransition, Status, decide, evolve, initial_state
from ticketflow.runtime.kafka import with_retries

log = logging.getLogger("ticketflow.intake.agent_commands")
GROUP_ID = "ticketflow-intake-commands"
OUTAGES: tuple[type[BaseException], ...] = (RetryableStoreError, *retryable_errors())


class DeadLetterSink(Protocol):
    """`ticketflow.runtime.kafka.DeadLetters` (or a test double)."""

    async def send(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> object: ...


@dataclass
class Outcome:
    applied: int = 0  # commands that appended events
    unchanged: int = 0  # ignored (another service's), redelivered, or deciding nothing
    dead_lettered: int = 0


class AgentCommandHandler:
    def __init__(
        self, store: EventStore, dead_letters: DeadLetterSink, *, attempts: int = 5, base_delay: float = 0.1
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.attempts = attempts
        self.base_delay = base_delay

    async def handle(self, records: Sequence[Any]) -> Outcome:
        outcome = Outcome()
        for record in records:
            try:
                reason, command_id = await self._one(record, outcome)
            except Exception as error:  # a bug must not stop the partition: keep the record for a look
                log.exception("agent command failed unexpectedly")
                reason, command_id = f"unexpected error: {error!r}", ""
            if reason is not None:
                outcome.dead_lettered += 1
                await self._dead_letter(record, reason, command_id)
        return outcome

    async def _one(self, record: Any, outcome: Outcome) -> tuple[str | None, str]:
        try:
            envelope: CommandEnvelope = command_envelope_decoder.decode(record.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return f"undecodable: {error}", ""
        command_id = str(envelope.command_id)
        try:
            command = prepare(envelope)
        except InvalidCommand as invalid:
            return f"invalid: {invalid}", command_id
        if command is None:
            outcome.unchanged += 1
            return None, command_id
        stream = ticket_stream(command.ticket_id)
        metadata = EventMetadata(
            correlation_id=envelope.correlation_id, causation_id=envelope.command_id, traceparent=envelope.traceparent
        )

        async def apply() -> Any:
            try:
                return await execute(
                    self.store,
                    stream,
                    command,
                    decide,
                    evolve,
                    initial_state(),
                    command_id=envelope.command_id,
                    metadata=metadata,
                )
            except IllegalTransition as refused:
                return refused

        try:
            result = await with_retries(apply, OUTAGES, attempts=self.attempts, base_delay=self.base_delay)
        except OUTAGES as outage:
            return f"retries exhausted: {outage!r}", command_id
        except UnstorableEvent as unstorable:  # a value PostgreSQL refuses: retrying cannot help
            return f"unstorable: {unstorable}", command_id
        if isinstance(result, IllegalTransition):
            if result.status is Status.NEW:
                return f"unknown ticket {command.ticket_id}: {result}", command_id
            if await self._already_applied(stream, envelope):
                outcome.unchanged += 1  # redelivered after it was applied: the state moved on
                return None, command_id
            return str(result), command_id
        if result.result is None or result.result.already_stored:
            outcome.unchanged += 1
        else:
            outcome.applied += 1
        return None, command_id

    async def _already_applied(self, stream: str, envelope: CommandEnvelope) -> bool:
        first = deterministic_event_id(envelope.command_id, 0)
        history = await with_retries(
            lambda: self.store.read_stream(stream), OUTAGES, attempts=self.attempts, base_delay=self.base_delay
        )
        return any(e.event_id == first for e in history)

    async def _dead_letter(self, record: Any, reason: str, command_id: str) -> None:
        context = {"command_id": command_id} if command_id else {}
        await self.dead_letters.send(record.topic, record.key, record.value or b"", reason, **context)


def subscribe(
    broker: KafkaBroker, handler: AgentCommandHandler, *, topic: str = TICKET_COMMANDS, group_id: str = GROUP_ID
) -> None:
    """Add the `ticket.commands` subscriber to `broker` (explicit group, ack after handling)."""

    async def raw(message: Any) -> Any:  # records are decoded by msgspec in the handler
        return message.body

    @broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=raw,
    )
    async def on_ticket_command(body: Any, msg: KafkaMessage) -> None:
        await handler.handle((msg.raw_message,))
