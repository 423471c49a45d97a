"""Dead letters: a record that is bad in itself goes to `<topic>.dlq` with its cause, and nowhere else
are these headers spelt. `DeadLetterWriter` writes them; `DeadLetter.of` reads them back (the CLI's
`dlq show` and `redrive`).

Headers of a dead letter:
- `x-dead-letter-reason`: the cause, short ("undecodable", "rejected", "unknown tenant", ...);
- `x-dead-letter-detail`: what exactly (the decoder's message, the refusal's words), at most 2,000 chars;
- `x-dead-letter-consumer`: who gave up on it; `x-dead-letter-at`: when (epoch ms);
- `x-dead-letter-context-<name>`: what the consumer knew of it (an event id, a command id, ...);
- `x-original-topic`, `-partition`, `-offset`, `-timestamp`: where it was read;
- and every header the original record carried, unchanged (a redrive gives them back).

Every dead letter is counted in `ticketflow_dead_letters_total` (original topic, reason, consumer).

A record that is valid but cannot be processed now (a database outage, a busy destination) is never a
dead letter: the consumption patterns wait and retry it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ticketflow.messaging.metrics import DEAD_LETTERS, RECORDS_PRODUCED
from ticketflow.messaging.producer import Sender
from ticketflow.messaging.records import Record

log = logging.getLogger(__name__)
REASON = "x-dead-letter-reason"
DETAIL = "x-dead-letter-detail"
CONSUMER = "x-dead-letter-consumer"
AT = "x-dead-letter-at"
CONTEXT = "x-dead-letter-context-"
ORIGINAL = "x-original-"
REDRIVEN = "x-redriven-from"
_OURS = (REASON, DETAIL, CONSUMER, AT, CONTEXT, ORIGINAL, REDRIVEN)
DETAIL_LIMIT = 2000


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _own(name: str) -> bool:
    return name.startswith(_OURS)


class DeadLetterWriter:
    """Publishes dead letters of one consumer through a started producer. `send` raises when the broker
    does not take the dead letter: the caller's batch is then not committed, and comes again."""

    def __init__(self, producer: Sender, consumer: str) -> None:
        self.producer = producer
        self.consumer = consumer
        self.sent = 0

    async def send(self, record: Record, reason: str, detail: str = "", **context: str) -> None:
        headers = dead_letter_headers(
            reason, detail, self.consumer, record.topic, record.headers, context,
            partition=record.partition, offset=record.offset, timestamp=record.timestamp,
        )  # fmt: skip
        topic = dead_letter_topic(record.topic)
        await self.producer.send_and_wait(topic, record.value or b"", key=record.key, headers=headers)
        self.sent += 1
        DEAD_LETTERS.labels(record.topic, reason, self.consumer).inc()
        RECORDS_PRODUCED.labels(topic).inc()
        log.warning("%s: dead-lettered %s[%d]@%d: %s: %s", self.consumer, record.topic, record.partition,
                    record.offset, reason, detail[:200])  # fmt: skip


def dead_letter_headers(
    reason: str,
    detail: str,
    consumer: str,
    topic: str,
    original_headers: Sequence[tuple[str, bytes]],
    context: dict[str, str],
    *,
    partition: int | None = None,
    offset: int | None = None,
    timestamp: int | None = None,
) -> list[tuple[str, bytes]]:
    """A dead letter's headers (the module's list); where a record was read, when it was read at all
    (the relay dead-letters records it never published: no partition, offset or timestamp)."""
    where = {"partition": partition, "offset": offset, "timestamp": timestamp}
    return [
        (REASON, reason.encode()),
        (DETAIL, detail[:DETAIL_LIMIT].encode()),
        (CONSUMER, consumer.encode()),
        (AT, str(int(time.time() * 1000)).encode()),
        *((f"{CONTEXT}{name.replace('_', '-')}", value.encode()) for name, value in context.items()),
        (f"{ORIGINAL}topic", topic.encode()),
        *((f"{ORIGINAL}{name}", str(value).encode()) for name, value in where.items() if value is not None),
        *((name, value) for name, value in original_headers if not _own(name)),
    ]


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as read back from `<topic>.dlq`."""

    offset: int
    key: bytes | None
    value: bytes
    reason: str
    detail: str
    consumer: str
    at_ms: int | None
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    original_timestamp: int | None
    context: dict[str, str] = field(default_factory=dict)
    original_headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = 0  # of the dead-letter topic, as `offset`

    @classmethod
    def of(cls, record: Record) -> DeadLetter:
        text = {name: value.decode(errors="replace") for name, value in record.headers if _own(name)}

        def number(name: str) -> int | None:
            value = text.get(name, "")
            return int(value) if value.lstrip("-").isdigit() else None

        return cls(
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            reason=text.get(REASON, "?"),
            detail=text.get(DETAIL, ""),
            consumer=text.get(CONSUMER, "?"),
            at_ms=number(AT),
            original_topic=text.get(f"{ORIGINAL}topic", record.topic.removesuffix(".dlq")),
            original_partition=number(f"{ORIGINAL}partition"),
            original_offset=number(f"{ORIGINAL}offset"),
            original_timestamp=number(f"{ORIGINAL}timestamp"),
            context={k.removeprefix(CONTEXT): v for k, v in text.items() if k.startswith(CONTEXT)},
            original_headers=tuple((n, v) for n, v in record.headers if not _own(n)),
            partition=record.partition,
        )

    def redrive_headers(self, source: str = "dlq") -> Sequence[tuple[str, bytes]]:
        """The original record's headers, marked as redriven (consumers treat it as any record)."""
        return [*self.original_headers, (REDRIVEN, source.encode())]
