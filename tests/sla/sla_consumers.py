"""The SLA consumer as the service composes it (`main.build`), on test rules and a test topic, for the
real-broker tests and the kill -9 worker: a fresh engine per round, checkpoints in the test database,
dead letters kept by a recording producer."""

from __future__ import annotations

from typing import Any

import asyncpg
from faststream.kafka import KafkaBroker
from sla_builders import FakeRules
from support.records import RecordingProducer

from ticketflow.eventstore import EventStore
from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.sla.adapters.checkpoints import PartitionCheckpoints
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.app import SlaEngine
from ticketflow.sla.consumer import SlaConsumer

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def consumer_for(
    broker: KafkaBroker, pool: asyncpg.Pool, topic: str, rules: FakeRules, producer: Any = None
) -> SlaConsumer:
    """A group per test topic: groups span topics, a shared one would rebalance them all."""
    checkpoints = PartitionCheckpoints(pool, topic)

    async def engine() -> SlaEngine:
        return SlaEngine(rules, SlaWriter(EventStore(pool)), checkpoints=checkpoints)

    dead_letters = DeadLetterWriter(producer if producer is not None else RecordingProducer(), "sla")
    return SlaConsumer(broker, topic, engine, dead_letters, group_id=f"sla-{topic}", checkpoint_every_s=0.5,
                       consumer_options=FAST_GROUP)  # fmt: skip
