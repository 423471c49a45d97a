"""Consuming `ticket.events` (pattern (c) of `ticketflow.messaging`: partition-owning consumers).

The SLA service owns its partitions: a partition's tickets and timers live in the engine of the
instance that owns it, restored from the partition's checkpoint when it is assigned (before its first
record) and checkpointed when it is revoked. `run_owned_partitions` runs the subscription in rounds, one
fresh engine per round (`SlaPartitions`, the owner); an engine that failed (an append, the timer loop)
ends its round, and the next starts again from the checkpoints. Kafka's committed offsets are written
after each checkpoint for lag monitoring only: the checkpoint table is where a new owner starts.

Each hook hands the app (`app.SlaEngine`) what the consumer knows and is done; records the app finds
wrong in themselves go to `ticket.events.dlq` through the one dead-letter writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from faststream.kafka import KafkaBroker

from ticketflow.messaging.dead_letters import DeadLetterWriter
from ticketflow.messaging.owned import PartitionControl, run_owned_partitions
from ticketflow.messaging.records import Record
from ticketflow.sla.app import Batch, SlaEngine

log = logging.getLogger(__name__)
# What the throughput rests on (`make bench-sla-service`): whole polls of at most 500 records into one
# decision pass (the per-poll p99 stayed near 100 ms where 5,000 gave 0.6 s), fetched in large requests.
CONSUMER_OPTIONS: dict[str, Any] = {
    "max_poll_records": 500,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
}
TICK_EVERY_S = 0.1  # idle go-live checks and checkpoints as often as the poll loop this replaced


class SlaPartitions:
    """One round's owner of the SLA service's partitions, on one engine (a `PartitionOwner`)."""

    def __init__(
        self, engine: SlaEngine, dead_letters: DeadLetterWriter, stop: asyncio.Event, *, checkpoint_every_s: float
    ) -> None:
        self.engine = engine
        self.dead_letters = dead_letters
        self.stop = stop  # set: one last checkpoint of everything while this instance is still in the group
        self.checkpoint_every_s = checkpoint_every_s
        self.failed: BaseException | None = None
        self.renew = False  # a desk configuration reload: end this round; the next engine has the new rules
        self._control: PartitionControl | None = None  # the latest: revocations commit through it
        self._checkpointed_at = time.monotonic()
        self._last_checkpoint_taken = False

    async def assigned(self, partitions: Sequence[int], control: PartitionControl) -> None:
        with self._failing("assigning partitions"):
            self.engine.start()  # the timer loop: from the first assignment to `stopped`
            self._control = control
            ends, starts = await control.end_offsets(partitions), await control.beginning_offsets(partitions)
            offsets = await self.engine.restore_many({number: (starts[number], ends[number]) for number in partitions})
            for number, offset in offsets.items():
                control.seek(number, offset)

    async def revoked(self, partitions: Sequence[int]) -> None:
        for number in partitions:  # each is dropped, saved or not (after a failure: unsaved, replayed by the next)
            with self._failing(f"releasing partition {number}"):
                await self._commit(number, await self.engine.release(number, checkpoint=self.failed is None))

    async def records(self, batches: Mapping[int, Sequence[Record]], control: PartitionControl) -> None:
        if self.failed is not None:
            return  # the round ends: a fresh engine reads these again from the checkpoints
        with self._failing("deciding a poll"):
            polled = [Batch(p, [r.offset for r in rs], [r.value or b"" for r in rs]) for p, rs in batches.items()]
            for wrong in await self.engine.handle_many(polled):
                await self.dead_letters.send(batches[wrong.partition][wrong.index], wrong.reason, wrong.detail)

    async def tick(self, control: PartitionControl) -> None:
        """After each poll and when idle: partitions caught up go live, checkpoints fall due."""
        if self.failed is not None:
            return
        with self._failing("ticking"):
            self._control = control
            if self.engine.failed is not None:
                raise RuntimeError("the SLA engine failed") from self.engine.failed
            for number in self.engine.replaying():
                await self.engine.caught_up(number, await control.position(number))
            last = self.stop.is_set() and not self._last_checkpoint_taken
            if last or time.monotonic() - self._checkpointed_at >= self.checkpoint_every_s:
                for number, offset in (await self.engine.checkpoint_all()).items():
                    await self._commit(number, offset)
                self._checkpointed_at, self._last_checkpoint_taken = time.monotonic(), self.stop.is_set()

    async def stopped(self) -> None:
        """The round ended (the service stops, or it failed): the engine stops firing, stores what it
        decided, checkpoints every partition (not after a failure: nothing past it is saved, the next
        engine reads it again) and drops them."""
        with self._failing("stopping"):
            await self.engine.stop(checkpoint=self.failed is None)

    async def _commit(self, number: int, offset: int | None) -> None:
        if offset is not None and self._control is not None:
            await self._control.commit(number, offset)  # lag monitoring only: never raises

    @contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        """A failure ends the round (a fresh engine starts from the checkpoints); nothing is raised into
        the consumer's rebalance listener or its idle loop."""
        try:
            yield
        except Exception as error:
            if self.failed is None:
                log.exception("sla: %s failed; restarting from the checkpoints with a fresh engine", doing)
            self.failed = self.failed or error


class SlaConsumer:
    """The subscription to `ticket.events`, in rounds of `SlaPartitions` (`current`: this round's)."""

    def __init__(
        self,
        broker: KafkaBroker,
        topic: str,
        make_engine: Callable[[], Awaitable[SlaEngine]],
        dead_letters: DeadLetterWriter,
        *,
        group_id: str = "sla",
        max_records: int = 500,
        checkpoint_every_s: float = 5.0,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.broker, self.topic, self.group_id, self.max_records = broker, topic, group_id, max_records
        self.make_engine = make_engine
        self.dead_letters = dead_letters
        self.checkpoint_every_s = checkpoint_every_s
        self.consumer_options = {**CONSUMER_OPTIONS, "max_poll_records": max_records, **(consumer_options or {})}
        self.current: SlaPartitions | None = None
        self.rounds = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`, a fresh engine per round."""

        async def owner() -> SlaPartitions:
            engine = await self.make_engine()
            self.rounds += 1
            self.current = SlaPartitions(engine, self.dead_letters, stop, checkpoint_every_s=self.checkpoint_every_s)
            return self.current

        await run_owned_partitions(self.broker, self.topic, self.group_id, owner, stop, max_records=self.max_records,
                                   tick_every_s=TICK_EVERY_S, **self.consumer_options)  # fmt: skip

    def renew(self) -> None:
        """End the current round cleanly (every partition checkpointed and released); the next round's
        engine, made by `make_engine` now, restores them and recalculates the clocks a configuration
        change moved (`SlaEngine.go_live`)."""
        if self.current is not None:
            self.current.renew = True
