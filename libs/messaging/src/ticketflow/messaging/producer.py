"""The one way this project makes a Kafka producer: idempotent (no duplicates from the producer's own
retries, order kept per partition) and `acks=all` (a write is acknowledged once every in-sync replica
has it). Callers tune batching (`linger_ms`) and name themselves (`client_id`); `security` is the
client's authentication and encryption (`messaging.security`, from the settings).

`RenewingProducer` is the same producer for a long-lived sender that answers each send (intake's
webhooks): aiokafka never resets an idempotent producer's state, so after a broker restart a partition
can refuse every later send with `OutOfOrderSequenceNumber` (the producer's sequence moved past a batch
the broker never wrote) until the process restarts. It replaces the producer on such an error and sends
once more on the new one (the Java client bumps its epoch instead; aiokafka 0.14 has no such reset)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)
# After these an idempotent producer sends nothing more to the partition (or at all): only a new one does.
PRODUCER_BROKEN = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
STOP_BROKEN_S = 10.0  # a replaced producer gets this long to close; it has nothing left worth waiting for


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


class Sender(Protocol):
    """What a dead-letter writer, an ops answer or a command sender needs of a producer: an aiokafka
    producer, or a `RenewingProducer` around one."""

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> Any: ...


class RenewingProducer:
    """An idempotent producer (from `make`, e.g. `lambda: make_producer(...)`) that a broken producer
    state does not stop: a send refused with one of `PRODUCER_BROKEN` is sent once more on a new
    producer (that record was not written: the broker refused its batch), and the send raises only if
    that fails too. Concurrent sends that fail together replace the producer once."""

    def __init__(self, make: Callable[[], AIOKafkaProducer]) -> None:
        self._make = make
        self._producer = make()
        self._renewing = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self.renewals = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def partitions_for(self, topic: str) -> set[int]:
        partitions: set[int] = await self._producer.partitions_for(topic)
        return partitions

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> Any:
        producer = self._producer
        try:
            return await producer.send_and_wait(topic, value, key=key, headers=headers)
        except PRODUCER_BROKEN as exc:
            await self._renew(producer, exc)
        return await self._producer.send_and_wait(topic, value, key=key, headers=headers)

    async def _renew(self, broken: AIOKafkaProducer, cause: BaseException) -> None:
        async with self._renewing:
            if self._producer is not broken:
                return  # another send replaced it already
            fresh = self._make()
            try:
                await fresh.start()  # raises while the broker is away: this send fails, a later one renews
            except BaseException:
                with contextlib.suppress(Exception):
                    await fresh.stop()
                raise
            self._producer = fresh
            self.renewals += 1
            log.warning("kafka producer state broken (%r): replaced by a new producer", cause)
        task = asyncio.create_task(self._close(broken))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(broken: AIOKafkaProducer) -> None:
        with contextlib.suppress(KafkaError, TimeoutError):  # closing may raise what broke it
            await asyncio.wait_for(broken.stop(), STOP_BROKEN_S)
