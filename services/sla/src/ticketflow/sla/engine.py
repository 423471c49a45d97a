"""The SLA engine: per-partition ticket states, one timer wheel, decisions written through the store.

Ownership follows Kafka: a partition's tickets (and so their timers) live here while this instance
owns the partition. `assign` takes a checkpoint's states; the partition goes live (its timers are
armed) once replay reaches the end offset seen at assignment, so a timer never fires on state that
records still in the log would have changed. `revoke` cancels the partition's timers and drops it.

One lock serialises "decide, keep, arm, queue": a consumed batch and a timer batch never interleave
on a ticket. The decided state is kept and its timers armed at once; its SLA events go to the store
through `pipeline.AppendQueue` in decision order, and a checkpoint is taken only after the queue is
drained, so what is checkpointed is always stored. A failed append poisons the queue: the consumer
stops and restarts from its checkpoint with a fresh engine.

Timer payload: key = partition << 32 | ticket slot, kind = target index, level = ladder index.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import msgspec
from msgspec.structs import replace

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.envelope import envelope_decoder
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.domain import Decision, Emitted, TicketSla, advance, configuration_changed, decide, firings
from ticketflow.sla.partition import Batch, Partition, Stats
from ticketflow.sla.pipeline import AppendQueue, Entry
from ticketflow.sla.policies import TARGETS, Rules, RulesError
from ticketflow.sla.timers import Clock, FiredTimers, SystemClock, TimerLoop, TimerWheel
from ticketflow.sla.writer import SlaWriter

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
Overlay = dict[uuid.UUID, TicketSla]
Pending = dict[uuid.UUID, list[Emitted]]
DeadLetter = Callable[[bytes | None, bytes, str], Awaitable[None]]


class SlaEngine:
    def __init__(self, rules: Rules, writer: SlaWriter, dead_letter: DeadLetter, clock: Clock | None = None) -> None:
        self.rules = rules
        self.writer = writer
        self.dead_letter = dead_letter
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.wheel = TimerWheel(1 << 16, now_ms=self.clock.now_ms())
        self.loop = TimerLoop(self.wheel, self.on_fire, self.clock)
        self.partitions: dict[int, Partition] = {}
        self.lock = asyncio.Lock()
        self.queue = AppendQueue(writer, self._written)
        self.arming = 0  # partitions whose timers are being armed right now
        self.stats = Stats()

    # -- ownership ------------------------------------------------------------------------------

    async def assign(
        self,
        number: int,
        next_offset: int,
        tickets: dict[uuid.UUID, TicketSla],
        catch_up_to: int,
        configuration: str = "",
    ) -> None:
        """`configuration`: the `Rules.fingerprint` the checkpointed states were kept under ('' when
        unknown): another than the current one makes `go_live` recheck every ticket."""
        async with self.lock:
            self.revoke(number)
            part = self.partitions[number] = Partition(number, tickets, next_offset, catch_up_to)
            part.configuration = configuration
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
            # each); under the same one (a plain restart, a rebalance) the states are armed as they are.
            recheck = part.configuration != current
            for n, ticket in enumerate(list(part.tickets), start=1):
                state = part.tickets.get(ticket)
                if state is None:  # read now: a firing may have moved it on while this loop yielded
                    continue
                if recheck and self._configuration_changed(ticket, state):
                    self._recheck(part, ticket, state, now_s)
                else:
                    self._sync(part, ticket, state)
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

    def snapshot_of(self, number: int) -> tuple[int, dict[uuid.UUID, TicketSla], set[uuid.UUID], str] | None:
        """(next offset, states changed since the last call, tickets pruned since, the configuration
        the kept states are consistent with) to checkpoint; None when nothing moved. If writing it
        fails, `unsnapshot` puts the changes back for the next attempt."""
        part = self.partitions.get(number)
        if part is None or not part.dirty:
            return None
        changed = {t: part.tickets[t] for t in part.changed if t in part.tickets}
        removed = part.removed - changed.keys()
        part.dirty, part.changed, part.removed = False, set(), set()
        return part.next_offset, changed, removed, part.configuration

    def unsnapshot(self, number: int, changed: dict[uuid.UUID, TicketSla], removed: set[uuid.UUID]) -> None:
        part = self.partitions.get(number)
        if part is not None:
            part.dirty = True
            part.changed.update(t for t in changed if t not in part.removed)
            part.removed.update(t for t in removed if t not in part.tickets)

    # -- consumed records -------------------------------------------------------------------------

    async def handle(
        self, number: int, offsets: Sequence[int], keys: Sequence[bytes | None], values: Sequence[bytes]
    ) -> None:
        """One partition's records, committed before returning (tests, tools)."""
        await self.handle_many([Batch(number, offsets, keys, values)])
        await self.drain()

    async def handle_many(self, batches: Sequence[Batch]) -> None:
        """Decide one poll's records of every partition, keep the new states, arm their timers, and
        queue their SLA events for the store (`pipeline.AppendQueue`), then return: the store's
        round trips overlap the next polls, and what is decided meanwhile joins the next append.

        Armed is not durable: a checkpoint (states + offset) is written only after `drain()` has
        stored every queued event, so a crash replays from an offset whose decisions are all stored."""
        fetched = time.perf_counter()
        dead: list[tuple[bytes | None, bytes, str]] = []
        async with self.lock:
            for batch in batches:
                part = self.partitions.get(batch.partition)
                if part is None:
                    continue  # revoked meanwhile: the new owner replays these records
                overlay: Overlay = {}
                pending: Pending = defaultdict(list)
                for key, value in zip(batch.keys, batch.values, strict=True):
                    reason = self._apply(part, value, overlay, pending)
                    if reason is not None:
                        dead.append((key, value, reason))
                self._keep(part, overlay, pending)
                part.next_offset = batch.offsets[-1] + 1
                part.dirty = True
                self.stats.events += len(batch.values)
                if not part.live and part.next_offset >= part.catch_up_to:
                    await self.go_live(part)
            self.queue.mark(fetched)
            self.stats.armed_latency_ms.append((time.perf_counter() - fetched) * 1000)
        await self.queue.room()
        for key, value, reason in dead:
            self.stats.dead_letters += 1
            await self.dead_letter(key, value, reason)

    async def drain(self) -> None:
        """Wait until every decided event is in the store (before a checkpoint or a revocation);
        raises if an append failed (the consumer then restarts from its checkpoint)."""
        await self.queue.drain()

    def _keep(self, part: Partition, overlay: Overlay, pending: Pending) -> None:
        """Make decided states the partition's states, queue their events, re-arm what changed."""
        for ticket, state in overlay.items():
            old = part.tickets.get(ticket)
            events = pending.get(ticket)
            if events:  # appended after the head known before them
                state = self.queue.add(part.number, ticket, state.sla_version, events, state)
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

    def _apply(
        self,
        part: Partition,
        value: bytes,
        overlay: dict[uuid.UUID, TicketSla],
        pending: dict[uuid.UUID, list[Emitted]],
    ) -> str | None:
        """Decide one record into the overlay; returns a dead-letter reason for wrong input."""
        try:
            envelope = envelope_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return f"undecodable: {error}"
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
                problem = f"out of order: ticket stream version {envelope.stream_version} after {state.version}"
                log.warning("ticket %s: %s (applied anyway)", ticket, problem)
        decision: Decision = decide(
            state, lifecycle, int(envelope.occurred_at.timestamp()), envelope.event_id, self.rules
        )
        for note in decision.notes:
            log.info("ticket %s: %s", ticket, note)
        if decision.rejected is not None:
            log.warning("ticket %s: %s rejected: %s", ticket, type(lifecycle).__name__, decision.rejected)
            return decision.rejected
        if decision.state is not None:
            overlay[ticket] = replace(decision.state, version=envelope.stream_version)
            pending[ticket].extend(decision.emitted)
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
                log.warning("an append failed; %d due timers wait for the consumer's restart", len(batch))
                return
            now_s = self.clock.now_ms() // 1000
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
                    self.stats.fired += len(self._advance(part, ticket, state, now_s).emitted)
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
