"""The application service's batch bookkeeping, without I/O: a batch's outcomes are written once, after
its deliveries settle; kept when the write fails, and kept once each when the batch comes again."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import cast

import pytest

from ticketflow.eventstore import RetryableStoreError
from ticketflow.notifications.adapters.delivery import Deliverer
from ticketflow.notifications.adapters.outcome_events import OutcomeRecorder
from ticketflow.notifications.app import BatchOutcomes, Handled
from ticketflow.notifications.domain.model import Channel, DeliveryOutcome, Notification, OutcomeStatus
from ticketflow.notifications.domain.outcomes import Result


class Engine:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def settle(self) -> None:
        self.calls.append("settle")


class Recorder:
    def __init__(self, calls: list[str], failures: int) -> None:
        self.calls, self.failures, self.written = calls, failures, list[list[Result]]()

    async def record(self, results: Sequence[Result], traces: Mapping[str, str] | None = None) -> int:
        self.calls.append("record")
        if self.failures:
            self.failures -= 1
            raise RetryableStoreError("the store is away")
        self.written.append(list(results))
        return len(results)


def handled(ticket_id: uuid.UUID, status: OutcomeStatus, recipient: str = "requester:u-1") -> Handled:
    n = Notification.for_event(event_id="e-1", channel=Channel.BITRIX24, recipient=recipient, destination="p",
                               address="chat1", template="ticket_opened", locale="ru", variables={})  # fmt: skip
    return Handled(sent=1, results=((ticket_id, n, DeliveryOutcome(n.key, status, 1)),))


async def test_outcomes_are_written_after_the_deliveries_settle_once_each_and_kept_until_written() -> None:
    calls: list[str] = []
    recorder = Recorder(calls, failures=1)
    batch = BatchOutcomes(cast(Deliverer, Engine(calls)), cast(OutcomeRecorder, recorder))
    ticket_id = uuid.uuid4()
    batch.add(handled(ticket_id, OutcomeStatus.DELIVERED))
    batch.add(handled(ticket_id, OutcomeStatus.DELIVERED, "agent-anna"))
    with pytest.raises(RetryableStoreError):
        await batch.record()
    batch.add(handled(ticket_id, OutcomeStatus.DELIVERED))  # the batch handled again: the same outcome
    await batch.record()
    assert calls == ["settle", "record", "settle", "record"]
    [written] = recorder.written
    assert sorted(n.recipient for _, n, _ in written) == ["agent-anna", "requester:u-1"]
    await batch.record()  # nothing left: settles, writes nothing
    assert calls[-1] == "settle" and len(recorder.written) == 1
