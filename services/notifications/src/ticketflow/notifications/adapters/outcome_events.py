"""NotificationDelivered / NotificationFailed / NotificationOutcomeUnknown appended to
`notification-<ticket>`, so dashboards show delivery state (which outcome becomes which event: `domain.outcomes`).

Benchmark-driven (fc0f1fb; `tests/load/notifications/bench_e2e.py`, docs/benchmarks.md "Notifications"):
a Kafka batch's outcomes are written together, one query for what is stored, one for the stream heads,
one `append_many` for every stream, instead of a load-decide-append per outcome. Event ids are
deterministic, so writing a batch's outcomes again (a redelivered batch) appends nothing new.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import msgspec

from ticketflow.contracts.envelope import EventMetadata, NewEvent
from ticketflow.contracts.ids import notification_stream
from ticketflow.eventstore import AppendRequest, ConcurrencyError, EventIdReused, EventStore
from ticketflow.messaging import tracing
from ticketflow.notifications.domain.model import Channel, DeliveryOutcome, Notification, OutcomeStatus
from ticketflow.notifications.domain.outcomes import Result, outcome_event

log = logging.getLogger("ticketflow.notifications")
MAX_CONFLICTS = 5
FINAL = (OutcomeStatus.DELIVERED, OutcomeStatus.DEAD_LETTER, OutcomeStatus.UNKNOWN)


class OutcomeRecorder:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def record(self, results: Sequence[Result], traces: Mapping[str, str] | None = None) -> int:
        """Append what is not stored yet; returns how many events were written. An event carries the trace
        context of its delivery (`traces`: by notification key; None: the work under way's)."""
        now = datetime.now(UTC)
        by_id: dict[uuid.UUID, tuple[str, NewEvent]] = {}
        current, _ = tracing.current() if traces is None else (None, None)
        for ticket_id, n, outcome in results:
            event = outcome_event(ticket_id, n, outcome, now)
            traceparent = current if traces is None else traces.get(n.key)
            if event is not None and traceparent is not None:
                event = msgspec.structs.replace(event, metadata=EventMetadata(traceparent=traceparent))
            if event is not None:
                by_id.setdefault(event.event_id, (notification_stream(ticket_id), event))
        pool = self.store.pool
        for _ in range(MAX_CONFLICTS):
            if not by_id:
                return 0
            stored = await pool.fetch("SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])", list(by_id))
            for row in stored:
                by_id.pop(row["event_id"], None)
            per_stream: dict[str, list[NewEvent]] = {}
            for stream, event in by_id.values():
                per_stream.setdefault(stream, []).append(event)
            if not per_stream:
                return 0
            heads = await pool.fetch(
                "SELECT stream_id, max(stream_version) AS head FROM events WHERE stream_id = ANY($1::text[])"
                " GROUP BY stream_id",
                list(per_stream),
            )
            head = {r["stream_id"]: r["head"] for r in heads}
            requests = [AppendRequest(s, head.get(s, 0), events) for s, events in per_stream.items()]
            try:
                await self.store.append_many(requests)
                return len(by_id)
            except (ConcurrencyError, EventIdReused):
                continue  # another writer (a redrive, a second consumer) appended meanwhile: look again
        raise ConcurrencyError("notification streams", -1, -1)

    async def record_by_keys(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Outcomes of deliveries finished outside the consumer (redrive, recover_stale): the ledger
        row says what was sent, the store says which ticket its event belongs to."""
        final = [o for o in outcomes if o.status in FINAL]
        if not final:
            return 0
        rows = await self.store.pool.fetch(
            "SELECT d.*, e.stream_id FROM notification_deliveries d"
            " LEFT JOIN events e ON e.event_id = CASE WHEN d.event_id ~* '^[0-9a-f-]{36}$'"
            " THEN d.event_id::uuid END WHERE d.idempotency_key = ANY($1::text[])",
            [o.key for o in final],
        )
        by_key = {r["idempotency_key"]: r for r in rows}
        results: list[Result] = []
        for outcome in final:
            row = by_key.get(outcome.key)
            if row is None or row["stream_id"] is None:
                log.warning("notifications: no ticket found for delivery %s; outcome not recorded", outcome.key)
                continue
            n = Notification(outcome.key, row["event_id"], Channel(row["channel"]), row["recipient"],
                             row["destination"], row["address"], row["template"], row["locale"])  # fmt: skip
            results.append((uuid.UUID(row["stream_id"].split("-", 1)[1]), n, outcome))
        await self.record(results)
        return len(results)
