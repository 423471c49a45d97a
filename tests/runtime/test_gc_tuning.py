"""The batch consumers' collector thresholds: one default, an environment override per service."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS, gc_thresholds, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_the_default_and_the_per_service_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKETFLOW_INTAKE_GC_THRESHOLDS", raising=False)
    assert gc_thresholds("intake") == BATCH_CONSUMER_THRESHOLDS == (50_000, 20, 100)
    monkeypatch.setenv("TICKETFLOW_ROUTING_GC_THRESHOLDS", "700,10,10")
    assert gc_thresholds("routing") == (700, 10, 10)
    assert gc_thresholds("intake") == BATCH_CONSUMER_THRESHOLDS  # another service's override does not leak


def test_tune_gc_applies_them_and_freeze_moves_the_live_heap_out(
    monkeypatch: pytest.MonkeyPatch, restored_gc: None
) -> None:
    monkeypatch.delenv("TICKETFLOW_ROUTING_GC_THRESHOLDS", raising=False)
    gc.unfreeze()
    assert tune_gc("routing", freeze=True) == BATCH_CONSUMER_THRESHOLDS
    assert gc.get_threshold() == BATCH_CONSUMER_THRESHOLDS and gc.get_freeze_count() > 0
