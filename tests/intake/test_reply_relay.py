"""The reply relay in this process, on a fresh database and the real broker: two relays racing (as two
intake processes would) publish each reply once and in conversation order; a failed publish marks
nothing sent, and the next round sends it again with the same reply_key."""

from __future__ import annotations

import asyncio
import gc
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from intake_service import read_replies

from ticketflow.intake.adapters.replies import ReplyRelay

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


async def queue_replies(pool: asyncpg.Pool, conversations: int, per_conversation: int) -> list[str]:
    """Queue replies as intake's store does (a message row, then its reply), in order; returns the keys."""
    keys = []
    async with pool.acquire() as conn:
        for c in range(conversations):
            conversation = f"conv-{uuid.uuid4().hex[:8]}-{c}"
            for n in range(per_conversation):
                key = f"generic:acme:{conversation}-{n}"
                await conn.execute(
                    "INSERT INTO intake_messages (idempotency_key, conversation_key, outcome, received_at) "
                    "VALUES ($1, $2, 'status', $3)",
                    key,
                    f"generic:acme:{conversation}",
                    datetime.now(UTC),
                )
                await conn.execute(
                    "INSERT INTO intake_replies (idempotency_key, platform, tenant_id, conversation_id, reason, body) "
                    "VALUES ($1, 'generic', 'acme', $2, 'status', $3)",
                    key,
                    conversation,
                    f"answer {n}",
                )
                keys.append(key)
    return keys


async def test_two_relays_publish_each_reply_once_in_conversation_order(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=3)
    keys = await queue_replies(pool, conversations=20, per_conversation=10)
    relays = [ReplyRelay(pool, kafka_bootstrap, topic, batch=25) for _ in range(2)]
    for relay in relays:
        await relay._producer.start()
    try:
        for _ in range(100):  # both relays race round after round, as two intake processes would
            await asyncio.gather(*(relay.relay_once() for relay in relays))
            if not await pool.fetchval("SELECT count(*) FROM intake_replies WHERE sent_at IS NULL"):
                break
    finally:
        for relay in relays:
            await relay._producer.stop()
    assert sum(r.published for r in relays) == len(keys)
    records = await read_replies(kafka_bootstrap, topic)
    assert sorted(r.cause_key for _, r in records) == sorted(keys)  # each reply exactly once
    by_conversation: dict[str, list[str]] = {}
    for _, reply in records:
        by_conversation.setdefault(reply.chat.conversation_id, []).append(reply.body)
    assert all(bodies == [f"answer {n}" for n in range(10)] for bodies in by_conversation.values())


async def test_a_failed_publish_marks_nothing_and_the_next_round_sends_it(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    await pool.execute("UPDATE intake_replies SET sent_at = now() WHERE sent_at IS NULL")  # earlier tests' rows
    keys = await queue_replies(pool, conversations=1, per_conversation=3)
    relay = ReplyRelay(pool, kafka_bootstrap, topic)
    await relay._producer.start()
    try:
        original = relay._producer.send
        calls = 0

        async def failing_third(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise ConnectionError("broker went away")
            return await original(*args, **kwargs)

        relay._producer.send = failing_third  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert await pool.fetchval("SELECT count(*) FROM intake_replies WHERE sent_at IS NULL") == 3
        relay._producer.send = original  # type: ignore[method-assign]
        assert await relay.relay_once() == 3
    finally:
        await relay._producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM intake_replies WHERE sent_at IS NULL") == 0
    records = [r for _, r in await read_replies(kafka_bootstrap, topic)]
    # At-least-once: the two records acknowledged before the failure went out again; the key tells.
    assert [r.cause_key for r in records] == keys[:2] + keys
    assert len({r.reply_key for r in records}) == 3


async def test_a_reply_older_than_the_max_age_is_skipped_not_sent(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: Any
) -> None:
    topic = await kafka_topic_factory(partitions=1)
    await pool.execute("UPDATE intake_replies SET sent_at = now() WHERE sent_at IS NULL")
    old, fresh = await queue_replies(pool, conversations=1, per_conversation=2)
    await pool.execute(
        "UPDATE intake_replies SET created_at = now() - interval '2 days' WHERE idempotency_key = $1", old
    )
    relay = ReplyRelay(pool, kafka_bootstrap, topic)
    await relay._producer.start()
    try:
        assert await relay.relay_once() == 2
    finally:
        await relay._producer.stop()
    assert (relay.published, relay.skipped) == (1, 1)
    rows = await pool.fetch(
        "SELECT idempotency_key, sent_at, skipped FROM intake_replies WHERE idempotency_key = ANY($1)", [old, fresh]
    )
    state = {r["idempotency_key"]: (r["sent_at"] is not None, r["skipped"]) for r in rows}
    assert state == {old: (True, "older than 1 day, 0:00:00 when the relay saw it"), fresh: (True, None)}
    assert [r.cause_key for _, r in await read_replies(kafka_bootstrap, topic)] == [fresh]


async def test_a_run_and_its_restart_leave_no_producer_unclosed(
    pool: asyncpg.Pool, kafka_bootstrap: str, kafka_topic_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`run` used to replace the producer made with the relay by a new one, leaving the first one
    unclosed ("Unclosed AIOKafkaProducer" in intake's log at every start)."""
    topic = await kafka_topic_factory(partitions=1)
    relay = ReplyRelay(pool, kafka_bootstrap, topic)
    for _ in range(2):  # the first run, then a restart as the service's supervisor does after a crash
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await task
    gc.collect()
    assert "Unclosed AIOKafkaProducer" not in caplog.text
