"""Operator commands (`ops.commands`) and their answers (`ops.events`): versioned JSON an SRE writes with
any Kafka client, Kafka's console producer included. Modelled on Debezium's Kafka signal channel: one
JSON object per record, an id chosen by the sender, a type, the type's data. JSON Schema:
docs/schemas/ops-command.schema.json.

    {"version": 1, "command_id": "pause-b24-0412", "actor": "sre:anna", "target": "intake",
     "command": {"type": "PauseIntake", "desk_id": "bitrix24-box"}}

`command_id` is the idempotency key: a service executes a command id once and answers it once (a
record sent twice, or read again after a restart, is not executed again). `target` is a service name,
or "*" for every service that executes the type. The record key is free (the console producer sends
none); the topic has one partition, so commands are executed in the order they were written."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

OPS_VERSION = 1
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# What each service is called on ops.commands (`target`) and in its answers.
SERVICES = ("intake", "preflight", "routing", "sla", "notifications", "projector")


class _OpsCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class PauseIntake(_OpsCommand, tag="PauseIntake", frozen=True):
    """Intake stops taking a desk's messages: webhooks answer 503 with Retry-After (the platforms send
    again), `chat.inbound` records of the desk wait. Kept in PostgreSQL: a restarted intake stays paused."""

    desk_id: Name


class ResumeIntake(_OpsCommand, tag="ResumeIntake", frozen=True):
    desk_id: Name


class RebuildProjection(_OpsCommand, tag="RebuildProjection", frozen=True):
    """The projector rebuilds a read model from the whole event store into copies of its tables and swaps
    them in (docs/queries.md, "Safe rebuilds")."""

    projection: Name = "tickets"


class RedriveDeadLetters(_OpsCommand, tag="RedriveDeadLetters", frozen=True):
    """Re-publish `<topic>.dlq` to `topic`: all of it, or the dead letters with this `reason`, or
    those dead-lettered at least `min_age_seconds` / at most `max_age_seconds` ago. A dead letter
    left out by a filter stays in the dead-letter topic (a later redrive may take it)."""

    topic: Name
    reason: str | None = None
    min_age_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_age_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100_000


class ReplayTicket(_OpsCommand, tag="ReplayTicket", frozen=True):
    """Queue every stored event of the ticket (ticket, SLA and notification events) for the relay again:
    they reach `ticket.events` once more, in order; consumers recognise their ids and do nothing new."""

    ticket_id: uuid.UUID


class SetLogLevel(_OpsCommand, tag="SetLogLevel", frozen=True):
    """Change the log level of every running instance of the target services (`logger`: one logger,
    e.g. "aiokafka"; empty: the root). Until the next restart, which reads TICKETFLOW_LOG_LEVEL again."""

    level: LogLevel
    logger: str = ""


class ReloadDeskConfig(_OpsCommand, tag="ReloadDeskConfig", frozen=True):
    """Every service that reads the desk files reads them again and validates them; a broken file is
    refused (the running configuration stays) with the problems as the reason. SLA applies the new
    configuration to running clocks by each policy's recalculation rule (docs/sla.md)."""


OpsCommand = (
    PauseIntake | ResumeIntake | RebuildProjection | RedriveDeadLetters | ReplayTicket | SetLogLevel | ReloadDeskConfig
)
OPS_COMMAND_TYPES: tuple[type[_OpsCommand], ...] = (
    PauseIntake, ResumeIntake, RebuildProjection, RedriveDeadLetters, ReplayTicket, SetLogLevel, ReloadDeskConfig
)  # fmt: skip


class OpsCommandEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A record of `ops.commands`."""

    version: Literal[1]
    command_id: Name
    actor: Name
    command: OpsCommand
    target: str = "*"
    issued_at: datetime | None = None


OpsStatus = Literal["accepted", "done", "rejected", "failed"]


class OpsEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A record of `ops.events`, keyed by command id: a service's answer to one command.

    - `accepted`: valid, and being executed (long commands: a rebuild, a redrive);
    - `done`: executed; `counts` says how much (records redriven, events replayed, desks loaded, ...),
      `reason` may add a note ("the dead-letter topic is empty");
    - `rejected`: not executed, `reason` says why (an unknown type, wrong fields, an unknown desk or
      topic, a broken desk file); nothing changed;
    - `failed`: began but could not finish, `reason` says why (what was done stays done).
    A record that is not a command at all is rejected once, by whichever service reads it first, with
    `command_id` taken from the record if it has one, else `<topic>:<partition>:<offset>`."""

    command_id: str
    service: str
    instance: str
    status: OpsStatus
    at: datetime
    command_type: str = ""
    reason: str = ""
    counts: dict[str, int] = {}
    version: Literal[1] = 1


ops_command_decoder = msgspec.json.Decoder(OpsCommandEnvelope)
ops_event_decoder = msgspec.json.Decoder(OpsEvent)
