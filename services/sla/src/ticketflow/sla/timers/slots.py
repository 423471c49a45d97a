"""Timer payloads in preallocated parallel numpy arrays with a free list: no Python object per timer.

A handle is ``generation << 32 | slot``. A slot's generation is odd while a timer lives in it and is
bumped when the timer fires or is cancelled, so a stale handle (or a stale wheel entry pointing at a
reused slot) is recognised in O(1) by comparing generations.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp] | npt.NDArray[np.int32]

# A handle's two 32-bit halves, read as a uint32 view without shifting or masking.
SLOT_HALF, GENERATION_HALF = (0, 1) if sys.byteorder == "little" else (1, 0)
SLOT_BITS = 32
SLOT_MASK = (1 << SLOT_BITS) - 1
MIN_CAPACITY = 16


class TimerSlots:
    """Parallel arrays indexed by slot: key, due time, kind, level, generation; plus a free-slot stack."""

    def __init__(self, capacity: int) -> None:
        capacity = max(MIN_CAPACITY, capacity)
        self.keys: Int64Array = np.zeros(capacity, np.int64)
        self.due_ms: Int64Array = np.zeros(capacity, np.int64)
        self.kinds: Int8Array = np.zeros(capacity, np.int8)
        self.levels: Int8Array = np.zeros(capacity, np.int8)
        self.generations: npt.NDArray[np.uint32] = np.zeros(capacity, np.uint32)
        # Stack of free slots, top at the end; popping yields ascending slots for locality.
        self._free: Int32Array = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self._free_count = capacity
        self.live = 0
        self._bind_views()

    def _bind_views(self) -> None:
        # memoryviews read and write single items as Python ints several times faster than numpy
        # scalar indexing: they carry the one-call-per-timer paths.
        self._key_view = self.keys.data
        self._due_view = self.due_ms.data
        self._kind_view = self.kinds.data
        self._level_view = self.levels.data
        self._generation_view = self.generations.data
        self._free_view = self._free.data

    @property
    def capacity(self) -> int:
        return len(self.keys)

    def nbytes(self) -> int:
        arrays = (self.keys, self.due_ms, self.kinds, self.levels, self.generations, self._free)
        return sum(a.nbytes for a in arrays)

    def allocate(self, count: int) -> Int32Array:
        """Take ``count`` free slots and mark them live (odd generation)."""
        if count > self._free_count:
            self._grow(self.capacity + count)
        top = self._free_count
        slots = self._free[top - count : top][::-1].copy()
        self._free_count = top - count
        self.generations[slots] += 1
        self.live += count
        return slots

    def allocate_one(self, key: int, due_ms: int, kind: int, level: int) -> int:
        """Take a free slot, store the payload; returns the new timer's handle."""
        if self._free_count == 0:
            self._grow(self.capacity + 1)
        self._free_count -= 1
        slot = self._free_view[self._free_count]
        generation = (self._generation_view[slot] + 1) & SLOT_MASK
        self._generation_view[slot] = generation
        self._key_view[slot] = key
        self._due_view[slot] = due_ms
        self._kind_view[slot] = kind
        self._level_view[slot] = level
        self.live += 1
        return int((generation << SLOT_BITS) | slot)

    def payload_of(self, slot: int) -> tuple[int, int, int, int]:
        """(key, due_ms, kind, level) of one slot."""
        return (
            self._key_view[slot],
            self._due_view[slot],
            self._kind_view[slot],
            self._level_view[slot],
        )

    def release(self, slots: IndexArray, next_generations: npt.NDArray[np.uint32] | None = None) -> None:
        """Free live slots (each at most once): their handles and wheel entries go stale.

        ``next_generations`` (current + 1, when the caller already has the current ones) saves a gather.
        """
        count = len(slots)
        if next_generations is None:
            self.generations[slots] += 1
        else:
            self.generations[slots] = next_generations
        self._free[self._free_count : self._free_count + count] = slots
        self._free_count += count
        self.live -= count

    def release_one(self, slot: int) -> None:
        self._generation_view[slot] = (self._generation_view[slot] + 1) & SLOT_MASK
        self._free_view[self._free_count] = slot
        self._free_count += 1
        self.live -= 1

    def handles_of(self, slots: Int32Array) -> Int64Array:
        return (self.generations[slots].astype(np.int64) << SLOT_BITS) | slots

    def live_mask(self, handles: Int64Array) -> BoolArray:
        """Which handles name a timer that is still live (unknown and stale handles are False)."""
        slots = handles & SLOT_MASK
        generations = (handles >> SLOT_BITS) & SLOT_MASK
        mask: BoolArray = (handles >= 0) & (slots < self.capacity) & ((generations & 1) == 1)
        candidates = np.flatnonzero(mask)
        mask[candidates] = self.generations[slots[candidates]] == generations[candidates]
        return mask

    def live_entries(self, entries: Int64Array) -> BoolArray:
        """``live_mask`` for the wheel's own entries, which are well-formed handles: one gather."""
        halves = entries.view(np.uint32)
        live: BoolArray = self.generations[halves[SLOT_HALF::2]] == halves[GENERATION_HALF::2]
        return live

    def is_live(self, handle: int) -> bool:
        slot = handle & SLOT_MASK
        generation = handle >> SLOT_BITS
        if handle < 0 or slot >= len(self._generation_view) or not generation & 1:
            return False
        return bool(self._generation_view[slot] == generation)

    def _grow(self, minimum: int) -> None:
        old = self.capacity
        new = max(2 * old, minimum)
        for name in ("keys", "due_ms", "kinds", "levels", "generations"):
            array = getattr(self, name)
            grown = np.zeros(new, array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        free = np.empty(new, np.int32)
        free[: self._free_count] = self._free[: self._free_count]
        added = new - old
        free[self._free_count : self._free_count + added] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        self._free = free
        self._free_count += added
        self._bind_views()
