"""A NUL character (U+0000) at every intake entry point, against the running service, the real PostgreSQL
(whose `jsonb` and `text` refuse NUL) and Kafka.

The rule (docs/intake.md "NUL characters"): in a customer's free text (message text, display name, file
name ...) each NUL becomes U+FFFD and the message is stored; in an identifier (conversation, message,
user, tenant id) it is malformed input: a 422 naming the field over HTTP, a dead letter naming it on
`chat.inbound`, nothing written, and the other records of the batch are recorded all the same."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from intake_payloads import GENERIC_KEY, b24_install, b24_message, botx_headers, botx_message, generic_message
from intake_service import RunningIntake, migrate_intake, seed_install, start_intake, stop_intake

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.values import Attachment

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GENERIC = {"Authorization": f"Bearer {GENERIC_KEY}"}
NUL, FFFD = "\x00", "\ufffd"

_OPENED = """SELECT data::text AS data FROM events
             WHERE event_type = 'TicketOpened' AND data->'chat'->>'conversation_id' = $1"""
_COUNTS = """SELECT (SELECT count(*) FROM intake_messages), (SELECT count(*) FROM intake_conversations),
                    (SELECT count(*) FROM events), (SELECT count(*) FROM intake_replies)"""


async def opened(intake: RunningIntake, conversation_id: str) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in await intake.pool.fetch(_OPENED, conversation_id)]

    found: list[dict[str, Any]] = await intake.eventually(probe, bool, wait_s=15)
    return found


async def test_botx_free_text_with_nul_is_stored_with_replacement_characters(intake: RunningIntake) -> None:
    chat = uuid.uuid4()
    payload = botx_message(f"printer{NUL}broken", chat_id=chat, attachment=(f"log{NUL}.txt", b"trace", "text/plain"))
    payload["from"]["username"] = f"Ив{NUL}ан"
    async with intake.client() as client:
        answer = await client.post("/command", json=payload, headers=botx_headers())
    assert answer.status_code == 202, answer.text
    [event] = await opened(intake, str(chat))
    assert event["text"] == f"printer{FFFD}broken"
    assert event["requester"]["display_name"] == f"Ив{FFFD}ан"
    assert [a["name"] for a in event["attachments"]] == [f"log{FFFD}.txt"]


async def test_bitrix24_free_text_with_nul_is_stored_and_an_id_with_nul_is_refused(intake: RunningIntake) -> None:
    dialog = f"chat{uuid.uuid4().int % 10**9}"
    async with intake.client() as client:
        await seed_install(intake.pool)
        form = b24_message(f"нет{NUL}связи", dialog_id=dialog, message_id="501").replace(
            "%5BNAME%5D=Emily+Smith", "%5BNAME%5D=Emily%00Smith"
        )
        assert "Emily%00Smith" in form
        answer = await client.post("/bitrix24/events", content=form, headers=FORM)
        assert answer.status_code == 200, answer.text
        [event] = await opened(intake, dialog)
        assert event["text"] == f"нет{FFFD}связи"
        assert event["requester"]["display_name"] == f"Emily{FFFD}Smith"

        before = tuple(await intake.pool.fetchrow(_COUNTS))
        for bad in (
            b24_message("x", dialog_id=f"chat{NUL}1", message_id="502"),
            b24_message("x", dialog_id=dialog, message_id=f"5{NUL}03"),
            b24_message("x", dialog_id=dialog, message_id="504").replace(
                "data%5BUSER%5D%5BID%5D=27", "data%5BUSER%5D%5BID%5D=2%007"
            ),
        ):
            assert "%00" in bad
            refused = await client.post("/bitrix24/events", content=bad, headers=FORM)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "invalid_payload"
            assert "NUL" in refused.json()["detail"]
    await asyncio.sleep(1.0)  # anything accepted by mistake would be recorded by now
    assert tuple(await intake.pool.fetchrow(_COUNTS)) == before


async def test_bitrix24_install_with_nul_in_the_portal_domain_is_refused_not_a_503(intake: RunningIntake) -> None:
    form = b24_install(domain=f"evil{NUL}.bitrix24.com")
    async with intake.client() as client:
        answer = await client.post("/bitrix24/events", content=form, headers=FORM)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_payload" and "NUL" in answer.json()["detail"]


async def test_generic_api_free_text_with_nul_is_stored_and_ids_with_nul_are_refused(intake: RunningIntake) -> None:
    conversation = f"g-{uuid.uuid4()}"
    body = generic_message(f"hello{NUL}world", conversation_id=conversation, message_id="m-1")
    body["sender"] = {**body["sender"], "display_name": f"A{NUL}nn", "email": f"ann{NUL}@example.com"}
    body["attachments"] = [{"name": f"shot{NUL}.png", "mime_type": "image/png"}]
    async with intake.client() as client:
        answer = await client.post("/v1/messages", json=body, headers=GENERIC)
        assert answer.status_code == 202, answer.text
        [event] = await opened(intake, conversation)
        assert event["text"] == f"hello{FFFD}world"
        assert event["requester"]["display_name"] == f"A{FFFD}nn"
        assert event["requester"]["email"] == f"ann{FFFD}@example.com"
        assert [a["name"] for a in event["attachments"]] == [f"shot{FFFD}.png"]

        before = tuple(await intake.pool.fetchrow(_COUNTS))
        fine = generic_message("x", conversation_id=conversation, message_id="m-2")
        for bad in (
            {**fine, "conversation_id": f"g{NUL}1"},
            {**fine, "message_id": f"m{NUL}2"},
            {**fine, "sender": {**fine["sender"], "user_id": f"u{NUL}1"}},
        ):
            refused = await client.post("/v1/messages", json=bad, headers=GENERIC)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "invalid_payload"
            assert "NUL" in refused.json()["detail"]
    await asyncio.sleep(1.0)
    assert tuple(await intake.pool.fetchrow(_COUNTS)) == before


async def test_store_mode_stores_free_text_with_nul_and_refuses_an_id_with_nul(
    pg_database: str, kafka_bootstrap: str, tmp_path: Any
) -> None:
    """TICKETFLOW_INTAKE_ACCEPT=store writes before answering: a NUL must not become a 503 (an outage the
    platform would retry forever) there either."""
    await migrate_intake(pg_database)
    env = {"TICKETFLOW_INTAKE_CONSUME": "0"}
    direct = await start_intake(pg_database, kafka_bootstrap, tmp_path, accept="store", extra_env=env)
    try:
        conversation = f"s-{uuid.uuid4()}"
        body = generic_message(f"stored{NUL}now", conversation_id=conversation, message_id="s-1")
        async with direct.client() as client:
            answer = await client.post("/v1/messages", json=body, headers=GENERIC)
            assert answer.status_code == 202, answer.text
            [event] = await opened(direct, conversation)  # written before the answer
            assert event["text"] == f"stored{FFFD}now"
            refused = await client.post("/v1/messages", json={**body, "message_id": f"s{NUL}2"}, headers=GENERIC)
            assert refused.status_code == 422 and "NUL" in refused.json()["detail"], refused.text
    finally:
        await stop_intake(direct)


async def test_chat_inbound_batch_with_nul_records_the_rest_and_dead_letters_bad_ids(intake: RunningIntake) -> None:
    now = datetime.now(UTC)

    def message(conversation: str, message_id: str, text: str) -> ChatMessage:
        return ChatMessage(
            platform="generic",
            tenant_id="acme-helpdesk",
            conversation_id=conversation,
            message_id=message_id,
            sender=ChatSender("u-7", f"Ka{NUL}te"),
            text=text,
            received_at=now,
            attachments=(Attachment(f"a{NUL}.txt"),),
        )

    with_nul, plain = f"k-nul-{uuid.uuid4()}", f"k-plain-{uuid.uuid4()}"
    bad_id = message(f"k-bad{NUL}-{uuid.uuid4()}", "k-3", "bad conversation id")
    producer = AIOKafkaProducer(bootstrap_servers=intake.bootstrap)
    await producer.start()
    try:
        # One partition for all three (same key): one batch, the bad record between the good ones.
        for record in (message(with_nul, "k-1", f"before{NUL}after"), bad_id, message(plain, "k-2", "plain")):
            await producer.send(intake.topic, msgspec.json.encode(record), key=b"one-partition", partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    [first] = await opened(intake, with_nul)
    assert first["text"] == f"before{FFFD}after"
    assert first["requester"]["display_name"] == f"Ka{FFFD}te"
    assert [a["name"] for a in first["attachments"]] == [f"a{FFFD}.txt"]
    [second] = await opened(intake, plain)
    assert second["text"] == "plain"
    [dead] = await intake.dead_letters(2, wait_s=5)  # one, and no other
    assert dead.reason == "invalid_record"
    assert "conversation_id" in dead.detail and "NUL" in dead.detail
    assert msgspec.json.decode(dead.value, type=ChatMessage) == bad_id  # the record as it came, nothing lost
