"""Checkpoint bytes for a timer wheel: raw little-endian arrays behind a fixed header.

Only slot state is stored (generations of every slot, payloads of live slots); buckets are rebuilt
by one vectorised placement on restore, so the format does not depend on the wheel's layout.
"""

from __future__ import annotations

import struct

import numpy as np

from ticketflow.sla.timers.slots import TimerSlots

MAGIC = b"TFTIMER1"
HEADER = struct.Struct("<8sqqqq")  # magic, tick_ms, now_tick, capacity, live count


def dump_snapshot(tick_ms: int, now_tick: int, slots: TimerSlots) -> bytes:
    live = slots.live_slots()
    parts = [
        HEADER.pack(MAGIC, tick_ms, now_tick, slots.capacity, len(live)),
        slots.generations.astype("<u4").tobytes(),
        live.astype("<i4").tobytes(),
        slots.keys[live].astype("<i8").tobytes(),
        slots.due_ms[live].astype("<i8").tobytes(),
        slots.kinds[live].tobytes(),
        slots.levels[live].tobytes(),
    ]
    return b"".join(parts)


def load_snapshot(data: bytes) -> tuple[int, int, TimerSlots]:
    """Returns (tick_ms, now_tick, slots) with every live slot allocated and the rest free."""
    magic, tick_ms, now_tick, capacity, count = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError("not a timer wheel snapshot")
    expected = HEADER.size + 4 * capacity + count * (4 + 8 + 8 + 1 + 1)
    if len(data) != expected:
        raise ValueError(f"snapshot is {len(data)} bytes, expected {expected}")
    offset = HEADER.size

    def take(dtype: str, n: int) -> np.ndarray:  # type: ignore[type-arg]
        nonlocal offset
        array = np.frombuffer(data, dtype, n, offset)
        offset += array.nbytes
        return array

    generations = take("<u4", capacity).astype(np.uint32)
    live = take("<i4", count).astype(np.int32)
    slots = TimerSlots(capacity)
    slots.restore_generations(generations, live)
    slots.keys[live] = take("<i8", count)
    slots.due_ms[live] = take("<i8", count)
    slots.kinds[live] = take("i1", count)
    slots.levels[live] = take("i1", count)
    return tick_ms, now_tick, slots
