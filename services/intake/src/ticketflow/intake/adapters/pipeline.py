"""`chat.inbound` batches in flight together, offsets committed strictly in order.

The subscriber hands each fetched batch to `InboundPipeline.handle`, which returns as soon as the batch
is admitted (at most `depth` batches in flight), so the next batch is fetched and decoded while earlier
ones are still being recorded:

- **Per-conversation order.** A batch is split into units: the messages of conversations that no unit in
  flight holds start at once; the messages of a conversation held by an earlier unit wait for every unit
  they depend on (a conversation with a batch in flight keeps its next messages queued behind it). Two
  units in flight never share a conversation.
- **Offsets.** A batch commits its offsets (last + 1 per partition) only after all its units are stored
  and the batch before it has committed: the committed offset never passes a message that is not durably
  stored, whatever finishes first.
- **Failure** (store outage, dead-letter publish failing, a bug): the batch and every later one are not
  committed; units that depend on a failed one are not run. Once every batch in flight has settled, each
  partition is sought back to its earliest uncommitted offset and nothing is admitted meanwhile; a batch
  that was fetched before the seek is recognised by the consumer's position (not beyond its first
  offset) and dropped: it comes again from the seek. Redelivered messages already stored are no-ops
  (idempotency keys).
- **Stop**: `drain` refuses new batches and waits for those in flight (their offsets are committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from ticketflow.contracts.chat import ChatMessage
from ticketflow.intake.domain import conversation_key

log = logging.getLogger("ticketflow.intake")
RETRY_AFTER_S = 1.0
Good = tuple[Any, ChatMessage]  # (Kafka record, its decoded message)


class Consumer(Protocol):
    """What the pipeline needs of an `AIOKafkaConsumer`."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    async def position(self, partition: TopicPartition) -> int: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class Work(Protocol):
    """The consumer's steps (handlers.InboundConsumer)."""

    def split(self, records: Sequence[Any]) -> tuple[list[Good], list[tuple[Any, str, str]]]: ...

    async def dead_letter_all(self, bad: list[tuple[Any, str, str]]) -> None: ...

    async def record(self, good: list[Good]) -> None: ...


class _Unit:
    __slots__ = ("conversations", "deps", "done", "items")

    def __init__(self, items: list[Good], conversations: list[str], deps: frozenset[_Unit]) -> None:
        self.items = items
        self.conversations = conversations  # distinct conversation keys of `items`
        self.deps = deps
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


