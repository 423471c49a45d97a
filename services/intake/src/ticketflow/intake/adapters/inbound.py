"""Making an accepted message durable before the webhook answers 202.

`KafkaAcceptor` (the default) publishes the normalised message to `chat.inbound` with acks=all and the
idempotent producer, keyed by conversation (so one conversation stays on one partition, in order); the
answer goes out only after the broker acknowledged the write. The `chat.inbound` consumer then records
it in PostgreSQL. `StoreAcceptor` records straight into PostgreSQL before answering (no Kafka in the
webhook path; slower per request). The same producer writes dead letters.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.topics import CHAT_INBOUND
from ticketflow.eventstore.outbox import make_producer
from ticketflow.eventstore.partitioning import RememberingPartitioner
from ticketflow.intake.adapters.store import IntakeStore
from ticketflow.intake.domain import conversation_key

_encoder = msgspec.json.Encoder()


class Acceptor(Protocol):
    async def accept(self, message: ChatMessage) -> None: ...


class InboundProducer:
    def __init__(self, bootstrap: str, topic: str = CHAT_INBOUND) -> None:
        self.topic = topic
        self.dead_letter_topic = f"{topic}.dlq"
        self._producer = make_producer(
            bootstrap,
            linger_ms=1,  # under load batches fill while one is in flight; idle, a request waits 1 ms, not 5
            partitioner=RememberingPartitioner(),
            request_timeout_ms=10_000,
            client_id="ticketflow-intake",
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, message: ChatMessage) -> None:
        await self._producer.send_and_wait(self.topic, _encoder.encode(message), key=conversation_key(message).encode())

    async def dead_letter(
        self, value: bytes | None, key: bytes | None, reason: str, detail: str, source: tuple[str, int, int]
    ) -> None:
        topic, partition, offset = source
        headers = [
            ("x-dlq-reason", reason.encode()),
            ("x-dlq-detail", detail[:2000].encode()),
            ("x-original-topic", topic.encode()),
            ("x-original-partition", str(partition).encode()),
            ("x-original-offset", str(offset).encode()),
        ]
        await self._producer.send_and_wait(self.dead_letter_topic, value or b"", key=key, headers=headers)


class KafkaAcceptor:
    def __init__(self, producer: InboundProducer) -> None:
        self.producer = producer

    async def accept(self, message: ChatMessage) -> None:
        await self.producer.publish(message)


class StoreAcceptor:
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    async def accept(self, message: ChatMessage) -> None:
        await self.store.record([message])
