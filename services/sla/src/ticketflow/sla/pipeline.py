"""The append pipeline: decided SLA events go to the store in large ordered batches (group commit).

The engine decides, keeps the new state in memory and arms its timers at once; the events join
this queue. One flush is in flight at a time; everything decided while it runs (polls, firing
batches) is merged into the next flush, one `append_many` per chunk of streams (the writer splits
a large flush over several connections). So the batch grows with the store's latency instead of
the consumer waiting for each round trip.

What makes arming before the append safe:
- order: flushes run one after another and a ticket's events stay in decision order inside a
  flush, so each `sla-<ticket>` stream receives exactly what a synchronous writer would append;
- nothing leaves the process before it is stored: SLA events reach Kafka only through the store's
  outbox, and a timer firing on a state not yet stored only adds more events behind it in this
  queue (its id is deterministic: a replay appends nothing twice);
- durability is decided by the checkpoint, not by arming: `drain()` waits until every queued event
  is stored, and a checkpoint (states + next offset) is written only after a drain, under the
  engine's lock; a crash loses only decisions after the last checkpoint, which the next owner
  replays from that checkpoint's offset with the same ids;
- a failed flush poisons the queue: `drain()` and `put` raise, the consumer stops and restarts
  from its checkpoint with a fresh engine (nothing half-kept is ever checkpointed).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.domain import Emitted, TicketSla
from ticketflow.sla.writer import SlaWriter

log = logging.getLogger(__name__)
MAX_QUEUED_EVENTS = 20_000  # backpressure: `room()` waits while more than this are not yet flushed


@dataclass(slots=True)
class Entry:
    """A ticket's events waiting for one flush: appended after `expected` on its SLA stream."""

    partition: int
    expected: int  # SLA stream head before these events
    events: list[Emitted]
    state: TicketSla  # the decided state after them (its sla_version = expected + len(events))


@dataclass
class Flush:
    entries: dict[uuid.UUID, Entry] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when stored (or the queue failed)
    events: int = 0
    firings: int = 0
    fetched: list[float] = field(default_factory=list)  # perf_counter() when each poll was fetched


Written = Callable[[dict[uuid.UUID, Entry], dict[uuid.UUID, TicketSla]], None]


class AppendQueue:
    def __init__(self, writer: SlaWriter, on_written: Written) -> None:
        self.writer = writer
        self.on_written = on_written
        self.queued = Flush()
        self.failed: BaseException | None = None
        self.flushes = 0
        self.fired = 0  # warnings + breaches stored
        self.durable_latency_ms: list[float] = []  # per poll: fetched -> its SLA events stored
        self.throttled_s = 0.0  # time callers waited in `room()` (the store could not keep up)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._flushing: Flush | None = None

    def add(self, partition: int, ticket: uuid.UUID, before: int, events: list[Emitted], state: TicketSla) -> TicketSla:
        """Queue a ticket's decided events (synchronous: called under the engine's lock, in decision
        order). Returns the state with its optimistic SLA stream head."""
        self._check()
        state = replace(state, sla_version=before + len(events))
        entry = self.queued.entries.get(ticket)
        if entry is None:
            self.queued.entries[ticket] = Entry(partition, before, list(events), state)
        else:
            entry.events.extend(events)
            entry.state = state
        self.queued.events += len(events)
        self.queued.firings += sum(isinstance(e.event, sla.SlaWarning | sla.SlaBreached) for e in events)
        self._kick()
        return state

    def mark(self, fetched: float) -> None:
        """A poll whose events (possibly none) were queued: its durable latency ends with the flush."""
        self.queued.fetched.append(fetched)
        self._kick()

    async def room(self) -> None:
        """Backpressure for the consumer: wait while too much is queued."""
        if self.queued.events > MAX_QUEUED_EVENTS:
            began = time.perf_counter()
            while self.queued.events > MAX_QUEUED_EVENTS and self.failed is None:
                self._room.clear()
                await self._room.wait()
            self.throttled_s += time.perf_counter() - began
        self._check()

    def barrier(self) -> asyncio.Event | None:
        """An event set once everything queued so far is stored (None: nothing is outstanding).
        Flushes run in order, so the one now being filled completing means all before it did."""
        if self.queued.entries or self.queued.fetched:
            self._kick()
            return self.queued.done
        return self._flushing.done if self._flushing is not None else None

    async def wait(self, barrier: asyncio.Event | None) -> None:
        """Wait for a `barrier()`; raises if a flush failed."""
        if barrier is not None:
            await barrier.wait()
        self._check()

    async def drain(self) -> None:
        """Wait until everything queued so far is stored; raises if a flush failed."""
        while not (self._idle.is_set() and not self.queued.entries and not self.queued.fetched):
            self._check()
            self._kick()
            await self._idle.wait()
            await asyncio.sleep(0)
        self._check()

    def pending(self) -> int:
        return self.queued.events

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _check(self) -> None:
        if self.failed is not None:
            raise RuntimeError("an SLA append failed; the engine must restart from its checkpoint") from self.failed

    def _kick(self) -> None:
        if (self._task is None or self._task.done()) and self.failed is None:
            self._task = asyncio.create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while self.failed is None:
            if not self.queued.entries and not self.queued.fetched:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._idle.clear()
            flush, self.queued = self.queued, Flush()
            self._flushing = flush
            self._room.set()
            try:
                await self._flush(flush)
            except BaseException as error:
                log.exception("appending %d SLA events failed", flush.events)
                self.failed = error
                self._idle.set()
                self._room.set()
                flush.done.set()
                self.queued.done.set()
                if isinstance(error, asyncio.CancelledError):
                    raise
                return
            finally:
                self._flushing = None
            flush.done.set()

    async def _flush(self, flush: Flush) -> None:
        entries = flush.entries
        if entries:
            expected = {t: replace(e.state, sla_version=e.expected) for t, e in entries.items()}
            written = await self.writer.write(expected, {t: e.events for t, e in entries.items()})
            self.on_written(entries, written)
        done = time.perf_counter()
        self.durable_latency_ms.extend((done - fetched) * 1000 for fetched in flush.fetched)
        self.fired += flush.firings
        self.flushes += 1
