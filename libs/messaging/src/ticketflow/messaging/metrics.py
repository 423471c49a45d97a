"""The Kafka side's Prometheus instruments (prometheus_client's default registry; the runtime serves it on
the operations port). Counted where the work is: the consumption patterns, the dead-letter writer, the
relay's monitor, the lag monitor. docs/operations.md lists each with what an alert on it means.

Counted per batch, not per record, on the hot paths (a labelled `inc` costs ~0.5-1 µs; intake spends
~30 µs on a `chat.inbound` record)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECORDS_CONSUMED = Counter(
    "ticketflow_records_consumed", "Kafka records handled by a consumer (stored, skipped or dead-lettered)",
    ["consumer", "topic"],
)  # fmt: skip
RECORDS_PRODUCED = Counter(
    "ticketflow_records_produced", "Kafka records acknowledged by the broker, by topic", ["topic"]
)
HANDLER_SECONDS = Histogram(
    "ticketflow_handler_seconds", "Per-key batches: one record's handling, decode to done", ["consumer"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "ticketflow_batch_seconds", "One fetched batch, admitted to durable (stored and dead letters sent)",
    ["consumer"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "ticketflow_dead_letters", "Records sent to <topic>.dlq, by original topic, reason and consumer",
    ["topic", "reason", "consumer"],
)  # fmt: skip
CONSUMER_WAITING = Gauge(
    "ticketflow_consumer_waiting", "1 while a consumer waits on an outage (its records are retried, not lost)",
    ["consumer"],
)  # fmt: skip
CONSUMER_LAG = Gauge(
    "ticketflow_consumer_lag", "Records on a partition after the group's committed offset",
    ["group", "topic", "partition"],
)  # fmt: skip
RELAY_BACKLOG = Gauge("ticketflow_relay_backlog", "Stored events past the relay's checkpoint: not yet published")
RELAY_LAG_SECONDS = Gauge(
    "ticketflow_relay_lag_seconds", "Age (recorded_at) of the oldest event not yet published (0 when none is)"
)


def count_by_topic(consumer: str, records: Iterable[Any]) -> None:
    """`ticketflow_records_consumed` for one batch: one `inc` per topic in it."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.topic] = counts.get(record.topic, 0) + 1
    for topic, n in counts.items():
        RECORDS_CONSUMED.labels(consumer, topic).inc(n)
