"""How every consumption pattern subscribes: a FastStream batch subscriber that hands the raw aiokafka
records to its handler and never commits on its own.

FastStream's defaults are at-most-once (`ACK_FIRST`) or poison-forever (`NACK_ON_ERROR`), and its JSON
decoding is ten times slower than msgspec's: the patterns decode with msgspec themselves
(`decoder=_raw`), commit exactly the offsets whose effects are stored (`AckPolicy.MANUAL`), and seek
back (`msg.nack()`) when they are not. They read `read_committed`: the relay publishes in Kafka
transactions, and a batch a killed relay left open is aborted, never seen (`messaging.relay`). This
module is the one place that says so. It also remembers which groups this process consumes which topics
with (`SUBSCRIBED`), for the lag monitor (`lag.py`), and each broker's persistent subscribers
(`stopped_consumers`), for readiness."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

SUBSCRIBED: dict[str, set[str]] = {}  # consumer group -> topics, in this process
_PERSISTENT: weakref.WeakKeyDictionary[KafkaBroker, list[tuple[str, Any]]] = weakref.WeakKeyDictionary()


async def _raw(message: Any) -> Any:
    return message.body


def batch_subscriber(
    broker: KafkaBroker,
    topics: Sequence[str],
    *,
    group_id: str,
    max_records: int,
    batch_timeout_ms: int = 20,
    persistent: bool = True,
    **consumer_options: Any,
) -> Any:
    """A subscriber (use it as a decorator) with an explicit group, manual commits and raw records.
    `persistent=False`: not started with the broker; the caller starts and stops it (a leader's term)."""
    SUBSCRIBED.setdefault(group_id, set()).update(topics)
    subscriber = broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw,
        persistent=persistent,
        **consumer_options,
    )
    if persistent:
        _PERSISTENT.setdefault(broker, []).append((f"{group_id} on {', '.join(topics)}", subscriber))
    return subscriber


def stopped_consumers(broker: KafkaBroker) -> list[str]:
    """The broker's persistent subscribers whose consumption loop is not running (call once it started):
    FastStream restarts a loop that crashes, so one that is gone has stopped for good."""
    stopped = []
    for name, subscriber in _PERSISTENT.get(broker, []):
        tasks = getattr(subscriber, "tasks", [])
        if not subscriber.running or not any(not task.done() for task in tasks):
            stopped.append(name)
    return stopped


def records_of(msg: KafkaMessage) -> Sequence[ConsumerRecord[bytes, bytes]]:
    raw = msg.raw_message
    return raw if isinstance(raw, tuple) else (raw,)  # type: ignore[return-value]


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
