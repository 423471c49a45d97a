"""The process entry point: what `main()` sets before it runs the service."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ticketflow.notifications import main as entry
from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, BATCH_CONSUMER_THRESHOLDS), ("700,10,10", (700, 10, 10))],  # the override restores CPython's
)
def test_the_service_runs_with_the_batch_consumer_gc_thresholds_and_its_start_up_heap_frozen(
    monkeypatch: pytest.MonkeyPatch, restored_gc: None, configured: str | None, expected: tuple[int, ...]
) -> None:
    if configured is None:
        monkeypatch.delenv("TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS", raising=False)
    else:
        monkeypatch.setenv("TICKETFLOW_NOTIFICATIONS_GC_THRESHOLDS", configured)
    built, ran = object(), list[tuple[object, tuple[int, ...], int]]()
    monkeypatch.setattr(entry, "build", lambda: built)
    monkeypatch.setattr(entry, "run", lambda service: ran.append((service, gc.get_threshold(), gc.get_freeze_count())))
    entry.main()
    [(service, thresholds, frozen)] = ran
    assert service is built and thresholds == expected and frozen > 0
