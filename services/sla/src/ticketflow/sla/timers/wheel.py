"""A hashed hierarchical timing wheel over numpy slot arrays.

Time is counted in ticks (``tick_ms``, default 1 ms); a timer is due once ``ceil(due_ms / tick_ms)``
ticks have passed. Tier ``k`` has buckets ``64**k`` ticks wide; a timer sits in the lowest tier whose
bucket index is fewer than 64 buckets ahead of the wheel's time, so any horizon (years) fits in a
handful of tiers and nothing overflows. Buckets are keyed by absolute (tier, index) in a dict and
ordered by a small heap of bucket starts: at most about 64 buckets per tier exist at once.

A bucket holds handles in a compact ``array('q')``. Cancel is O(1): it bumps the slot's generation,
so the bucket entry goes stale and is dropped when its bucket is reached (or by a compaction pass
when stale entries outnumber live timers). When a bucket of tier > 0 is reached, its live entries
cascade to lower tiers in one vectorised pass; a tier-0 bucket is one tick, so all of it fires.

Why a wheel and not `call_later`, a heap or a table: `make bench-sla` (tests/load/sla/bench_sla_timers.py;
docs/sla-timers.md, docs/benchmarks.md "SLA timer engine") measures schedule/cancel rates, bytes per
timer and burst lateness against those. The service holds no state in the wheel that it cannot
derive again: a restore re-arms it from the checkpointed ticket states (`domain.firings`).
"""

from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass

import numpy as np

from ticketflow.sla.timers.slots import (
    GENERATION_HALF,
    SLOT_HALF,
    SLOT_MASK,
    BoolArray,
    IndexArray,
    Int8Array,
    Int32Array,
    Int64Array,
    TimerSlots,
)

TIER_BITS = 6
BUCKETS_PER_TIER = 1 << TIER_BITS
MAX_TIER = 10  # 64**10 ticks: beyond any epoch-ms deadline, so no separate overflow list is needed
COMPACT_SLACK = 1 << 16


@dataclass(frozen=True, slots=True)
class FiredTimers:
    """One batch of due timers, in parallel arrays (what the sink turns into events)."""

    keys: Int64Array
    kinds: Int8Array
    levels: Int8Array
    due_ms: Int64Array

    def __len__(self) -> int:
        return len(self.keys)


