"""The SLA application service (`SlaEngine`): per-partition ticket states, one timer wheel, decisions
written through the store. The one place that loads (checkpoints), decides (`domain.decide` for a
consumed record, `domain.advance` for a fired timer), keeps, arms and appends.

Ownership follows Kafka (the consumer, `consumer.py`, tells it): a partition's tickets (and so their
timers) live here while this instance owns the partition. `restore` takes the partition's checkpoint
(`assign`); the partition goes live (its timers are armed) once replay reaches the end offset seen at
assignment, so a timer never fires on state that records still in the log would have changed.
`release` checkpoints it, `revoke` cancels its timers and drops it.

One lock serialises "decide, keep, arm, queue": a consumed batch and a timer batch never interleave
on a ticket. The decided state is kept and its timers armed at once; its SLA events go to the store
through `adapters.append_queue.AppendQueue` in decision order, and a checkpoint is written only after
the queue stored everything decided before it, so what is checkpointed is always stored. A failed
append poisons the engine (`failed`): the consumer gives it up and starts again from the checkpoints
with a fresh one.

The machinery under it is benchmark-driven (`make bench-sla-service`, `make bench-sla-burst`,
`make bench-sla-restore`: tests/load/sla/): the timer wheel (`timers/`), the append queue and the
bulk writer (`adapters/`), the timers stored with the checkpoints and armed in one vectorised call
(`_arm_stored`), the GC settings of a large restore (`go_live`), and the timer payload:
key = partition << 32 | ticket slot, kind = target index, level = ladder index.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import msgspec
import numpy as np
from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.envelope import envelope_decoder
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla import metrics
from ticketflow.sla.adapters.append_queue import AppendQueue, Entry
from ticketflow.sla.adapters.checkpoints import (
    LEVEL_BITS,
    NO_TIMER,
    UNKNOWN,
    Checkpoint,
    PartitionCheckpoints,
    TimerArray,
    timer_row,
)
from ticketflow.sla.adapters.store_writer import SlaWriter
from ticketflow.sla.domain.decider import advance, decide
from ticketflow.sla.domain.firing import firings
from ticketflow.sla.domain.policies import TARGETS, Rules, RulesError
from ticketflow.sla.domain.recalculation import configuration_changed
from ticketflow.sla.domain.state import Decision, Emitted, TicketSla
from ticketflow.sla.partition import Partition
from ticketflow.sla.timers import Clock, FiredTimers, SystemClock, TimerLoop, TimerWheel

log = logging.getLogger(__name__)
TICKET_EVENT_TYPES: tuple[type, ...] = te.TicketEvent.__args__  # type: ignore[attr-defined]
SLA_EVENT_TYPES: tuple[type, ...] = sla.SlaEvent.__args__  # type: ignore[attr-defined]
TARGET_INDEX = {target: index for index, target in enumerate(TARGETS)}
SLOT_BITS = 32
SLOT_MASK = (1 << SLOT_BITS) - 1
ARM_CHUNK = 20_000
FIRE_CHUNK = 2_000  # tickets of a firing burst advanced between two yields to the append pipeline
FULL_GC_EVERY = 100  # middle-generation passes per full pass once the resident set is frozen
FREEZE_ABOVE = 10_000  # tickets in a restored partition worth moving out of the GC's sight
LATENCY_SAMPLES = 100_000  # poll latencies kept for the benchmarks: bounded, a service runs for months
Overlay = dict[uuid.UUID, TicketSla]
Pending = dict[uuid.UUID, list[Emitted]]


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one partition from one poll, in offset order."""

    partition: int
    offsets: Sequence[int]
    values: Sequence[bytes]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A consumed record that is wrong in itself (`batch.values[index]` of the batch of `partition`): the
    consumer dead-letters it with `reason` and `detail`."""

    partition: int
    index: int
    reason: str  # "undecodable", "rejected", "out of order" (applied anyway: a copy for the operators)
    detail: str


class Snapshot(NamedTuple):
    """What a partition's next checkpoint writes (`SlaEngine.snapshot_of`)."""

    next_offset: int
    changed: dict[uuid.UUID, TicketSla]  # states changed since the previous checkpoint
    removed: set[uuid.UUID]  # tickets pruned since
    configuration: str  # the `Rules.fingerprint` the kept states are consistent with
    timers: dict[uuid.UUID, bytes]  # the `timer_row` armed for each changed state (a live partition's)


