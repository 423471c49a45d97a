"""Issue 21, faults: intake's webhook producer (`adapters/chat_inbound.ChatInbound`, what every webhook
awaits before its 202) after the broker restarts under load. Found by tests/chaos: with a plain
aiokafka idempotent producer some partitions then refused every send with `OutOfOrderSequenceNumber`
until intake restarted, so every webhook of their conversations was answered 503.

A private broker (the project's scripts, other ports; the shared one is never stopped) is stopped for
10 s while concurrent senders keep publishing, then started again. Afterwards a message of every
conversation (every partition) is accepted within a bounded time, and every acknowledged message is on
`chat.inbound` exactly once (none lost, none written twice by the producer's recovery)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.kafka_broker import PrivateKafka

from ticketflow.contracts.chat import ChatMessage, ChatSender, chat_message_decoder
from ticketflow.intake.adapters.chat_inbound import ChatInbound

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
TOPIC, PARTITIONS = "chat.inbound", 6
CONVERSATIONS = 60  # spread over every partition
SENDERS = 5
DOWN_S = 10
RECOVER_S = 60  # after the restart, every conversation's message is accepted within this


def message(conversation: int) -> ChatMessage:
    return ChatMessage(
        "express", "tenant", f"conversation-{conversation}", str(uuid.uuid4()), ChatSender("user"), "help",
        datetime.now(UTC),
    )  # fmt: skip


async def read_all(bootstrap: str, expected_at_least: int) -> list[ChatMessage]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read: list[ChatMessage] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            read += [chat_message_decoder.decode(r.value) for rs in batches.values() for r in rs if r.value]
        assert len(read) >= expected_at_least
        return read
    finally:
        await consumer.stop()


async def test_webhook_producer_accepts_every_conversation_again_after_a_broker_restart() -> None:
    with PrivateKafka() as kafka:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            await admin.close()
        inbound = ChatInbound(kafka.bootstrap, TOPIC)
        await inbound.start()
        acknowledged: list[str] = []
        refused: Counter[str] = Counter()
        stop = asyncio.Event()

        async def sender(first: int) -> None:
            turn = first
            while not stop.is_set():
                sent = message(turn % CONVERSATIONS)
                turn += SENDERS
                try:
                    await inbound.publish(sent)
                    acknowledged.append(sent.message_id)
                except Exception as exc:  # what intake answers 503 for; the load goes on
                    refused[type(exc).__name__] += 1
                await asyncio.sleep(0.02)

        try:
            senders = [asyncio.create_task(sender(i)) for i in range(SENDERS)]
            await asyncio.sleep(3)
            assert acknowledged, "nothing was accepted before the fault"
            await asyncio.to_thread(kafka.stop)
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(kafka.start)
            await asyncio.sleep(5)  # the load runs on the restarted broker
            stop.set()
            await asyncio.gather(*senders)

            # Every conversation (so every partition) is accepted again, without restarting the producer.
            pending = set(range(CONVERSATIONS))
            deadline = asyncio.get_running_loop().time() + RECOVER_S
            last_error: BaseException | None = None
            while pending and asyncio.get_running_loop().time() < deadline:
                for conversation in sorted(pending):
                    sent = message(conversation)
                    try:
                        await inbound.publish(sent)
                    except Exception as exc:
                        last_error = exc
                        continue
                    acknowledged.append(sent.message_id)
                    pending.discard(conversation)
                if pending:
                    await asyncio.sleep(1)
            assert not pending, f"{len(pending)} conversations refused: {last_error!r} (under load: {refused})"
        finally:
            stop.set()
            await inbound.stop()

        on_topic = Counter(m.message_id for m in await read_all(kafka.bootstrap, len(acknowledged)))
        assert [m for m in acknowledged if on_topic[m] == 0] == []  # none lost
        assert [m for m, n in on_topic.items() if n > 1] == []  # none written twice
