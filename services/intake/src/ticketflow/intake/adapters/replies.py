"""The reply relay: queued `intake_replies` rows out to `chat.replies` as `ChatReply` records.

Intake queues a reply (self-help hints, `/status` and `/close` answers) in the transaction that decided
it; this relay publishes what is unsent and notifications delivers it. At-least-once:

1. one transaction per round: `pg_try_advisory_xact_lock` (a leader lock: with two intake processes only
   one relays at a time, so replies of one conversation leave in order) and the oldest unsent rows
   `FOR UPDATE SKIP LOCKED` (belt and braces: a row is never claimed twice at once);
2. every row is sent with the idempotent producer (acks=all), keyed by conversation
   (`platform:tenant:conversation`, as on chat.inbound: one conversation, one partition, in order);
3. only after the broker acknowledged every record is `sent_at` set, and the transaction commits.
   A record carries the causing message's `traceparent` (stored with the reply), so its delivery is
   part of the message's trace.
   A failure anywhere rolls back: the rows are sent again next round.

A reply older than `max_age_s` (24 h) when the relay first sees it is not sent: it is marked done with
`skipped` saying why (after a long outage, a "/status" answer from yesterday is noise). Migration 0003
marked the replies queued before the relay existed the same way.

A republished record carries the same `reply_key` (`<cause idempotency key>#<reason>`: a message
causes at most one reply of each reason), so the consumer recognises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ticketflow.contracts.chat import ChatReply
from ticketflow.contracts.topics import CHAT_REPLIES
from ticketflow.contracts.values import ChatRef
from ticketflow.messaging import tracing
from ticketflow.messaging.producer import PRODUCER_BROKEN, make_producer
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger("ticketflow.intake")
_encoder = msgspec.json.Encoder()

_LEADER = "SELECT pg_try_advisory_xact_lock(hashtextextended('ticketflow-intake-reply-relay', 0))"
_CLAIM = """
SELECT r.reply_id, r.idempotency_key, r.platform, r.tenant_id, r.conversation_id, r.reason, r.body,
       r.created_at, r.traceparent, m.ticket_id, p.domain
FROM intake_replies r
JOIN intake_messages m ON m.idempotency_key = r.idempotency_key
LEFT JOIN bitrix24_installs p ON r.platform = 'bitrix24' AND p.member_id = r.tenant_id
WHERE r.sent_at IS NULL
ORDER BY r.reply_id
LIMIT $1
FOR UPDATE OF r SKIP LOCKED
"""
_MARK_SENT = "UPDATE intake_replies SET sent_at = now() WHERE reply_id = ANY($1::bigint[])"
_MARK_SKIPPED = "UPDATE intake_replies SET sent_at = now(), skipped = $2 WHERE reply_id = ANY($1::bigint[])"


def reply_key(cause_key: str, reason: str) -> str:
    return f"{cause_key}#{reason}"


def to_chat_reply(row: Any) -> ChatReply:
    platform = row["platform"]
    domain = row["domain"]
    created: datetime = row["created_at"]
    return ChatReply(
        reply_key=reply_key(row["idempotency_key"], row["reason"]),
        chat=ChatRef(
            platform,
            row["tenant_id"],
            row["conversation_id"],
            f"https://{domain}/" if platform == "bitrix24" and domain else None,
        ),
        reason=row["reason"],
        body=row["body"],
        cause_key=row["idempotency_key"],
        created_at=created,
        ticket_id=str(row["ticket_id"]) if row["ticket_id"] is not None else None,
    )


class ReplyRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str = CHAT_REPLIES,
        *,
        batch: int = 500,
        interval_s: float = 0.2,
        max_age_s: float = 86_400.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.pool = pool
        self.security = security
        self.bootstrap = bootstrap
        self.topic = topic
        self.batch = batch
        self.interval_s = interval_s
        self.max_age = timedelta(seconds=max_age_s)
        self.published = 0
        self.skipped = 0
        self._producer = self._new_producer()
        self._producer_used = False  # run() starts this one; a restarted run() needs a fresh one

    def _new_producer(self) -> AIOKafkaProducer:
        return make_producer(
            self.bootstrap, self.security, linger_ms=1, request_timeout_ms=10_000, client_id="ticketflow-intake-replies"
        )

    async def relay_once(self) -> int:
        """Publish one round of unsent replies; returns how many rows were done (0: none, or not leader)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(_LEADER):
                return 0
            claimed = await conn.fetch(_CLAIM, self.batch)
            if not claimed:
                return 0
            oldest = datetime.now(UTC) - self.max_age
            rows = [row for row in claimed if row["created_at"] >= oldest]
            stale = [row["reply_id"] for row in claimed if row["created_at"] < oldest]
            if stale:
                log.warning("reply relay: %d replies older than %s not sent", len(stale), self.max_age)
                await conn.execute(_MARK_SKIPPED, stale, f"older than {self.max_age} when the relay saw it")
            acks = []
            for row in rows:  # send() enqueues in call order; the idempotent producer keeps that order
                reply = to_chat_reply(row)
                key = f"{reply.chat.platform}:{reply.chat.tenant_id}:{reply.chat.conversation_id}".encode()
                headers = [("x-reply-key", reply.reply_key.encode())]
                if row["traceparent"]:  # the causing message's trace: delivering the reply continues it
                    headers.append((tracing.TRACEPARENT, row["traceparent"].encode()))
                acks.append(await self._producer.send(self.topic, _encoder.encode(reply), key=key, headers=headers))
            await asyncio.gather(*acks)  # raises if any record was not acknowledged: nothing is marked
            await conn.execute(_MARK_SENT, [row["reply_id"] for row in rows])
        self.published += len(rows)
        self.skipped += len(stale)
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """The background loop (started and supervised by ticketflow.runtime.service: restarted after a
        crash, with a fresh producer, since a producer whose start failed cannot be started again)."""
        if self._producer_used:  # the first run uses the producer made with the relay (not left unclosed)
            self._producer = self._new_producer()
        self._producer_used = True
        await self._producer.start()
        try:
            while not stop.is_set():
                try:
                    sent = await self.relay_once()
                except PRODUCER_BROKEN as exc:  # its sender stopped for good: only a new producer sends again
                    log.warning("reply relay: producer broken (%r), starting a new one; the rows stay unsent", exc)
                    with contextlib.suppress(KafkaError):  # closing it may raise what stopped it
                        await self._producer.stop()
                    self._producer = self._new_producer()
                    await self._producer.start()
                    sent = 0
                except Exception as exc:  # broker or database trouble: the rows stay unsent, try again
                    log.warning("reply relay: round failed, will retry: %r", exc)
                    sent = 0
                if sent < self.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
        finally:
            await self._producer.stop()