@dataclass
class _Batch:
    first: dict[TopicPartition, int]  # where to seek back to if this batch is not committed
    offsets: dict[TopicPartition, int]  # what to commit: last offset + 1 per partition
    previous: asyncio.Future[None] | None
    committed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class InboundPipeline:
    def __init__(self, work: Work, depth: int = 2, *, retry_after_s: float = RETRY_AFTER_S) -> None:
        self.work = work
        self.depth = max(1, depth)
        self.retry_after_s = retry_after_s
        self._holders: dict[str, _Unit] = {}  # conversation -> the last unit in flight holding it
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: list[_Batch] = []  # in flight, in fetch order
        self._last_committed: asyncio.Future[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._consumer: Consumer | None = None
        self._stopping = False
        self._epoch = 0  # bumped by every seek back

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def handle(self, records: Sequence[Any], consumer: Consumer) -> None:
        """Admit one fetched batch (waits while `depth` batches are in flight or a recovery runs)."""
        self._consumer = consumer
        while True:
            if self._stopping:
                return  # neither recorded nor committed: delivered again to whoever consumes next
            if self._recovery is not None:
                await asyncio.wait([self._recovery])  # never raises; the recovery logs its own failure
                continue
            if len(self._tasks) >= self.depth:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                continue
            epoch = self._epoch
            records = await self._not_sought_past(records, consumer)
            if epoch == self._epoch and self._recovery is None and not self._stopping:
                break
        if records:
            self._admit(records, consumer)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Stop admitting; wait (bounded) for the batches in flight to be recorded and committed."""
        self._stopping = True
        pending: set[asyncio.Future[Any]] = set(self._tasks)
        if self._recovery is not None:
            pending.add(self._recovery)
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _not_sought_past(self, records: Sequence[Any], consumer: Consumer) -> Sequence[Any]:
        """Drop the records of a partition the consumer was sought back on (or lost) after they were fetched:
        its position is then at or before them, and they will be fetched again."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in first:
                first[tp] = record.offset
        stale: set[TopicPartition] = set()
        for tp, offset in first.items():
            try:
                if await consumer.position(tp) <= offset:
                    stale.add(tp)
            except IllegalStateError:  # no longer assigned to this consumer
                stale.add(tp)
        if not stale:
            return records
        return [r for r in records if TopicPartition(r.topic, r.partition) not in stale]

    def _admit(self, records: Sequence[Any], consumer: Consumer) -> None:
        first: dict[TopicPartition, int] = {}
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first.setdefault(tp, record.offset)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        good, bad = self.work.split(records)
        # One unit for the conversations nobody holds, one per distinct set of units waited on.
        holders = self._holders
        groups: dict[frozenset[_Unit], tuple[list[Good], list[str]]] = {}
        deps_of: dict[str, tuple[list[Good], list[str]]] = {}  # conversation -> its group
        for item in good:
            ckey = conversation_key(item[1])
            group = deps_of.get(ckey)
            if group is None:
                holder = holders.get(ckey)
                deps = frozenset((holder,)) if holder is not None else frozenset()
                group = groups.get(deps)
                if group is None:
                    group = groups[deps] = ([], [])
                group[1].append(ckey)
                deps_of[ckey] = group
            group[0].append(item)
        units = [_Unit(items, ckeys, deps) for deps, (items, ckeys) in groups.items()]
        for unit in units:
            for ckey in unit.conversations:
                holders[ckey] = unit
        batch = _Batch(first, offsets, self._last_committed)
        self._last_committed = batch.committed
        self._batches.append(batch)
        task = asyncio.create_task(self._run(batch, units, bad, consumer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: _Batch, units: list[_Unit], bad: list[tuple[Any, str, str]], consumer: Consumer
    ) -> None:
        try:
            jobs: list[Awaitable[None]] = [self._run_unit(u) for u in units]
            if bad:
                jobs.append(self.work.dead_letter_all(bad))
            outcomes = await asyncio.gather(*jobs, return_exceptions=True)
            failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failure is not None:
                raise failure
            if batch.previous is not None:
                await batch.previous  # raises if an earlier batch was not committed
            await self._commit(consumer, batch.offsets)
            batch.committed.set_result(None)
            self._batches.remove(batch)
        except BaseException as exc:
            if not batch.committed.done():
                batch.committed.set_exception(_NotCommitted(repr(exc)))
                batch.committed.exception()  # retrieved: a later batch may never await it
            if isinstance(exc, _NotCommitted):
                return  # an earlier batch failed: its recovery covers this one
            log.warning("chat.inbound batch not recorded, will be redelivered: %r", exc)
            if self._recovery is None and not self._stopping:
                self._recovery = asyncio.create_task(self._recover(consumer))
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _run_unit(self, unit: _Unit) -> None:
        try:
            for dep in unit.deps:
                await dep.done  # raises if it failed: this unit's messages must not overtake it
            await self.work.record(unit.items)
            unit.done.set_result(None)
        except BaseException as exc:
            unit.done.set_exception(_NotCommitted(f"an earlier unit failed: {exc!r}"))
            unit.done.exception()
            raise
        finally:
            holders = self._holders
            for ckey in unit.conversations:
                if holders.get(ckey) is unit:
                    del holders[ckey]

    async def _commit(self, consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (KafkaError, IllegalStateError) as exc:
            # Stored but not committed (a rebalance, the coordinator away): delivered again later, a no-op then.
            # A later commit covers these offsets too.
            log.warning("chat.inbound offsets not committed (the records are stored): %r", exc)

    async def _recover(self, consumer: Consumer) -> None:
        try:
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            earliest: dict[TopicPartition, int] = {}
            for batch in self._batches:
                for tp, offset in batch.first.items():
                    earliest[tp] = min(offset, earliest.get(tp, offset))
            self._batches.clear()
            self._last_committed = None
            self._holders.clear()
            for tp, offset in earliest.items():
                with contextlib.suppress(IllegalStateError):  # no longer ours: the next owner starts at the commit
                    consumer.seek(tp, offset)
            self._epoch += 1
            await asyncio.sleep(self.retry_after_s)
        finally:
            self._recovery = None


class _NotCommitted(Exception):
    """A batch, or a unit, that did not run because one before it failed."""
