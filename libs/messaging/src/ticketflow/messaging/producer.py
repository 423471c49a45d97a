"""The one way this project makes a Kafka producer: idempotent (no duplicates from the producer's own
retries, order kept per partition) and `acks=all` (a write is acknowledged once every in-sync replica
has it). Callers tune batching (`linger_ms`) and name themselves (`client_id`)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
