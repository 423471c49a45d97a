"""The SLA engine: per-partition ticket states, one timer wheel, decisions written through the store.

Ownership follows Kafka: a partition's tickets (and so their timers) live here while this instance
owns the partition. `assign` takes a checkpoint's states; the partition goes live (its timers are
armed) once replay reaches the end offset seen at assignment, so a timer never fires on state that
records still in the log would have changed. `revoke` cancels the partition's timers and drops it.

One lock serialises "decide, append, keep": a consumed batch and a timer batch never interleave on
a ticket, and a state is kept only after its SLA events are in the store (a failed append changes
nothing and is retried: the batch by the consumer, a firing by re-arming its timer a second later).

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
from ticketflow.sla.domain import Decision, Emitted, TicketSla, advance, decide, firings
from ticketflow.sla.partition import Batch, Partition, Stats
from ticketflow.sla.policies import TARGETS, Rules, RulesError
from ticketflow.sla.timers import Clock, FiredTimers, SystemClock, TimerLoop, TimerWheel
from ticketflow.sla.writer import SlaWriter

log = logging.getLogger(__name__)
TICKET_EVENT_TYPES: tuple[type, ...] = te.TicketEvent.__args__  # type: ignore[attr-defined]
SLA_EVENT_TYPES: tuple[type, ...] = sla.SlaEvent.__args__  # type: ignore[attr-defined]
TARGET_INDEX = {target: index for index, target in enumerate(TARGETS)}
SLOT_BITS = 32
RETRY_FIRING_MS = 1000
ARM_CHUNK = 20_000
FREEZE_ABOVE = 50_000  # tickets in a restored partition worth moving out of the GC's sight
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
        self.unwritten: Overlay = {}  # decided, appends in flight
        self.arming = 0  # partitions whose timers are being armed right now
        self._inflight: asyncio.Task[None] | None = None
        self.stats = Stats()

    # -- ownership ------------------------------------------------------------------------------

    async def assign(
        self, number: int, next_offset: int, tickets: dict[uuid.UUID, TicketSla], catch_up_to: int
    ) -> None:
        async with self.lock:
            self.revoke(number)
            part = self.partitions[number] = Partition(number, tickets, next_offset, catch_up_to)
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
            for n, ticket in enumerate(list(part.tickets), start=1):
                state = part.tickets.get(ticket)
                if state is not None:  # read now: a firing may have moved it on while this loop yielded
                    self._sync(part, ticket, state)
                if n % ARM_CHUNK == 0:
                    await asyncio.sleep(0)
        finally:
            self.arming -= 1
        if len(part.tickets) >= FREEZE_ABOVE:
            # The restored resident set (UUID keys, dicts, handle tuples) would otherwise be walked by
            # every full GC pass: 0.5 s per pass at a million tickets. It holds no reference cycles.
            gc.freeze()
        log.info("partition %d live at offset %d: %d timers armed", part.number, part.next_offset, len(part.armed))

    def snapshot_of(self, number: int) -> tuple[int, dict[uuid.UUID, TicketSla]] | None:
        """(next offset, states changed since the last call) to checkpoint; None when nothing moved.
        If writing it fails, `unsnapshot` puts the changes back for the next attempt."""
        part = self.partitions.get(number)
        if part is None or not part.dirty:
            return None
        changed = {t: part.tickets[t] for t in part.changed if t in part.tickets}
        part.dirty, part.changed = False, set()
        return part.next_offset, changed

    def unsnapshot(self, number: int, changed: dict[uuid.UUID, TicketSla]) -> None:
        part = self.partitions.get(number)
        if part is not None:
            part.dirty = True
            part.changed.update(changed)

    # -- consumed records -------------------------------------------------------------------------

    async def handle(
        self, number: int, offsets: Sequence[int], keys: Sequence[bytes | None], values: Sequence[bytes]
    ) -> None:
        """One partition's records, committed before returning (tests, tools)."""
        await self.handle_many([Batch(number, offsets, keys, values)])
        await self.drain()

    async def handle_many(self, batches: Sequence[Batch]) -> None:
        """Decide one poll's records of every partition, then hand their append and arming to a commit
        task and return: the next poll is decided while this one's events are being written.

        Commits run one after another in poll order (each awaits the previous), so the store sees
        SLA events in decision order. A state becomes a partition's state (and goes into checkpoints)
        only after its events are appended; until then the next decisions read it from `unwritten`."""
        fetched = time.perf_counter()
        dead: list[tuple[bytes | None, bytes, str]] = []
        async with self.lock:
            overlays: dict[int, Overlay] = {}
            pending: Pending = defaultdict(list)
            for batch in batches:
                part = self.partitions.get(batch.partition)
                if part is None:
                    continue  # revoked meanwhile: the new owner replays these records
                overlay = overlays.setdefault(batch.partition, {})
                for key, value in zip(batch.keys, batch.values, strict=True):
                    reason = self._apply(part, value, overlay, pending)
                    if reason is not None:
                        dead.append((key, value, reason))
                self.unwritten.update(overlay)
            previous = self._inflight
        if previous is not None:
            await previous  # at most one commit in flight; its failure surfaces here
        self._inflight = asyncio.create_task(self._commit(batches, overlays, pending, fetched))
        for key, value, reason in dead:
            self.stats.dead_letters += 1
            await self.dead_letter(key, value, reason)

    async def drain(self) -> None:
        """Wait for the commit in flight (before a checkpoint, a revocation, a firing batch)."""
        task = self._inflight
        if task is not None:
            await task

    async def _commit(
        self, batches: Sequence[Batch], overlays: dict[int, Overlay], pending: Pending, fetched: float
    ) -> None:
        decided = {ticket: state for overlay in overlays.values() for ticket, state in overlay.items()}
        states = {}
        for batch in batches:  # the previous commit moved these streams' heads: append after them
            part = self.partitions.get(batch.partition)
            for ticket in overlays.get(batch.partition, {}):
                state, kept = decided[ticket], None if part is None else part.tickets.get(ticket)
                if kept is not None and kept.sla_version > state.sla_version:
                    state = replace(state, sla_version=kept.sla_version)
                states[ticket] = state
        try:
            written = await self.writer.write(states, pending)
        except BaseException:
            self.unwritten.clear()  # decided on top of what is now unknown: the consumer restarts
            raise
        for batch in batches:
            part = self.partitions.get(batch.partition)
            if part is None or batch.partition not in overlays:
                continue
            overlay = {t: written.get(t, states[t]) for t in overlays[batch.partition]}
            before = {t: part.tickets.get(t) for t in overlay} if part.live else {}
            part.tickets.update(overlay)
            part.changed.update(overlay)
            for ticket in overlay:
                if self.unwritten.get(ticket) is decided[ticket]:
                    del self.unwritten[ticket]  # no newer decision waits on top of this one
            part.next_offset = batch.offsets[-1] + 1
            part.dirty = True
            self.stats.events += len(batch.values)
            if part.live:
                for ticket, state in overlay.items():
                    old = before[ticket]
                    if old is None or old.clocks is not state.clocks or old.priority != state.priority:
                        self._sync(part, ticket, state)  # same clocks, same policy: same timers
            elif part.next_offset >= part.catch_up_to:
                await self.go_live(part)
        self.stats.emitted += sum(len(e) for e in pending.values())
        self.stats.armed_latency_ms.append((time.perf_counter() - fetched) * 1000)

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
        """The latest decided state: this poll's, else a commit's still in flight, else the kept one."""
        return overlay.get(ticket) or self.unwritten.get(ticket) or part.tickets.get(ticket)

    # -- timers ---------------------------------------------------------------------------------

    async def on_fire(self, batch: FiredTimers) -> None:
        async with self.lock:
            try:
                await self.drain()  # firings append after the commit in flight, on the states it kept
            except Exception:
                log.warning("a commit failed; %d due timers wait for the consumer's restart", len(batch))
                return
            now_s = self.clock.now_ms() // 1000
            due: dict[tuple[int, uuid.UUID], None] = {}  # (partition, ticket), in firing order
            for key, kind in zip(batch.keys.tolist(), batch.kinds.tolist(), strict=True):
                part = self.partitions.get(key >> SLOT_BITS)
                if part is None or not part.live:
                    continue
                slot = key & ((1 << SLOT_BITS) - 1)
                part.armed.pop((slot, kind), None)
                due[(part.number, part.ids[slot])] = None
            states: dict[uuid.UUID, TicketSla] = {}
            pending: dict[uuid.UUID, list[Emitted]] = {}
            for number, ticket in due:
                decision = advance(self.partitions[number].tickets[ticket], now_s, self.rules)
                if decision.state is not None and decision.emitted:
                    states[ticket], pending[ticket] = decision.state, decision.emitted
            try:
                written = await self.writer.write(states, pending)
            except Exception:
                log.exception("appending %d firings failed; retrying in %d ms", len(pending), RETRY_FIRING_MS)
                for number, ticket in due:
                    part = self.partitions[number]
                    self._sync(part, ticket, part.tickets[ticket], delay_ms=RETRY_FIRING_MS)
                return
            for number, ticket in due:
                part = self.partitions[number]
                state = written.get(ticket, part.tickets[ticket])
                part.tickets[ticket] = state
                part.changed.add(ticket)
                part.dirty = True
                self._sync(part, ticket, state)
            self.stats.fired += sum(len(e) for e in pending.values())

    def _sync(self, part: Partition, ticket: uuid.UUID, state: TicketSla, delay_ms: int = 0) -> None:
        """Make the wheel hold exactly the ticket's next firing per running clock."""
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

    def timers(self) -> int:
        return len(self.wheel)
