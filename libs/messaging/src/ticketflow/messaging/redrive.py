"""Dead letters read back and redriven: `read_dead_letters` (newest first, for a person) and `redrive`
(re-publish `<topic>.dlq` to `topic`, all or filtered by reason or age). The CLI and the `RedriveDeadLetters`
operator command both use these.

A redrive reads the dead-letter topic from its consumer group's committed offset (`ticketflow-ops-redrive`:
a record is redriven once) up to the end as it was when the redrive began, publishes each dead letter that
passes the filter to the original topic with its original headers (marked `x-redriven-from: dlq`), then
commits. A dead letter a filter leaves out stays: the commit stops at the first one left out in each
partition, so a later redrive reads it again (and may send again a redriven record after it: consumers
are idempotent)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ticketflow.messaging.dead_letters import DeadLetter, dead_letter_topic
from ticketflow.messaging.producer import make_producer
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity
from ticketflow.messaging.topics import TOPICS_BY_NAME

REDRIVE_GROUP = "ticketflow-ops-redrive"


class NoDeadLetterTopic(ValueError):
    """The topic has no dead-letter topic declared, or the broker has none: the message says which."""


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a redrive takes: this reason only; dead-lettered at least `min_age_s` ago /
    at most `max_age_s` ago (None: any)."""

    reason: str | None = None
    min_age_s: int | None = None
    max_age_s: int | None = None

    def takes(self, letter: DeadLetter, now_ms: int) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        age_s = (now_ms - (letter.at_ms or 0)) / 1000
        if self.min_age_s is not None and age_s < self.min_age_s:
            return False
        return self.max_age_s is None or age_s <= self.max_age_s


@dataclass(frozen=True)
class RedriveResult:
    topic: str
    read: int
    redriven: int
    left: int  # read but left out by the filter

    def describe(self) -> str:
        dlq = dead_letter_topic(self.topic)
        if self.read == 0:
            return f"{dlq} has no dead letter to redrive (empty, or every one redriven already)"
        kept = f", {self.left} left out by the filter" if self.left else ""
        return f"redrove {self.redriven} of {self.read} dead letter(s) from {dlq} to {self.topic}{kept}"


def _missing(topic: str) -> NoDeadLetterTopic:
    dlq = dead_letter_topic(topic)
    if dlq in TOPICS_BY_NAME:
        return NoDeadLetterTopic(f"{dlq} does not exist on the broker: nothing was ever dead-lettered there")
    known = sorted(t.removesuffix(".dlq") for t in TOPICS_BY_NAME if t.endswith(".dlq"))
    return NoDeadLetterTopic(f"{topic} has no dead-letter topic; topics with one: {', '.join(known)}")


async def _consumer(bootstrap: str, security: KafkaSecurity, group: str | None) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
        **security.client_options(),
    )  # fmt: skip
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def _partitions(bootstrap: str, security: KafkaSecurity, topic: str) -> list[TopicPartition]:
    dlq = dead_letter_topic(topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_topics([dlq])
    finally:
        await admin.close()
    if described.get("error_code", 0) != 0 or not described.get("partitions"):
        raise _missing(topic)
    return [TopicPartition(dlq, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])]


async def _read_to_end(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> list[DeadLetter]:
    """From each partition's current position to its end as it is now."""
    ends = await consumer.end_offsets(list(tps))
    letters: list[DeadLetter] = []
    for tp in tps:
        empty_fetches = 0
        while await consumer.position(tp) < ends[tp] and empty_fetches < 10:  # 10 s without a record: a gap
            records = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
            empty_fetches = 0 if records else empty_fetches + 1
            letters += [DeadLetter.of(r) for r in records if r.offset < ends[tp]]
    return letters


async def read_dead_letters(
    bootstrap: str, topic: str, *, limit: int = 20, security: KafkaSecurity = PLAINTEXT
) -> list[DeadLetter]:
    """The newest `limit` dead letters of `topic`, newest first (by when they were dead-lettered)."""
    tps = await _partitions(bootstrap, security, topic)
    consumer = await _consumer(bootstrap, security, None)
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - limit))
        letters = await _read_to_end(consumer, tps)
    finally:
        await consumer.stop()
    letters.sort(key=lambda letter: (letter.at_ms or 0, letter.offset), reverse=True)
    return letters[:limit]


async def redrive(
    bootstrap: str,
    topic: str,
    *,
    which: DeadLetterFilter = DeadLetterFilter(),
    limit: int = 100_000,
    security: KafkaSecurity = PLAINTEXT,
    group: str = REDRIVE_GROUP,
) -> RedriveResult:
    """Re-publish the dead letters of `topic` that `which` takes (at most `limit`), then commit."""
    tps = await _partitions(bootstrap, security, topic)
    dlq = dead_letter_topic(topic)
    consumer = await _consumer(bootstrap, security, group)
    producer = make_producer(bootstrap, security, client_id="ticketflow-redrive")
    try:
        await producer.start()
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        for tp in tps:
            consumer.seek(tp, committed[tp] or 0)
        letters = (await _read_to_end(consumer, tps))[:limit]
        now_ms, redriven = int(time.time() * 1000), 0
        commit: dict[TopicPartition, int] = {}
        for letter in letters:
            tp = TopicPartition(dlq, letter.partition)
            if not which.takes(letter, now_ms):
                commit.setdefault(tp, letter.offset)  # stop before the first left out: a later redrive reads it
                continue
            await producer.send_and_wait(topic, letter.value, key=letter.key, headers=list(letter.redrive_headers()))
            redriven += 1
        ends = {tp: max((d.offset + 1 for d in letters if d.partition == tp.partition), default=None) for tp in tps}
        offsets = {tp: commit.get(tp, end) for tp, end in ends.items() if end is not None}
        if offsets:
            await consumer.commit(offsets)
    finally:
        await producer.stop()
        await consumer.stop()
    return RedriveResult(topic, len(letters), redriven, len(letters) - redriven)
