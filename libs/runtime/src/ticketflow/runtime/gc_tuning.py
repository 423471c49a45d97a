"""Garbage-collector thresholds for the batch consumers (intake, routing, notifications): one setting,
measured three times.

CPython's default thresholds (700, 10, 10) run a young collection every ~700 allocations. A consumer
batch keeps thousands of young objects alive (records, decisions, events) while the process holds many
long-lived ones (folded ticket states, templates, calendars), so collections ran every few records and
full ones kept rescanning the long-lived heap: ~30 % of intake's chat.inbound CPU and of notifications',
and 3-4x a record's decoding in routing (docs/benchmarks.md). Garbage without cycles is still freed at
once by reference counting.

Each service's settings carry `gc_thresholds` (`GcThresholds`, TICKETFLOW_<SERVICE>_GC_THRESHOLDS;
"700,10,10" restores CPython's defaults, for comparisons); the service calls `tune_gc` once its
start-up heap is built."""

from __future__ import annotations

import gc
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

BATCH_CONSUMER_THRESHOLDS = (50_000, 20, 100)


def _comma_separated(value: object) -> object:
    return tuple(int(part) for part in value.split(",") if part.strip()) if isinstance(value, str) else value


def _one_to_three(value: tuple[int, ...]) -> tuple[int, ...]:
    if not 1 <= len(value) <= 3 or any(n < 0 for n in value):
        raise ValueError("one to three non-negative numbers, e.g. 50000,20,100")
    return value


GcThresholds = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_comma_separated), AfterValidator(_one_to_three)]


def tune_gc(thresholds: tuple[int, ...], *, freeze: bool = False) -> None:
    """Apply the thresholds; `freeze` first moves everything alive now (a rebuilt state, the start-up
    heap) out of the collector's reach, so full collections stop rescanning it."""
    if freeze:
        gc.freeze()
    gc.set_threshold(*thresholds)
