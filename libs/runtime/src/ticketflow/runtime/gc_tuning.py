"""Garbage-collector thresholds for the batch consumers (intake, routing): one setting, measured twice.

CPython's default thresholds (700, 10, 10) run a young collection every ~700 allocations. A consumer
batch keeps thousands of young objects alive (records, decisions, events) while the process holds many
long-lived ones (folded ticket states), so collections ran every few records and full ones kept
rescanning the states: ~30 % of intake's chat.inbound CPU, and 3-4x a record's decoding in routing
(docs/benchmarks.md). Garbage without cycles is still freed at once by reference counting.

`TICKETFLOW_<SERVICE>_GC_THRESHOLDS="700,10,10"` restores CPython's defaults (for comparisons)."""

from __future__ import annotations

import gc
import os

BATCH_CONSUMER_THRESHOLDS = (50_000, 20, 100)


def gc_thresholds(service: str) -> tuple[int, ...]:
    """The thresholds `service` runs with: its environment override, else BATCH_CONSUMER_THRESHOLDS."""
    configured = os.environ.get(f"TICKETFLOW_{service.upper()}_GC_THRESHOLDS")
    return tuple(int(n) for n in configured.split(",")) if configured else BATCH_CONSUMER_THRESHOLDS


def tune_gc(service: str, *, freeze: bool = False) -> tuple[int, ...]:
    """Apply the thresholds; `freeze` first moves everything alive now (a rebuilt state) out of the
    collector's reach, so full collections stop rescanning it. Returns the thresholds applied."""
    if freeze:
        gc.freeze()
    thresholds = gc_thresholds(service)
    gc.set_threshold(*thresholds)
    return thresholds
