"""Pattern (c), partition-owning consumers, on the real broker: an owner is told its partitions before
the first record and starts each where its own checkpoint says; it gets records grouped by partition and
ticks; an owner that fails is replaced by a fresh one that starts again from the checkpoints; on stop,
the owner finishes (`stopped`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from support.polling import eventually

from ticketflow.messaging.owned import PartitionControl, run_owned_partitions
from ticketflow.messaging.records import Record

pytestmark = [pytest.mark.kafka]


class Owner:
    def __init__(self, checkpoints: dict[int, int], fail_at: str | None = None) -> None:
        self.checkpoints = checkpoints  # partition -> next offset (shared by every owner: "the table")
        self.fail_at = fail_at
        self.failed: BaseException | None = None
        self.renew = False
        self.assigned_to: list[int] = []
        self.seen: list[tuple[int, int, str]] = []
        self.ticks = 0
        self.stopped_once = False

    async def assigned(self, partitions: Sequence[int], control: PartitionControl) -> None:
        starts = await control.beginning_offsets(partitions)
        for p in partitions:
            control.seek(p, max(self.checkpoints.get(p, 0), starts[p]))
        self.assigned_to += partitions

    async def revoked(self, partitions: Sequence[int]) -> None:
        self.assigned_to = [p for p in self.assigned_to if p not in partitions]

    async def records(self, batches: Mapping[int, Sequence[Record]], control: PartitionControl) -> None:
        for partition, records in batches.items():
            for r in records:
                value = (r.value or b"").decode()
                if value == self.fail_at:
                    raise RuntimeError(f"cannot go on at {value}")
                self.seen.append((partition, r.offset, value))
                self.checkpoints[partition] = r.offset + 1

    async def tick(self, control: PartitionControl) -> None:
        self.ticks += 1

    async def stopped(self) -> None:
        self.stopped_once = True


async def test_owners_start_at_their_checkpoints_and_a_failed_one_is_replaced(
    kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for partition in (0, 1):
        for n in range(4):
            await producer.send_and_wait(topic, f"p{partition}-{n}".encode(), partition=partition)
    await producer.stop()

    checkpoints = {0: 2}  # partition 0 was owned before, up to offset 2
    owners: list[Owner] = []

    async def make_owner() -> Owner:
        owners.append(Owner(checkpoints, fail_at="p1-2" if not owners else None))
        return owners[-1]

    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    stop = asyncio.Event()
    running = asyncio.create_task(
        run_owned_partitions(broker, topic, f"owned-{uuid.uuid4().hex[:8]}", make_owner, stop,  # type: ignore[arg-type]
                             tick_every_s=0.1, restart_after_s=0.1)
    )  # fmt: skip
    try:
        await eventually(lambda: len(owners) == 2 and {v for _, _, v in owners[1].seen} >= {"p1-2", "p1-3"},
                         "a fresh owner took over after the failure and read on")  # fmt: skip
        first, second = owners
        assert first.failed is not None and first.stopped_once
        partition_0 = [v for owner in owners for p, _, v in owner.seen if p == 0]
        assert partition_0 and partition_0[0] == "p0-2", "partition 0 did not start at its checkpoint"
        assert "p1-2" not in [v for _, _, v in first.seen]
        seen_again = [v for p, _, v in second.seen if p == 1]
        assert seen_again[0] == "p1-2", "the fresh owner restarts partition 1 where the checkpoint says"
        assert second.ticks > 0 and sorted(second.assigned_to) == [0, 1]
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await broker.stop()
    assert owners[-1].stopped_once
