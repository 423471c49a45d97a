"""DeadLetters: headers that name the cause, and no exception when the broker is gone as well."""

from __future__ import annotations

from typing import Any

from ticketflow.runtime.kafka import DeadLetters


class Broker:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.published: list[dict[str, Any]] = []

    async def publish(self, value: bytes, **kwargs: Any) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.published.append({"value": value, **kwargs})


async def test_dead_letter_carries_the_cause_and_context_in_headers() -> None:
    broker = Broker(fail=False)
    dead = DeadLetters(broker, "preflight")  # type: ignore[arg-type]
    assert await dead.send("ticket.events", b"k", b"{}", "unknown desk x", event_id="e1") is True
    [record] = broker.published
    assert record["topic"] == "ticket.events.dlq" and record["key"] == b"k"
    assert record["headers"] == {
        "x-dead-letter-reason": "unknown desk x",
        "x-consumer": "preflight",
        "x-original-topic": "ticket.events",
        "x-event-id": "e1",
    }
    assert (dead.sent, dead.failed) == (1, 0)


async def test_a_broker_outage_while_dead_lettering_is_counted_not_raised() -> None:
    dead = DeadLetters(Broker(fail=True), "routing")  # type: ignore[arg-type]
    assert await dead.send("ticket.commands", None, b"x", "undecodable") is False
    assert (dead.sent, dead.failed) == (0, 1)