@dataclass
class Stats:
    events: int = 0  # records decided
    fired: int = 0  # warnings and breaches decided on the timer path
    dead_letters: int = 0  # records rejected (the consumer dead-letters them)
    checkpoints: int = 0  # partition checkpoints written
    # per poll: fetched -> decided, timers armed (the latest LATENCY_SAMPLES polls; the benchmarks read it)
    armed_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))


class SlaEngine:
    def __init__(
        self,
        rules: Rules,
        writer: SlaWriter,
        clock: Clock | None = None,
        checkpoints: PartitionCheckpoints | None = None,
    ) -> None:
        """`checkpoints`: where partitions are restored from and checkpointed to (`restore`, `checkpoint`,
        `release`, `stop`); an engine without (tests, tools) is assigned states directly."""
        self.rules = rules
        self.writer = writer
        self.checkpoints = checkpoints
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.wheel = TimerWheel(1 << 16, now_ms=self.clock.now_ms())
        self.loop = TimerLoop(self.wheel, self.on_fire, self.clock)
        self.partitions: dict[int, Partition] = {}
        self.lock = asyncio.Lock()
        self.queue = AppendQueue(writer, self._written)
        self.arming = 0  # partitions whose timers are being armed right now
        self.stats = Stats()
        self._timers: asyncio.Task[None] | None = None
        metrics.TIMERS_LIVE.set_function(self.timers)  # the current engine's wheel (a fresh one replaces it)

    # -- the engine's term ------------------------------------------------------------------------

    def start(self) -> None:
        """Run the timer loop (until `stop`)."""
        if self._timers is None:
            self._timers = asyncio.create_task(self.loop.run())

    @property
    def failed(self) -> BaseException | None:
        """Why this engine cannot go on (an append failed, the timer loop died); None while it can. A
        failed engine is given up: a fresh one starts again from the checkpoints."""
        if self.queue.failed is not None:
            return self.queue.failed
        task = self._timers
        if task is not None and task.done() and not task.cancelled():
            return task.exception()
        return None

    async def stop(self, *, checkpoint: bool = True) -> None:
        """The end of the engine's term: stop firing, wait until everything decided is stored, checkpoint
        every partition (unless told not to), then drop them all and close the append queue (also when
        that fails: it raises after a failed append, and nothing is checkpointed past the store)."""
        self.loop.stop()
        if self._timers is not None:
            await asyncio.gather(self._timers, return_exceptions=True)
        try:
            await self.drain()
            if checkpoint:
                await self.checkpoint_all()
        finally:
            for number in list(self.partitions):
                self.revoke(number)
            await self.close()

    # -- ownership ------------------------------------------------------------------------------

    async def restore(self, number: int, beginning: int, end: int) -> int:
        """A partition assigned to this engine: its checkpoint's states (none: an empty partition read
        from `beginning`) replayed up to `end` before its timers are armed. Returns the offset to read
        from (records older than the log's retention are gone either way)."""
        return (await self.restore_many({number: (beginning, end)}))[number]

    async def restore_many(self, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """`restore` each partition of `ranges` (number -> (beginning, end)), in order; the next one's
        checkpoint is read and decoded while this one's timers are armed. Returns the offsets."""
        assert self.checkpoints is not None, "an engine without checkpoints is assigned states directly"
        numbers = list(ranges)
        offsets: dict[int, int] = {}
        loading = asyncio.ensure_future(self.checkpoints.load(numbers[0])) if numbers else None
        try:
            for index, number in enumerate(numbers):
                assert loading is not None
                saved = await loading
                loading = None
                if index + 1 < len(numbers):
                    loading = asyncio.ensure_future(self.checkpoints.load(numbers[index + 1]))
                beginning, end = ranges[number]
                if saved is None:
                    saved = Checkpoint(beginning, {}, "")
                offsets[number] = max(saved.next_offset, beginning)
                await self.assign(number, offsets[number], saved.tickets, end, saved.configuration, saved.timers)
        finally:
            if loading is not None:
                loading.cancel()
        return offsets

    async def release(self, number: int, *, checkpoint: bool = True) -> int | None:
        """A partition revoked from this engine: checkpoint it (unless told not to), then drop its states
        and timers (dropped also when the checkpoint fails: another instance owns it now). Returns the
        offset saved."""
        try:
            return await self.checkpoint(number) if checkpoint else None
        finally:
            async with self.lock:
                self.revoke(number)

    def replaying(self) -> list[int]:
        """Partitions still replaying towards the end offset seen at their assignment (timers not armed)."""
        return [number for number, part in self.partitions.items() if not part.live]

    async def caught_up(self, number: int, position: int) -> None:
        """The consumer's position in a replaying partition: at or past the end seen at assignment, the
        partition goes live (with nothing left to read, no record would have taken it there)."""
        part = self.partitions.get(number)
        if part is None or part.live or position < part.catch_up_to:
            return
        async with self.lock:
            if part.live or self.partitions.get(number) is not part:
                return
            part.next_offset = max(part.next_offset, position)
            await self.go_live(part)

    async def assign(
        self,
        number: int,
        next_offset: int,
        tickets: dict[uuid.UUID, TicketSla],
        catch_up_to: int,
        configuration: str = "",
        timers: TimerArray | None = None,
    ) -> None:
        """`configuration`: the `Rules.fingerprint` the checkpointed states were kept under ('' when
        unknown): another than the current one makes `go_live` recheck every ticket. `timers`: the
        checkpoint's stored timer row of each ticket, in the order of `tickets`."""
        async with self.lock:
            self.revoke(number)
            part = self.partitions[number] = Partition(number, tickets, next_offset, catch_up_to)
            part.configuration = configuration
            if timers is not None and len(timers) == len(tickets):
                part.restored = (list(tickets.values()), timers)
            log.info("partition %d assigned: %d tickets, replay %d..%d", number, len(tickets), next_offset, catch_up_to)
            if next_offset >= catch_up_to:
                await self.go_live(part)

    def revoke(self, number: int) -> None:
        part = self.partitions.pop(number, None)
        if part is not None:
            for handle, _, _ in part.armed.values():
                self.wheel.cancel(handle)
            log.info("partition %d revoked: %d timers dropped", number, len(part.armed))

    async def go_live(self, part: Partition) -> None:
        """Arm every timer of a caught-up partition (the caller holds the lock). A partition of a
        million tickets takes seconds: yield now and then so heartbeats keep the group membership."""
        part.live = True  # now, not after: a timer armed below may fire while this loop yields
        self.arming += 1
        try:
            now_s = self.clock.now_ms() // 1000
            current = self.rules.fingerprint()
            # Kept under another configuration: every ticket is compared with this one (about 1.5 µs
            # each); under the same one (a plain restart, a rebalance) the states are armed as they
            # are, with the timers the checkpoint stored for them where it did.
            recheck = part.configuration != current
            restored, part.restored = part.restored, None
            stored_rows: dict[uuid.UUID, bytes] = {}
            to_derive = list(part.tickets)
            if restored is not None and not recheck:
                to_derive = self._arm_stored(part, *restored)
            elif restored is not None:  # compared below: only timers that change are stored again
                states, rows = restored
                stored_rows = {s.ticket_id: r.tobytes() for s, r in zip(states, rows, strict=True)
                               if s.ticket_id not in part.replayed}  # fmt: skip
            part.replayed = set()
            for n, ticket in enumerate(to_derive, start=1):
                state = part.tickets.get(ticket)
                if state is None:  # read now: a firing may have moved it on while this loop yielded
                    continue
                if recheck and self._configuration_changed(ticket, state):
                    self._recheck(part, ticket, state, now_s)
                else:
                    self._sync(part, ticket, state)
                if self.timer_row(part, ticket) != stored_rows.get(ticket):
                    part.changed.add(ticket)  # the next checkpoint stores its timers
                    part.dirty = True
                if n % ARM_CHUNK == 0:
                    await asyncio.sleep(0)
            part.configuration = current  # every kept state is now consistent with it
        finally:
            self.arming -= 1
        if len(part.tickets) >= FREEZE_ABOVE:
            # The restored resident set (UUID keys, dicts, handle tuples) would otherwise be walked by
            # every full GC pass: 0.5 s per pass at a million tickets. It holds no reference cycles.
            gc.freeze()
            # Frozen objects do not count as long-lived, so CPython's "full pass only when a quarter
            # more objects survived" rule no longer holds it back: a full pass would come every 10
            # middle passes and walk the append backlog (55 passes, 7.5 of 20 CPU-s in the 5 M run).
            young, middle, full = gc.get_threshold()
            gc.set_threshold(young, middle, max(full, FULL_GC_EVERY))
        log.info("partition %d live at offset %d: %d timers armed", part.number, part.next_offset, len(part.armed))

    def _arm_stored(self, part: Partition, states: list[TicketSla], rows: TimerArray) -> list[uuid.UUID]:
        """Arm, in one vectorised wheel call, the stored timers of every restored state the replay left
        as it was (the caller holds the lock); returns the tickets left to `_sync`: rows without stored
        timers, and the tickets the replay decided. (A ticket id hashes in Python: each lookup by one
        costs, so states are taken by position here, and looked up only to build the slots.)"""
        replayed = part.replayed
        if replayed:
            kept = np.fromiter((s.ticket_id not in replayed for s in states), bool, len(states))
        else:
            kept = np.ones(len(states), bool)
        known = rows[:, 0] != UNKNOWN
        timed = np.flatnonzero(kept & known & (rows != NO_TIMER).any(axis=1))
        base = len(part.ids)  # slots base.. for the tickets with timers, in row order
        timed_ids = [states[i].ticket_id for i in timed.tolist()]
        part.ids.extend(timed_ids)
        part.slots.update(zip(timed_ids, range(base, base + len(timed_ids)), strict=True))
        row, kind = np.nonzero(rows[timed] != NO_TIMER)
        values = rows[timed][row, kind]
        due_s, levels = values >> LEVEL_BITS, values & ((1 << LEVEL_BITS) - 1)
        slots = row + base
        keys = (part.number << SLOT_BITS) | slots
        handles = self.wheel.schedule_many(keys, due_s * 1000, kind.astype(np.int8), levels.astype(np.int8))
        armed = zip(handles.tolist(), levels.tolist(), due_s.tolist(), strict=True)
        part.armed.update(zip(zip(slots.tolist(), kind.tolist(), strict=True), armed, strict=True))
        if len(values):
            self.loop.notify_scheduled(int(due_s.min()) * 1000)
        return [states[i].ticket_id for i in np.flatnonzero(kept & ~known).tolist()] + list(replayed)

    def timer_row(self, part: Partition, ticket: uuid.UUID) -> bytes:
        """The ticket's armed timers as a checkpoint stores them (`checkpoints.timer_row`)."""
        slot = part.slots.get(ticket)
        armed = [None if slot is None else part.armed.get((slot, index)) for index in TARGET_INDEX.values()]
        return timer_row([None if a is None else (a[1], a[2]) for a in armed])

    def _configuration_changed(self, ticket: uuid.UUID, state: TicketSla) -> bool:
        try:
            return configuration_changed(state, self.rules)
        except RulesError as error:  # its desk or track is gone from the configuration: `_sync` logs it
            log.debug("ticket %s: configuration not comparable: %s", ticket, error)
            return False

    def _recheck(self, part: Partition, ticket: uuid.UUID, state: TicketSla, now_s: int) -> None:
        """A state kept under an older desk configuration (calendar or targets): recalculate it now
        with the policy's rule (the timer path: `advance` also fires what is already due) before
        arming, so no timer is armed against a target or calendar that no longer applies."""
        decision = self._advance(part, ticket, state, now_s)
        if decision.rejected is not None:
            log.warning("ticket %s: not recalculated: %s", ticket, decision.rejected)

    def _advance(self, part: Partition, ticket: uuid.UUID, state: TicketSla, now_s: int) -> Decision:
        """The timer path for one kept state: fire what is due by `now_s` (and apply a configuration
        change), queue its events, keep the new state, re-arm its timers (the caller holds the lock)."""
        decision = advance(state, now_s, self.rules)
        if decision.state is not None and decision.emitted:
            state = self.queue.add(part.number, ticket, state.sla_version, decision.emitted, decision.state)
            part.tickets[ticket] = state
            part.changed.add(ticket)
            part.dirty = True
        self._sync(part, ticket, state, decision.timers)
        return decision

    # -- checkpoints ------------------------------------------------------------------------------

    async def checkpoint(self, number: int) -> int | None:
        """Take the partition's changes under the lock (a consistent cut: states and offset decided up
        to now), then wait, without the lock, until the store has every event queued before the cut,
        and only then write them: a checkpoint never runs ahead of the store, and consuming and firing
        go on meanwhile. Returns the offset checkpointed (None: nothing moved since the last one);
        raises if an append failed (the changes stay for the next attempt)."""
        assert self.checkpoints is not None, "an engine without checkpoints cannot checkpoint"
        async with self.lock:
            taken = self.snapshot_of(number)
            barrier = self.queue.barrier()
        if taken is None:
            return None
        try:
            await self.queue.wait(barrier)
            await self.checkpoints.save(number, *taken)
        except BaseException:
            self.unsnapshot(number, taken.changed, taken.removed)
            raise
        self.stats.checkpoints += 1
        return taken.next_offset

    async def checkpoint_all(self) -> dict[int, int]:
        """Checkpoint every partition that moved; returns the offsets checkpointed, by partition."""
        saved: dict[int, int] = {}
        for number in list(self.partitions):
            offset = await self.checkpoint(number)
            if offset is not None:
                saved[number] = offset
        return saved

    def snapshot_of(self, number: int) -> Snapshot | None:
        """What to checkpoint (the caller holds the lock): the states changed since the last call, with
        the timers armed for them once the partition is live, and the tickets pruned since; None when
        nothing moved. If writing it fails, `unsnapshot` puts the changes back for the next attempt."""
        part = self.partitions.get(number)
        if part is None or not part.dirty:
            return None
        changed = {t: part.tickets[t] for t in part.changed if t in part.tickets}
        timers = {t: self.timer_row(part, t) for t in changed} if part.live else {}
        removed = part.removed - changed.keys()
        part.dirty, part.changed, part.removed = False, set(), set()
        return Snapshot(part.next_offset, changed, removed, part.configuration, timers)

    def unsnapshot(self, number: int, changed: dict[uuid.UUID, TicketSla], removed: set[uuid.UUID]) -> None:
        part = self.partitions.get(number)
        if part is not None:
            part.dirty = True
            part.changed.update(t for t in changed if t not in part.removed)
            part.removed.update(t for t in removed if t not in part.tickets)

    # -- consumed records -------------------------------------------------------------------------

    async def handle(self, number: int, offsets: Sequence[int], values: Sequence[bytes]) -> list[Rejected]:
        """One partition's records, stored before returning (tests, tools)."""
        rejected = await self.handle_many([Batch(number, offsets, values)])
        await self.drain()
        return rejected

    async def handle_many(self, batches: Sequence[Batch]) -> list[Rejected]:
        """Decide one poll's records of every partition, keep the new states, arm their timers, and
        queue their SLA events for the store (`adapters.append_queue.AppendQueue`), then return the
        records wrong in themselves (for dead letters): the store's round trips overlap the next polls,
        and what is decided meanwhile joins the next append.

        Armed is not durable: a checkpoint (states + offset) is written only after the queue has
        stored every event decided before it, so a crash replays from an offset whose decisions are
        all stored. Raises once an append failed (`failed`)."""
        fetched = time.perf_counter()
        rejected: list[Rejected] = []
        async with self.lock:
            for batch in batches:
                part = self.partitions.get(batch.partition)
                if part is None:
                    continue  # revoked meanwhile: the new owner replays these records
                overlay: Overlay = {}
                pending: Pending = defaultdict(list)
                for index, value in enumerate(batch.values):
                    problem = self._apply(part, value, overlay, pending)
                    if problem is not None:
                        rejected.append(Rejected(batch.partition, index, *problem))
                self._keep(part, overlay, pending)
                part.next_offset = batch.offsets[-1] + 1
                part.dirty = True
                self.stats.events += len(batch.values)
                if not part.live and part.next_offset >= part.catch_up_to:
                    await self.go_live(part)
            self.queue.mark(fetched)
            self.stats.armed_latency_ms.append((time.perf_counter() - fetched) * 1000)
        await self.queue.room()
        self.stats.dead_letters += len(rejected)
        return rejected

    async def drain(self) -> None:
        """Wait until every decided event is in the store; raises if an append failed (`failed`)."""
        await self.queue.drain()

    def _keep(self, part: Partition, overlay: Overlay, pending: Pending) -> None:
        """Make decided states the partition's states, queue their events, re-arm what changed."""
        for ticket, state in overlay.items():
            old = part.tickets.get(ticket)
            events = pending.get(ticket)
            if events:  # appended after the head known before them
                state = self.queue.add(part.number, ticket, state.sla_version, events, state)
            if not part.live:
                part.replayed.add(ticket)
            if state.status == "closed":
                self._prune(part, ticket)
                continue
            part.tickets[ticket] = state
            part.changed.add(ticket)
            if part.live and (old is None or old.clocks is not state.clocks or old.policy_key != state.policy_key):
                self._sync(part, ticket, state)  # same clocks, same policy and calendar: same timers

    def _prune(self, part: Partition, ticket: uuid.UUID) -> None:
        """A finished ticket (closed, merged, refused: terminal in the lifecycle, nothing can resume
        its clocks) leaves memory, its timers and, with the next checkpoint, the checkpoint table.
        Its final SLA events are already queued for the store."""
        part.tickets.pop(ticket, None)
        part.changed.discard(ticket)
        part.removed.add(ticket)
        slot = part.slots.get(ticket)
        if slot is not None:
            for index in TARGET_INDEX.values():
                armed = part.armed.pop((slot, index), None)
                if armed is not None:
                    self.wheel.cancel(armed[0])
            part.release(ticket)

    def _written(self, entries: dict[uuid.UUID, Entry], written: dict[uuid.UUID, TicketSla]) -> None:
        """After a flush: where the store's head differs from the optimistic one (a stale head was
        repaired, firings found stored before a crash were absorbed), correct the kept state."""
        for ticket, entry in entries.items():
            stored = written.get(ticket)
            if stored is None or (
                stored.sla_version == entry.state.sla_version and stored.clocks is entry.state.clocks
            ):
                continue
            part = self.partitions.get(entry.partition)
            current = None if part is None else part.tickets.get(ticket)
            if part is None or current is None:
                continue
            if current is entry.state:
                current = stored  # nothing decided since: the repaired state is the state
            else:  # newer decisions are queued on the old head: their append repairs itself likewise
                current = replace(
                    current, sla_version=current.sla_version + stored.sla_version - entry.state.sla_version
                )
            part.tickets[ticket] = current
            part.changed.add(ticket)
            part.dirty = True
            if part.live:
                self._sync(part, ticket, current)
            else:
                part.replayed.add(ticket)

    def _apply(
        self,
        part: Partition,
        value: bytes,
        overlay: dict[uuid.UUID, TicketSla],
        pending: dict[uuid.UUID, list[Emitted]],
    ) -> tuple[str, str] | None:
        """Decide one record into the overlay; returns (reason, detail) for wrong input."""
        try:
            envelope = envelope_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return ("undecodable", str(error))
        if isinstance(envelope.event, SLA_EVENT_TYPES):
            event: Any = envelope.event  # our own output coming back: keep the stream head current
            state = self._current(part, overlay, event.ticket_id)
            if state is not None and envelope.stream_version > state.sla_version:
                overlay[event.ticket_id] = replace(state, sla_version=envelope.stream_version)
            return None
        if not isinstance(envelope.event, TICKET_EVENT_TYPES):
            return None
        lifecycle = cast(te.TicketEvent, envelope.event)
        ticket = lifecycle.ticket_id
        state = self._current(part, overlay, ticket)
        problem = None
        if state is not None:
            if envelope.stream_version <= state.version:
                return None  # a redelivery or a replayed record already applied
            if envelope.stream_version > state.version + 1:
                gap = f"ticket stream version {envelope.stream_version} after {state.version}"
                log.warning("ticket %s: out of order: %s (applied anyway)", ticket, gap)
                problem = ("out of order", f"{gap} (applied anyway)")
        decision: Decision = decide(
            lifecycle, state, int(envelope.occurred_at.timestamp()), envelope.event_id, self.rules
        )
        for note in decision.notes:
            log.info("ticket %s: %s", ticket, note)
        if decision.rejected is not None:
            log.warning("ticket %s: %s rejected: %s", ticket, type(lifecycle).__name__, decision.rejected)
            return ("rejected", decision.rejected)
        if decision.state is not None:
            overlay[ticket] = replace(decision.state, version=envelope.stream_version)
            pending[ticket].extend(decision.emitted)
            if decision.emitted:
                metrics.count(decision.emitted)
        return problem

    def _current(self, part: Partition, overlay: Overlay, ticket: uuid.UUID) -> TicketSla | None:
        """The latest decided state: this poll's, else the kept one."""
        return overlay.get(ticket) or part.tickets.get(ticket)

    # -- timers ---------------------------------------------------------------------------------

    async def on_fire(self, batch: FiredTimers) -> None:
        """Fire the due levels of the batch's tickets on their kept states and queue the warnings and
        breaches in one go (the store gets them in the next flush, in large multi-stream appends)."""
        async with self.lock:
            if self.queue.failed is not None:
                log.warning("an append failed; %d due timers wait for a fresh engine", len(batch))
                return
            now_ms = self.clock.now_ms()
            now_s = now_ms // 1000
            if len(batch):
                metrics.observe_lateness(now_ms, batch)
            # (partition << 32 | slot) keys, in firing order, once per ticket: int keys hash in C,
            # a (partition, UUID) tuple would call UUID.__hash__ (Python) for every firing.
            due: dict[int, None] = {}
            for key, kind in zip(batch.keys.tolist(), batch.kinds.tolist(), strict=True):
                part = self.partitions.get(key >> SLOT_BITS)
                if part is not None and part.live:
                    part.armed.pop((key & SLOT_MASK, kind), None)
                    due[key] = None
            for n, key in enumerate(due, start=1):
                part = self.partitions.get(key >> SLOT_BITS)
                if n % FIRE_CHUNK == 0:
                    await asyncio.sleep(0)  # the chunks already queued go to the store meanwhile
                if part is None or not part.live:
                    continue  # revoked (or revoked and assigned again) while this loop yielded
                ticket = part.ids[key & SLOT_MASK]
                if ticket is None:
                    continue  # pruned after this batch was taken from the wheel
                state = part.tickets.get(ticket)
                if state is not None:
                    emitted = self._advance(part, ticket, state, now_s).emitted
                    self.stats.fired += len(emitted)
                    metrics.count(emitted)
        await self.queue.room()

    def _sync(
        self,
        part: Partition,
        ticket: uuid.UUID,
        state: TicketSla,
        wanted: dict[SlaTarget, tuple[int, int]] | None = None,
        delay_ms: int = 0,
    ) -> None:
        """Make the wheel hold exactly the ticket's next firing per running clock (`wanted`: the
        state's `firings`, when the decision computed them already)."""
        if wanted is None:
            try:
                wanted = firings(state, self.rules)
            except RulesError as error:
                log.warning("ticket %s: no timers: %s", ticket, error)
                wanted = {}
        if not wanted and ticket not in part.slots:
            return
        slot = part.slot(ticket)
        earliest: int | None = None
        for target, index in TARGET_INDEX.items():
            armed = part.armed.get((slot, index))
            want = wanted.get(target)
            if armed is not None and (want is None or (armed[1], armed[2]) != want or delay_ms):
                self.wheel.cancel(armed[0])
                del part.armed[(slot, index)]
                armed = None
            if want is not None and armed is None:
                due_ms = max(want[1] * 1000, self.clock.now_ms() + delay_ms) if delay_ms else want[1] * 1000
                handle = self.wheel.schedule((part.number << SLOT_BITS) | slot, due_ms, index, want[0])
                part.armed[(slot, index)] = (handle, want[0], want[1])
                earliest = due_ms if earliest is None else min(earliest, due_ms)
        if earliest is not None:
            self.loop.notify_scheduled(earliest)

    async def close(self) -> None:
        """Stop the append pipeline's task (after `drain`, or when the engine is given up)."""
        await self.queue.close()

    def timers(self) -> int:
        return len(self.wheel)
