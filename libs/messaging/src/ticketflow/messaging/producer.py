"""The one way this project makes a Kafka producer: idempotent (no duplicates from the producer's own
retries, order kept per partition) and `acks=all` (a write is acknowledged once every in-sync replica
has it). Callers tune batching (`linger_ms`) and name themselves (`client_id`); `security` is the
client's authentication and encryption (`messaging.security`, from the settings)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity


def make_producer(bootstrap: str, security: KafkaSecurity = PLAINTEXT, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        **security.client_options(),
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
