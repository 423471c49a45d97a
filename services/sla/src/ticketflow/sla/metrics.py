"""The SLA service's instruments (prometheus_client), served on the operations port with every other
metric (docs/operations.md says what an alert on each means).

Warnings and breaches are counted when decided, on the timer path and on the event path; the timer
path's lateness is observed once per fired batch (its latest timer: a burst of 50,000 firings would
otherwise cost 50,000 observations)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from ticketflow.contracts import sla_events as sla
from ticketflow.sla.domain.state import Emitted
from ticketflow.sla.timers.wheel import FiredTimers

TIMERS_LIVE = Gauge("ticketflow_sla_timers_live", "SLA timers armed in this instance's wheel (its partitions' clocks)")
WARNINGS = Counter("ticketflow_sla_warnings", "SlaWarning events decided (a deadline is near)")
BREACHES = Counter("ticketflow_sla_breaches", "SlaBreached events decided (a deadline passed)")
FIRING_LATENESS = Histogram(
    "ticketflow_sla_firing_lateness_seconds", "Per fired batch: how late its latest timer fired after its due time",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)  # fmt: skip


def count(emitted: Iterable[Emitted]) -> None:
    for item in emitted:
        if isinstance(item.event, sla.SlaWarning):
            WARNINGS.inc()
        elif isinstance(item.event, sla.SlaBreached):
            BREACHES.inc()


def observe_lateness(now_ms: int, batch: FiredTimers) -> None:
    """The batch's most overdue timer: now minus its due time."""
    FIRING_LATENESS.observe(max(0, now_ms - int(batch.due_ms.min())) / 1000)
