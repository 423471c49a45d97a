"""An experiment's writer, not a product path: the SLA engine's firings produced straight to Kafka
(envelopes encoded in the service, per-partition batches, acks=all), with no PostgreSQL append and
no outbox relay. `bench_fire_burst.py --sink kafka-only` uses it to measure what a "Kafka first"
firing path could give on this box: the figure the team needs to weigh against store-first
publishing (docs/benchmarks.md, "SLA service", session 4)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer

from ticketflow.contracts.envelope import EventEnvelope, EventMetadata, envelope_encoder
from ticketflow.contracts.events import event_type_name
from ticketflow.contracts.ids import sla_stream
from ticketflow.messaging.batches import PartitionBatches
from ticketflow.messaging.partitioning import partition_of
from ticketflow.messaging.relay import header_list
from ticketflow.sla.domain import Emitted, TicketSla, utc

NO_METADATA = EventMetadata()


class KafkaOnlyWriter:
    """`SlaWriter.write`'s contract (returns no stored states) with Kafka as the only sink. The
    envelope has no store position (none exists) and the stream version the service expects."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self.producer, self.topic, self.partitions = producer, topic, partitions
        self.appended = 0

    async def write(
        self, states: Mapping[uuid.UUID, TicketSla], pending: Mapping[uuid.UUID, list[Emitted]]
    ) -> dict[uuid.UUID, TicketSla]:
        batches = PartitionBatches(self.producer)
        for ticket, emitted in pending.items():
            key = str(ticket).encode()
            partition = partition_of(key, self.partitions)
            stream, version = sla_stream(ticket), states[ticket].sla_version
            for e in emitted:
                version += 1
                envelope = EventEnvelope(e.event_id, stream, version, utc(e.at), 1, e.event, NO_METADATA, None)
                headers = header_list(event_type_name(e.event), str(e.event_id), None, None)
                await batches.add(self.topic, partition, key, envelope_encoder.encode(envelope), headers)
                self.appended += 1
        await batches.send_all()
        return {}
