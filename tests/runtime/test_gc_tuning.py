"""The batch consumers' collector thresholds: one default, one setting type (a service's
TICKETFLOW_<SERVICE>_GC_THRESHOLDS), applied once the start-up heap is built."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import Field

from ticketflow.runtime.gc_tuning import BATCH_CONSUMER_THRESHOLDS, GcThresholds, tune_gc
from ticketflow.runtime.settings import ServiceSettings, SettingsError, load_settings, prefixed


class ConsumerSettings(ServiceSettings):
    model_config = prefixed("consumer")
    service = "consumer"
    gc_thresholds: GcThresholds = Field(BATCH_CONSUMER_THRESHOLDS)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_the_default_and_a_services_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(ConsumerSettings).gc_thresholds == BATCH_CONSUMER_THRESHOLDS == (50_000, 20, 100)
    monkeypatch.setenv("TICKETFLOW_CONSUMER_GC_THRESHOLDS", "700, 10,10")
    assert load_settings(ConsumerSettings).gc_thresholds == (700, 10, 10)
    for bad in ("lots", "1,2,3,4", "-1"):
        monkeypatch.setenv("TICKETFLOW_CONSUMER_GC_THRESHOLDS", bad)
        with pytest.raises(SettingsError, match="TICKETFLOW_CONSUMER_GC_THRESHOLDS"):
            load_settings(ConsumerSettings)


def test_tune_gc_applies_them_and_freeze_moves_the_live_heap_out(restored_gc: None) -> None:
    gc.unfreeze()
    tune_gc(BATCH_CONSUMER_THRESHOLDS, freeze=True)
    assert gc.get_threshold() == BATCH_CONSUMER_THRESHOLDS and gc.get_freeze_count() > 0
