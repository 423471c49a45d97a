"""Dead letters: one header set, written and read back by the same module; the original headers survive
a redrive; a broker that does not take the dead letter makes `send` raise (the batch is not committed)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from support.records import FakeRecord, RecordingProducer

from ticketflow.messaging.dead_letters import DeadLetter, DeadLetterWriter

RECORD = FakeRecord("ticket.events", 3, 41, b"k", b"{}", 1_700_000_000_123, (("traceparent", b"00-ab-cd-01"),))


async def test_a_dead_letter_carries_the_cause_where_it_came_from_and_the_original_headers() -> None:
    producer = RecordingProducer()
    await DeadLetterWriter(producer, "preflight").send(RECORD, "rejected", "unknown desk x", event_id="e1")  # type: ignore[arg-type]
    [sent] = producer.sent
    assert (sent["topic"], sent["key"], sent["value"]) == ("ticket.events.dlq", b"k", b"{}")
    letter = DeadLetter.of(FakeRecord("ticket.events.dlq", 0, 7, sent["key"], sent["value"], 0, sent["headers"]))
    assert (letter.reason, letter.detail, letter.consumer) == ("rejected", "unknown desk x", "preflight")
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == ("ticket.events", 3, 41)
    assert letter.original_timestamp == 1_700_000_000_123 and letter.at_ms is not None
    assert letter.context == {"event-id": "e1"}
    assert list(letter.redrive_headers()) == [("traceparent", b"00-ab-cd-01"), ("x-redriven-from", b"dlq")]


async def test_a_long_detail_is_cut_and_a_record_without_our_headers_reads_as_unknown() -> None:
    producer = RecordingProducer()
    await DeadLetterWriter(producer, "intake").send(RECORD, "undecodable", "x" * 5000)  # type: ignore[arg-type]
    letter = DeadLetter.of(FakeRecord("t.dlq", 0, 0, None, b"", 0, producer.sent[0]["headers"]))
    assert len(letter.detail) == 2000
    stranger = DeadLetter.of(FakeRecord("chat.inbound.dlq", 0, 1, None, b"v"))
    assert (stranger.reason, stranger.original_topic, stranger.original_offset) == ("?", "chat.inbound", None)


async def test_a_broker_that_does_not_take_the_dead_letter_raises_so_nothing_is_committed() -> None:
    writer = DeadLetterWriter(RecordingProducer(fail=KafkaConnectionError()), "routing")  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await writer.send(RECORD, "undecodable", "bad json")
    assert writer.sent == 0
