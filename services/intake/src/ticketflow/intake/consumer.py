"""Intake's subscriptions, through `ticketflow.messaging`:

- `chat.inbound` (pattern (b), the ordered pipeline): batches overlap (`TICKETFLOW_INTAKE_IN_FLIGHT`),
  a conversation's messages keep their order (`conversation_order.py`), offsets are committed strictly
  in order once a batch is stored, a failure seeks back; a record that does not decode is dead-lettered.
- `ticket.commands` (pattern (a), per-key batches): one ticket's commands in order, tickets concurrently;
  a command that does not decode or that intake refuses is dead-lettered with the reason; an outage is
  waited out (never a dead letter).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec

from ticketflow.contracts.chat import chat_message_decoder
from ticketflow.contracts.commands import OPERATOR_COMMANDS, CommandEnvelope, command_envelope_decoder
from ticketflow.contracts.text import MalformedIdentifier, has_escaped_nul, normalise_chat_message
from ticketflow.contracts.topics import MAX_INPUT_RECORD_BYTES
from ticketflow.intake.app import CommandRejected, Inbound, Intake
from ticketflow.intake.conversation_order import ConversationOrder
from ticketflow.intake.settings import IntakeSettings
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.ordered import OrderedPipeline, ordered_pipeline
from ticketflow.messaging.per_key import PerKeyBatches, per_key_batches
from ticketflow.messaging.records import Record
from ticketflow.runtime.service import Runtime

INBOUND_CONSUMER, COMMANDS_CONSUMER = "intake", "intake-commands"  # as dead letters name them
NOT_AN_OPERATOR_COMMAND = "not an operator command"


def subscribe(rt: Runtime, settings: IntakeSettings, intake: Intake) -> None:
    pipeline = chat_inbound_pipeline(intake.record_inbound, intake.reject_undecodable, name=settings.topic,
                                     depth=settings.in_flight)  # fmt: skip
    ordered_pipeline(rt.broker, [settings.topic], settings.group, pipeline, max_records=settings.batch)
    rt.watch(settings.topic, pipeline.waiting)
    rt.on_drain(pipeline.drain)  # batches in flight: recorded and committed, or left to redeliver
    if settings.commands_topic:
        worker = commands_worker(intake, rt.dead_letters(COMMANDS_CONSUMER))
        per_key_batches(rt.broker, [settings.commands_topic], settings.commands_group, worker)
        rt.watch(settings.commands_topic, worker.waiting)


def chat_inbound_pipeline(
    record: Callable[[list[Inbound]], Awaitable[None]],
    reject: Callable[[list[tuple[Record, str]]], Awaitable[None]],
    *,
    name: str,
    depth: int,
    retry_after_s: float = 1.0,
) -> OrderedPipeline:
    """`chat.inbound`'s pipeline: each batch decoded, its messages recorded in conversation order
    (`record`: `Intake.record_inbound`), the records that are not a message rejected (dead letters)."""
    order = ConversationOrder(record)

    def begin(records: Sequence[Record]) -> Awaitable[None]:
        decoded, undecodable = decode_chat_messages(records)
        return order.run(decoded, reject(undecodable))

    return OrderedPipeline(name, begin, depth=depth, retry_after_s=retry_after_s, on_rewind=order.forget)


def commands_worker(intake: Intake, dead_letters: DeadLetterWriter) -> PerKeyBatches[CommandEnvelope]:
    """`ticket.commands`' worker: each envelope decoded and applied; `CommandRejected` is a dead letter,
    and so is a command no service applies from the topic (routing applies its own share of the rest)."""

    async def on_command(envelope: CommandEnvelope, record: Record) -> None:
        if not isinstance(envelope.command, OPERATOR_COMMANDS):
            name = type(envelope.command).__name__
            detail = f"{name} is decided by the services themselves, never applied from {record.topic}"
            await dead_letters.send(record, NOT_AN_OPERATOR_COMMAND, detail, command_id=str(envelope.command_id))
            return
        await intake.apply_command(envelope)

    return PerKeyBatches(COMMANDS_CONSUMER, decode_command, on_command, dead_letters,
                         bad_input=(CommandRejected,))  # fmt: skip


def decode_command(value: bytes) -> CommandEnvelope:
    """A command no bigger than `MAX_INPUT_RECORD_BYTES` (the event it causes must fit in a record)."""
    if len(value) > MAX_INPUT_RECORD_BYTES:
        raise msgspec.ValidationError(_too_large(value))
    return command_envelope_decoder.decode(value)


def _too_large(value: bytes) -> str:
    return f"a record of {len(value)} bytes exceeds the {MAX_INPUT_RECORD_BYTES}-byte limit of an input record"


def decode_chat_messages(records: Sequence[Record]) -> tuple[list[Inbound], list[tuple[Record, str]]]:
    """Decoded messages, and the records that are not one (with why). A NUL in a string is looked for
    only when the JSON holds one (the hot path skips it): in free text it becomes U+FFFD, in an
    identifier the record is malformed (docs/intake.md "NUL characters")."""
    decoded: list[Inbound] = []
    undecodable: list[tuple[Record, str]] = []
    for record in records:
        value = record.value or b""
        if len(value) > MAX_INPUT_RECORD_BYTES:
            undecodable.append((record, _too_large(value)))
            continue
        try:
            message = chat_message_decoder.decode(value)
            if has_escaped_nul(value):
                message = normalise_chat_message(message)
        except (msgspec.DecodeError, msgspec.ValidationError, MalformedIdentifier) as exc:
            undecodable.append((record, str(exc)))
            continue
        decoded.append((record, message))
    return decoded, undecodable