class TimerWheel:
    """Durable-SLA-sized timer set: O(1) schedule/cancel, vectorised batch paths, exact firing."""

    compact_slack = COMPACT_SLACK  # stale entries tolerated beyond the live count (tests lower it)

    def __init__(self, capacity_hint: int = 1024, *, tick_ms: int = 1, now_ms: int = 0) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be >= 1")
        self.tick_ms = tick_ms
        self._slots = TimerSlots(capacity_hint)
        self._now_tick = now_ms // tick_ms  # the wheel's time only moves forward
        self._buckets: dict[tuple[int, int], array[int]] = {}
        self._heap: list[tuple[int, int, int]] = []  # (start tick, tier, bucket index)
        self._entries = 0  # handles held in buckets, live or stale

    def __len__(self) -> int:
        return self._slots.live

    @property
    def now_ms(self) -> int:
        return self._now_tick * self.tick_ms

    def nbytes(self) -> int:
        """Bytes held by the slot arrays and bucket arrays (excluding Python object headers)."""
        buckets = sum(b.buffer_info()[1] * b.itemsize for b in self._buckets.values())
        return self._slots.nbytes() + buckets

    # -- scheduling ---------------------------------------------------------------------------------

    def schedule(self, key: int, due_ms: int, kind: int = 0, level: int = 0) -> int:
        """Add one timer; returns its handle. A deadline in the past fires at the next ``pop_due``."""
        handle = self._slots.allocate_one(key, due_ms, kind, level)
        due_tick = -(-due_ms // self.tick_ms)
        now = self._now_tick
        if due_tick <= now:
            self._append_one(0, now, handle)
            return handle
        # Tiers below this one are provably too narrow (floor(d / 64**k) >= 64 there): skip them.
        tier = min((due_tick - now).bit_length() - 1, TIER_BITS * MAX_TIER) // TIER_BITS
        while tier < MAX_TIER and (due_tick >> TIER_BITS * tier) - (now >> TIER_BITS * tier) >= 64:
            tier += 1
        self._append_one(tier, due_tick >> TIER_BITS * tier, handle)
        return handle

    def schedule_many(
        self,
        keys: Int64Array,
        due_ms: Int64Array,
        kinds: Int8Array | None = None,
        levels: Int8Array | None = None,
    ) -> Int64Array:
        """Vectorised ``schedule``: one handle per key, in input order."""
        keys, due_ms = np.asarray(keys, np.int64), np.asarray(due_ms, np.int64)
        count = len(keys)
        if len(due_ms) != count:
            raise ValueError("keys and due_ms differ in length")
        slots = self._slots
        new = slots.allocate(count)
        slots.keys[new] = keys
        slots.due_ms[new] = due_ms
        slots.kinds[new] = 0 if kinds is None else kinds
        slots.levels[new] = 0 if levels is None else levels
        handles = slots.handles_of(new)
        self._place(handles, self._ticks_of(new), self._now_tick)
        return handles

    def reschedule(self, handle: int, due_ms: int) -> int:
        """Move a live timer to a new deadline, keeping its payload; returns the new handle."""
        if not self._slots.is_live(handle):
            raise KeyError(handle)
        key, _, kind, level = self._slots.payload_of(handle & SLOT_MASK)
        self.cancel(handle)
        return self.schedule(key, due_ms, kind, level)

    # -- cancelling ---------------------------------------------------------------------------------

    def cancel(self, handle: int) -> bool:
        """Cancel a live timer; False for a fired, cancelled or unknown handle."""
        if not self._slots.is_live(handle):
            return False
        self._slots.release_one(handle & SLOT_MASK)
        self._compact_if_stale()
        return True

    def cancel_many(self, handles: Int64Array) -> BoolArray:
        """Vectorised ``cancel``: which handles were live (a handle repeated in the batch counts once)."""
        handles = np.asarray(handles, np.int64)
        live = self._slots.live_mask(handles)
        positions = np.flatnonzero(live)
        slots = (handles[positions] & SLOT_MASK).astype(np.int32)
        # Keep the first position per slot. Sorting the batch costs O(b log b) for b handles, where a
        # capacity-sized scratch array would fault in pages all over a multi-megabyte range.
        unique_slots, first = np.unique(slots, return_index=True)
        if len(unique_slots) < len(slots):
            repeated = np.ones(len(slots), np.bool_)
            repeated[first] = False
            live[positions[repeated]] = False
        self._slots.release(unique_slots.astype(np.int32))
        self._compact_if_stale()
        return live

    # -- firing -------------------------------------------------------------------------------------

    def pop_due(self, now_ms: int) -> Int64Array:
        """Keys of the timers due at ``now_ms``, removed from the wheel."""
        return self.pop_due_batch(now_ms).keys

    def pop_due_batch(self, now_ms: int) -> FiredTimers:
        """Remove and return the timers with ``ceil(due/tick)*tick <= now_ms``; wheel time never goes back."""
        now = max(self._now_tick, now_ms // self.tick_ms)
        self._now_tick = now
        fired: list[Int64Array] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, tier, index = heapq.heappop(heap)
            handles = self._take_live(tier, index)
            if tier == 0:
                fired.append(handles)
            elif len(handles):
                self._place(handles, self._ticks_of(handles & SLOT_MASK), now)
        if not fired:
            return self._fired(np.empty(0, np.intp))
        halves = (np.concatenate(fired) if len(fired) > 1 else fired[0]).view(np.uint32)
        slots = halves[SLOT_HALF::2].astype(np.intp)  # intp: every gather below indexes without a cast
        batch = self._fired(slots)
        self._slots.release(slots, halves[GENERATION_HALF::2] + np.uint32(1))
        return batch

    def next_due_ms(self) -> int | None:
        """Exact time (tick-rounded) at which the earliest live timer is due; None when empty.

        Cascades the earliest buckets ahead of time until a tier-0 bucket with a live timer is on
        top: work each timer would need anyway when its bucket is reached.
        """
        heap = self._heap
        while heap:
            start, tier, index = heap[0]
            bucket = self._buckets[(tier, index)]
            if tier == 0 and self._slots.live_entries(np.frombuffer(bucket, np.int64)).any():
                return start * self.tick_ms
            heapq.heappop(heap)
            handles = self._take_live(tier, index)
            if tier > 0 and len(handles):
                self._place(handles, self._ticks_of(handles & SLOT_MASK), max(start, self._now_tick))
        return None

    # -- internals ----------------------------------------------------------------------------------

    def _ticks_of(self, slots: Int64Array | Int32Array) -> Int64Array:
        due: Int64Array = self._slots.due_ms[slots]
        return -(-due // self.tick_ms)

    def _fired(self, slots: IndexArray) -> FiredTimers:
        s = self._slots
        return FiredTimers(s.keys[slots], s.kinds[slots], s.levels[slots], s.due_ms[slots])

    def _append_one(self, tier: int, index: int, handle: int) -> None:
        bucket = self._buckets.get((tier, index))
        if bucket is None:
            bucket = self._buckets[(tier, index)] = array("q")
            heapq.heappush(self._heap, (index << TIER_BITS * tier, tier, index))
        bucket.append(handle)
        self._entries += 1

    def _take_live(self, tier: int, index: int) -> Int64Array:
        """Remove a bucket; return its live handles."""
        bucket = self._buckets.pop((tier, index))
        self._entries -= len(bucket)
        entries: Int64Array = np.frombuffer(bucket, np.int64)  # keeps the bucket's buffer alive
        live = self._slots.live_entries(entries)
        return entries if live.all() else entries[live]

    def _place(self, handles: Int64Array, ticks: Int64Array, now: int) -> None:
        """Put handles into buckets relative to wheel time ``now`` (one bucket lookup per group)."""
        count = len(handles)
        if count == 0:
            return
        tier = np.zeros(count, np.int64)
        for level in range(MAX_TIER):
            shift = TIER_BITS * level
            ahead = ((ticks >> shift) - (now >> shift)) >= BUCKETS_PER_TIER
            if not ahead.any():
                break
            tier += ahead
        index = ticks >> (TIER_BITS * tier)
        overdue = ticks <= now
        index[overdue] = now
        # Within one placement the (tier, index mod 64) pairs are distinct buckets: tier-0 indexes lie
        # in [now, now+63] and tier-k indexes in [now_k+1, now_k+63].
        group = (tier << TIER_BITS) | (index & (BUCKETS_PER_TIER - 1))
        order = np.argsort(group.astype(np.uint16), kind="stable")
        counts = np.bincount(group, minlength=BUCKETS_PER_TIER * (MAX_TIER + 1))
        ends = np.cumsum(counts)
        sorted_handles = handles[order]
        for g in np.flatnonzero(counts).tolist():
            end = int(ends[g])
            begin = end - int(counts[g])
            g_tier = g >> TIER_BITS
            g_index = int(index[order[begin]])
            bucket = self._buckets.get((g_tier, g_index))
            if bucket is None:
                bucket = self._buckets[(g_tier, g_index)] = array("q")
                heapq.heappush(self._heap, (g_index << TIER_BITS * g_tier, g_tier, g_index))
            bucket.frombytes(sorted_handles[begin:end].tobytes())
        self._entries += count

    def _compact_if_stale(self) -> None:
        """Drop stale entries once they outnumber live timers: amortised O(1) per cancel."""
        live = self._slots.live
        if self._entries - live <= live + self.compact_slack:
            return
        for key, bucket in self._buckets.items():
            entries = np.frombuffer(bucket, np.int64)
            kept = array("q")
            kept.frombytes(entries[self._slots.live_entries(entries)].tobytes())
            self._buckets[key] = kept
        self._entries = live
