"""The append pipeline: decided SLA events go to the store in large ordered batches (group commit).

Benchmark-driven machinery behind a small interface (`add` under the engine's lock, `mark`, `room`,
`barrier`/`wait`, `drain`, `close`): it lets the engine keep deciding while the store's round trips run,
which is what the SLA figures rest on (`make bench-sla-service` and `make bench-sla-burst`:
tests/load/sla/bench_service.py and bench_fire_burst.py; their `--tune append_queue.MAX_IN_FLIGHT=3`
and the like compare its constants; docs/benchmarks.md, "SLA service").

The engine decides, keeps the new state in memory and arms its timers at once; the events join
this queue. Everything decided while a flush runs (polls, firing batches) is merged per stream into
the next one (the writer splits a flush into bulk-append chunks on several connections), so the
batch grows with the store's latency instead of the consumer waiting for each round trip. Up to
`MAX_IN_FLIGHT` flushes are in flight, on disjoint streams: a ticket whose events are being appended
keeps its newer events queued until that append is done.

What makes arming before the append safe:
- order: a stream is in at most one flush in flight, and a ticket's events stay in decision order
  inside a flush, so each `sla-<ticket>` stream receives exactly what a synchronous writer would
  append (the store's expected-version check would refuse anything else);
- nothing leaves the process before it is stored: SLA events reach Kafka only through the store's
  relay, and a timer firing on a state not yet stored only adds more events behind it in this
  queue (its id is deterministic: a replay appends nothing twice);
- durability is decided by the checkpoint, not by arming: a checkpoint (states + next offset) is
  cut under the engine's lock and written only after `wait(barrier())` saw every event queued
  before the cut stored; a crash loses only decisions after the last checkpoint, which the next
  owner replays from that checkpoint's offset with the same ids;
- a failed flush poisons the queue: `drain()`, `add` and `room` raise, and the partition owner
  restarts from the checkpoints with a fresh engine (nothing half-kept is ever checkpointed).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.domain.state import Emitted, TicketSla

log = logging.getLogger(__name__)
MAX_QUEUED_EVENTS = 20_000  # backpressure: `room()` waits while more than this are not yet flushed
MAX_IN_FLIGHT = 6  # flushes at once (on disjoint streams), each one transaction on its own connection
MAX_FLUSH_TICKETS = 1000  # tickets per flush: a burst streams to the store in modest transactions, not a huge last one
LATENCY_SAMPLES = 100_000  # latencies kept for the benchmarks: bounded, a service runs for months


@dataclass(slots=True)
class Entry:
    """A ticket's events waiting for one flush: appended after `expected` on its SLA stream."""

    partition: int
    expected: int  # SLA stream head before these events
    events: list[Emitted]
    state: TicketSla  # the decided state after them (its sla_version = expected + len(events))
    first: int  # sequence number of the first `add` in this entry (barriers compare with it)


