"""Kafka wiring shared by services: the broker, topic creation, dead letters, bounded retries.

Delivery policy (design-notes: FastStream's defaults are at-most-once or poison-forever):
subscribers use a group id and AckPolicy.ACK, and handlers never let an exception escape:
a bad record goes to the topic's dead-letter topic with the cause in headers; a transient failure
is retried with backoff a bounded number of times, then dead-lettered with "retries exhausted"."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from ticketflow.contracts.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


def make_broker(bootstrap: str, service: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap,
        client_id=f"ticketflow-{service}",
        serializer=None,  # handlers decode with msgspec themselves (and dead-letter what fails)
        middlewares=(KafkaTelemetryMiddleware(),),
        enable_idempotence=True,
        acks="all",
    )


async def ensure_topics(bootstrap: str, topics: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create missing topics with their declared partitions and configs; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        created = []
        for spec in missing:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config())])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
        return created
    finally:
        await admin.close()


class DeadLetters:
    def __init__(self, broker: KafkaBroker, consumer: str) -> None:
        self.broker = broker
        self.consumer = consumer
        self.sent = 0
        self.failed = 0

    async def send(self, topic: str, key: bytes | None, value: bytes, reason: str, **context: str) -> bool:
        """Publish to `<topic>.dlq` with the cause in headers. Never raises: a handler calls this when
        a record cannot be processed, and if the broker is down as well, the loss is logged loudly
        and counted rather than crashing the consumer. Returns whether the dead letter was written."""
        headers = {"x-dead-letter-reason": reason[:2000], "x-consumer": self.consumer, "x-original-topic": topic}
        headers.update({f"x-{k.replace('_', '-')}": v for k, v in context.items()})
        try:
            await self.broker.publish(value, topic=f"{topic}.dlq", key=key, headers=headers)
        except Exception:
            self.failed += 1
            log.exception("could not dead-letter a record from %s (%s): the record is lost", topic, reason)
            return False
        self.sent += 1
        log.warning("dead-lettered a record from %s: %s", topic, reason)
        return True


async def with_retries(
    action: Callable[[], Awaitable[Any]],
    retryable: tuple[type[BaseException], ...],
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
) -> Any:
    """Run `action`, retrying transient failures with exponential backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return await action()
        except retryable:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")


def subscribe_raw_batches(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    handle: Callable[[Sequence[Any]], Awaitable[None]],
    *,
    max_records: int,
    batch_timeout_ms: int = 20,
) -> None:
    """Deliver batches of raw aiokafka records to `handle`, committed (AckPolicy.ACK) when it returns.
    The handler decodes with msgspec itself, so an undecodable record becomes a dead letter instead of
    a FastStream decoding error, and it must not raise (see the module docstring)."""

    async def raw(message: Any) -> Any:
        return message.body

    @broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        ack_policy=AckPolicy.ACK,
        auto_offset_reset="earliest",
        decoder=raw,
    )
    async def on_batch(body: Any, msg: KafkaMessage) -> None:
        await handle(msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,))
