"""The running service (uvicorn subprocess) against the real PostgreSQL and Kafka: real-shaped platform
requests in, ticket events out, exactly one effect per platform message."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from intake_payloads import (
    BOT_ID,
    GENERIC_KEY,
    MEMBER_ID,
    b24_message,
    botx_chat_created,
    botx_headers,
    botx_message,
    generic_message,
)
from intake_service import RunningIntake, seed_install

from ticketflow.cli.app import main
from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.ticket_events import TicketReferred
from ticketflow.eventstore.store import EventStore, new_event

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

_EVENTS = """
WITH t AS (SELECT stream_id FROM events
           WHERE event_type = 'TicketOpened' AND data->'chat'->>'conversation_id' = $1)
SELECT event_type, stream_id, data::text AS data FROM events
WHERE stream_id IN (SELECT stream_id FROM t) ORDER BY position
"""


async def events_of(intake: RunningIntake, conversation_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await intake.pool.fetch(_EVENTS, conversation_id)
    return [(r["event_type"], r["stream_id"], json.loads(r["data"])) for r in rows]


async def wait_events(intake: RunningIntake, conversation_id: str, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    await intake.eventually(lambda: events_of(intake, conversation_id), lambda e: len(e) >= count)
    await asyncio.sleep(0.5)  # and nothing more arrives
    return await events_of(intake, conversation_id)


async def test_botx_message_opens_a_ticket_with_self_help_reply(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    payload = botx_message("Не приходят уведомления", chat_id=chat, attachment=("log.txt", b"trace", "text/plain"))
    async with intake.client() as client:
        answer = await client.post("/command", json=payload, headers=botx_headers())
    assert (answer.status_code, answer.json()) == (202, {"result": "accepted"})
    [(kind, _stream, data)] = await wait_events(intake, str(chat), 1)
    assert kind == "TicketOpened" and data["desk_id"] == "express" and data["track_id"] == "client"
    assert data["platform_message_id"] == payload["sync_id"] and data["text"] == "Не приходят уведомления"
    assert data["attachments"] == [{"name": "log.txt", "mime_type": "text/plain", "size": 5, "url": None}]
    replies = await intake.pool.fetch("SELECT reason, body FROM intake_replies WHERE conversation_id = $1", str(chat))
    assert [r["reason"] for r in replies] == ["self_help_hints"] and "VPN" in replies[0]["body"]


async def test_twenty_identical_deliveries_have_one_effect(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    payload = botx_message("дубли", chat_id=chat)
    async with intake.client() as client:
        answers = await asyncio.gather(
            *(client.post("/command", json=payload, headers=botx_headers()) for _ in range(20))
        )
    assert {a.status_code for a in answers} == {202}
    events = await wait_events(intake, str(chat), 1)
    assert [e[0] for e in events] == ["TicketOpened"]
    key = f"express:{BOT_ID}:{payload['sync_id']}"
    assert await intake.pool.fetchval("SELECT count(*) FROM intake_messages WHERE idempotency_key = $1", key) == 1


async def test_twenty_different_first_messages_share_one_ticket(intake: RunningIntake) -> None:
    chat, user = uuid.uuid4(), uuid.uuid4()
    payloads = [botx_message(f"сообщение {n}", chat_id=chat, user_huid=user) for n in range(20)]
    async with intake.client() as client:
        answers = await asyncio.gather(*(client.post("/command", json=p, headers=botx_headers()) for p in payloads))
    assert {a.status_code for a in answers} == {202}
    events = await wait_events(intake, str(chat), 20)
    kinds = [e[0] for e in events]
    assert kinds.count("TicketOpened") == 1 and kinds.count("CustomerMessageAdded") == 19
    assert len({e[1] for e in events}) == 1
    ids = {e[2]["platform_message_id"] for e in events}
    assert ids == {p["sync_id"] for p in payloads}


async def test_message_after_the_ticket_was_referred_opens_a_new_one(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    async with intake.client() as client:
        await client.post("/command", json=botx_message("первое", chat_id=chat), headers=botx_headers())
        [(_, stream, first)] = await wait_events(intake, str(chat), 1)
        ticket_id = uuid.UUID(first["ticket_id"])
        store = EventStore(intake.pool)
        referred = TicketReferred(ticket_id, "custom_development", "partners")
        from datetime import UTC, datetime

        await store.append(ticket_stream(ticket_id), 1, [new_event(referred, datetime.now(UTC))])
        await client.post("/command", json=botx_message("второе", chat_id=chat), headers=botx_headers())
    events = await wait_events(intake, str(chat), 3)
    opened = [e for e in events if e[0] == "TicketOpened"]
    assert len(opened) == 2 and opened[1][1] != stream and opened[1][2]["text"] == "второе"


async def test_status_command_is_answered_without_events(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    async with intake.client() as client:
        await client.post("/command", json=botx_message("проблема", chat_id=chat), headers=botx_headers())
        await wait_events(intake, str(chat), 1)
        status = botx_message("/status", chat_id=chat)
        assert (await client.post("/command", json=status, headers=botx_headers())).status_code == 202
    key = f"express:{BOT_ID}:{status['sync_id']}"
    outcome = await intake.eventually(
        lambda: intake.pool.fetchval("SELECT outcome FROM intake_messages WHERE idempotency_key = $1", key),
        lambda v: v is not None,
    )
    assert outcome == "status"
    assert len(await events_of(intake, str(chat))) == 1


async def test_system_event_is_accepted_and_writes_nothing(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    before = await intake.metric("ticketflow_intake_ignored_total", kind="system:chat_created")
    async with intake.client() as client:
        answer = await client.post("/command", json=botx_chat_created(chat, uuid.uuid4()), headers=botx_headers())
    assert answer.status_code == 202
    assert await intake.metric("ticketflow_intake_ignored_total", kind="system:chat_created") == before + 1
    assert (
        await intake.pool.fetchval("SELECT count(*) FROM intake_conversations WHERE conversation_id = $1", str(chat))
        == 0
    )


async def test_bitrix24_install_then_messages_with_duplicates(intake: RunningIntake) -> None:
    dialog = f"chat{uuid.uuid4().int % 10**6}"
    async with intake.client() as client:
        await seed_install(intake.pool)  # verified installs: test_bitrix24_lifecycle.py
        first = b24_message("Не работает /pub/", dialog_id=dialog, message_id="90001")
        answers = await asyncio.gather(
            *(client.post("/bitrix24/events", content=first, headers=FORM) for _ in range(10))
        )
        assert {a.status_code for a in answers} == {200}
        second = b24_message("Ещё деталь", dialog_id=dialog, message_id="90002")
        assert (await client.post("/bitrix24/events", content=second, headers=FORM)).status_code == 200
        forged = b24_message("x", dialog_id=dialog, message_id="90003", token="0" * 32)
        refused = await client.post("/bitrix24/events", content=forged, headers=FORM)
        assert refused.status_code == 403 and refused.json()["error"] == "wrong_application_token"
    events = await wait_events(intake, dialog, 2)
    assert [e[0] for e in events] == ["TicketOpened", "CustomerMessageAdded"]
    opened = events[0][2]
    assert opened["desk_id"] == "bitrix24-box" and opened["chat"]["tenant_id"] == MEMBER_ID
    assert opened["requester"]["display_name"] == "Emily Smith"


async def test_generic_api_accepts_with_the_tenant_key(intake: RunningIntake) -> None:
    conversation = f"conv-{uuid.uuid4()}"
    body = generic_message("Help", conversation_id=conversation, message_id="g-1")
    headers = {"Authorization": f"Bearer {GENERIC_KEY}", "Idempotency-Key": "d-1"}
    async with intake.client() as client:
        answers = await asyncio.gather(*(client.post("/v1/messages", json=body, headers=headers) for _ in range(5)))
        assert {a.status_code for a in answers} == {202}
        wrong = await client.post("/v1/messages", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        doc = (await client.get("/openapi.json")).json()
    assert "/v1/messages" in doc["paths"]
    assert [e[0] for e in await wait_events(intake, conversation, 1)] == ["TicketOpened"]


async def test_chat_inbound_topic_records_and_dead_letters(intake: RunningIntake) -> None:
    conversation = f"kafka-{uuid.uuid4()}"
    good = ChatMessage(
        platform="generic",
        tenant_id="acme-helpdesk",
        conversation_id=conversation,
        message_id="k-1",
        sender=ChatSender("u-7", "Kate"),
        text="from kafka",
        received_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
    )
    unknown_tenant = msgspec.structs.replace(good, tenant_id="nobody", message_id="k-2")
    producer = AIOKafkaProducer(bootstrap_servers=intake.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(intake.topic, b"{not json", key=b"bad")
        await producer.send_and_wait(intake.topic, b'{"schema": "chat.message/v9"}', key=b"bad")
        await producer.send_and_wait(intake.topic, msgspec.json.encode(unknown_tenant), key=b"bad")
        await producer.send_and_wait(intake.topic, msgspec.json.encode(good), key=conversation.encode())
        await producer.send_and_wait(intake.topic, msgspec.json.encode(good), key=conversation.encode())
    finally:
        await producer.stop()
    assert [e[0] for e in await wait_events(intake, conversation, 1)] == ["TicketOpened"]
    letters = await intake.dead_letters(3)
    assert sorted(d.reason for d in letters) == ["invalid_record", "invalid_record", "unknown_tenant"]
    assert {(d.original_topic, d.consumer) for d in letters} == {(intake.topic, "intake")}
    assert await intake.metric("ticketflow_dead_letters_total", reason="invalid_record", consumer="intake") >= 2


async def test_the_cli_shows_why_a_chat_inbound_record_was_dead_lettered(
    intake: RunningIntake, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ticketflow dlq show chat.inbound` (now `dlq list`, docs/operations.md) printed `?` as the reason of
    every intake dead letter: intake wrote its own headers. Now they are written as every consumer's are."""
    producer = AIOKafkaProducer(bootstrap_servers=intake.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(intake.topic, b"{not json", key=b"cli")
    finally:
        await producer.stop()
    letters = await intake.eventually(
        lambda: intake.dead_letters(100, wait_s=1), lambda found: any(d.key == b"cli" for d in found)
    )
    assert [d.reason for d in letters if d.key == b"cli"] == ["invalid_record"]
    argv = ["--bootstrap", intake.bootstrap, "--json", "dlq", "list", intake.topic, "--limit", "100"]
    assert await asyncio.to_thread(main, argv) == 0
    shown = [d for d in json.loads(capsys.readouterr().out) if d["key"] == "cli"]
    assert shown and all(d["original_topic"] == intake.topic for d in shown), shown
    assert all(d["reason"] == "invalid_record" for d in shown), shown


async def test_ticket_events_reach_kafka_through_the_relay(intake: RunningIntake) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from ticketflow.messaging.relay import Relay

    topic = f"ticket.events.intake-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=intake.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    chat = uuid.uuid4()
    try:
        async with intake.client() as client:
            payload = botx_message("до Кафки", chat_id=chat)
            assert (await client.post("/command", json=payload, headers=botx_headers())).status_code == 202
        [(_, stream, _)] = await wait_events(intake, str(chat), 1)
        relay = Relay(
            EventStore(intake.pool), intake.bootstrap, name=f"test-relay-{topic}", topic_names={"ticket.events": topic}
        )
        await relay.drain()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=intake.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            found: list[Any] = []
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=500)
                found += [r for records in batch.values() for r in records if r.key == stream.split("-", 1)[1].encode()]
                if found:
                    break
        finally:
            await consumer.stop()
        [record] = found
        envelope = json.loads(record.value)
        assert envelope["stream_id"] == stream and envelope["event"]["type"] == "TicketOpened"
        assert envelope["event"]["platform_message_id"] == payload["sync_id"]
    finally:
        await admin.delete_topics([topic])
        await admin.close()