@dataclass
class Flush:
    entries: dict[uuid.UUID, Entry] = field(default_factory=dict)
    events: int = 0
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
        # per poll: fetched -> its SLA events stored (the latest LATENCY_SAMPLES polls; the benchmarks read it)
        self.durable_latency_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.throttled_s = 0.0  # time callers waited in `room()` (the store could not keep up)
        self._seq = 0  # `add` calls so far
        self._flying: list[Flush] = []
        self._busy: set[uuid.UUID] = set()  # tickets of the flushes in flight
        self._progress = asyncio.Event()  # set (and replaced) whenever a flush ends or fails
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, partition: int, ticket: uuid.UUID, before: int, events: list[Emitted], state: TicketSla) -> TicketSla:
        """Queue a ticket's decided events (synchronous: called under the engine's lock, in decision
        order). Returns the state with its optimistic SLA stream head."""
        self._check()
        self._seq += 1
        state = replace(state, sla_version=before + len(events))
        entry = self.queued.entries.get(ticket)
        if entry is None:
            self.queued.entries[ticket] = Entry(partition, before, list(events), state, self._seq)
        else:
            entry.events.extend(events)
            entry.state = state
        self.queued.events += len(events)
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
                await self._next_progress()
            self.throttled_s += time.perf_counter() - began
        self._check()

    def barrier(self) -> int | None:
        """A cut: `wait(cut)` returns once every event queued so far is stored (None: nothing is
        outstanding)."""
        if self._oldest() is None:
            return None
        self._kick()
        return self._seq

    async def wait(self, cut: int | None) -> None:
        """Wait for a `barrier()`; raises if a flush failed."""
        while cut is not None and self.failed is None and (oldest := self._oldest()) is not None and oldest <= cut:
            await self._next_progress()
        self._check()

    async def drain(self) -> None:
        """Wait until everything queued so far is stored; raises if a flush failed."""
        while self.failed is None and (self.queued.entries or self.queued.fetched or self._flying):
            self._kick()
            await self._next_progress()
        self._check()

    def pending(self) -> int:
        return self.queued.events + sum(f.events for f in self._flying)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _oldest(self) -> int | None:
        """The sequence number of the oldest `add` not yet stored."""
        firsts = [e.first for f in (self.queued, *self._flying) for e in f.entries.values()]
        if self.queued.fetched and not firsts:
            return self._seq
        return min(firsts, default=None)

    async def _next_progress(self) -> None:
        await self._progress.wait()

    def _progressed(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _check(self) -> None:
        if self.failed is not None:
            raise RuntimeError("an SLA append failed; the engine must restart from its checkpoint") from self.failed

    def _kick(self) -> None:
        if (self._task is None or self._task.done()) and self.failed is None:
            self._task = asyncio.create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        flying: set[asyncio.Task[None]] = set()
        try:
            while self.failed is None:
                self._wake.clear()
                if len(self._flying) < MAX_IN_FLIGHT and (flush := self._take()) is not None:
                    task = asyncio.create_task(self._flush(flush))
                    flying.add(task)
                    task.add_done_callback(flying.discard)
                    continue
                await self._wake.wait()
        finally:
            for task in flying:
                task.cancel()

    def _take(self) -> Flush | None:
        """The queued entries whose streams are not being appended, as a flush (None: nothing to do)."""
        queued = self.queued
        if not queued.entries and not queued.fetched:
            return None
        # The oldest free tickets first (dicts keep insertion order), at most MAX_FLUSH_TICKETS; the
        # scan stops there: a burst queues tens of thousands, and each test hashes a UUID in Python.
        busy = self._busy
        candidates = (t for t in queued.entries if t not in busy) if busy else iter(queued.entries)
        free = list(islice(candidates, MAX_FLUSH_TICKETS))
        if not free and queued.entries:
            return None  # everything queued waits for a flush in flight
        if len(free) == len(queued.entries):
            flush, self.queued = queued, Flush()
        else:
            flush = Flush({t: queued.entries.pop(t) for t in free})
            flush.events = sum(len(e.events) for e in flush.entries.values())
            queued.events -= flush.events
        self._busy.update(flush.entries)
        self._flying.append(flush)
        self._progressed()  # room() waiters: the queue got shorter
        return flush

    async def _flush(self, flush: Flush) -> None:
        entries = flush.entries
        try:
            if entries:
                expected = {t: replace(e.state, sla_version=e.expected) for t, e in entries.items()}
                written = await self.writer.write(expected, {t: e.events for t, e in entries.items()})
                self.on_written(entries, written)
        except asyncio.CancelledError:
            self.failed = self.failed or RuntimeError("the append queue was closed with appends in flight")
            self._progressed()
            raise
        except Exception as error:
            if self.failed is None:
                log.exception("appending %d SLA events failed", flush.events)
                self.failed = error
            self._progressed()
            self._wake.set()
            return
        finally:
            self._flying.remove(flush)
            self._busy.difference_update(entries)
        done = time.perf_counter()
        self.durable_latency_ms.extend((done - fetched) * 1000 for fetched in flush.fetched)
        self.fired += sum(
            isinstance(e.event, sla.SlaWarning | sla.SlaBreached) for x in entries.values() for e in x.events
        )
        self.flushes += 1
        self._progressed()
        self._wake.set()
