"""The application service in the test's own process: an `Intake` whose dead letters are kept by a
`RecordingProducer` (read back with `DeadLetter.of`, as the CLI does)."""

from __future__ import annotations

from typing import Any

import asyncpg
from support.records import FakeRecord, RecordingProducer

from ticketflow.contracts.commands import CommandEnvelope
from ticketflow.eventstore import EventStore, InMemoryEventStore
from ticketflow.eventstore.store import Store
from ticketflow.intake.adapters.desk_pauses import DeskPauses
from ticketflow.intake.adapters.intake_tables import IntakeTables
from ticketflow.intake.app import InboundTopic, Intake
from ticketflow.intake.consumer import COMMANDS_CONSUMER, INBOUND_CONSUMER, commands_worker
from ticketflow.intake.metrics import Metrics
from ticketflow.intake.tenants import GenericTenant, Tenants
from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter
from ticketflow.messaging.outages import Backoff
from ticketflow.messaging.per_key import PerKeyBatches

ACME = Tenants(generic={"acme": GenericTenant("acme", "ACME_KEY", desk="generic", track="default")})


def make_intake(
    *,
    pool: asyncpg.Pool | None = None,
    events: Store | None = None,
    tenants: Tenants = ACME,
    inbound: InboundTopic | None = None,
    lanes: int = 4,
    pauses: DeskPauses | None = None,
) -> tuple[Intake, RecordingProducer]:
    """With `pool`: the PostgreSQL store and intake's tables; without: agents' commands on `events` (an
    in-memory store by default) and webhooks on `inbound` only (the tables are never reached)."""
    producer = RecordingProducer()
    store: Store = events or (EventStore(pool) if pool is not None else InMemoryEventStore())
    tables = IntakeTables(pool, EventStore(pool))  # type: ignore[arg-type]  # pool None: not used then
    dead_letters = DeadLetterWriter(producer, INBOUND_CONSUMER)  # type: ignore[arg-type]
    intake = Intake(tenants, store, tables, Metrics(), inbound=inbound, dead_letters=dead_letters, lanes=lanes,
                    pauses=pauses)  # fmt: skip
    return intake, producer


def dead_letters_sent(producer: RecordingProducer) -> list[DeadLetter]:
    """What a `DeadLetterWriter` sent through `producer`, as the CLI reads it back."""
    return [DeadLetter.of(_as_record(n, sent)) for n, sent in enumerate(producer.sent)]


def _as_record(offset: int, sent: dict[str, Any]) -> FakeRecord:
    return FakeRecord(sent["topic"], 0, offset, sent["key"], sent["value"], headers=tuple(sent["headers"]))


def commands(intake: Intake, producer: RecordingProducer) -> PerKeyBatches[CommandEnvelope]:
    """`ticket.commands`' worker as the service builds it, its dead letters kept by `producer`."""
    worker = commands_worker(intake, DeadLetterWriter(producer, COMMANDS_CONSUMER))  # type: ignore[arg-type]
    worker.backoff = Backoff(first_s=0.001, cap_s=0.01)
    return worker
