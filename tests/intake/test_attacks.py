"""Issue 21 item 4, against the running intake (a real process, the real PostgreSQL and Kafka): forged,
expired and wrong-audience BotX tokens, a wrong, replayed or revoked Bitrix24 application token, SQL
metacharacters in every text field, and bodies over the size limit on every route, declared or streamed.

Refused means a 4xx with the reason in JSON and nothing anywhere: no row in the event store or intake's
tables, no record on `chat.inbound` (where an accepted webhook goes first). Metacharacters are no attack on
a store that binds its parameters: they are stored and read back verbatim.

Covered elsewhere (not repeated here): a token signed with another secret, a missing one, a wrong
Bitrix24 application token (test_bad_input.py::test_each_bad_request_is_named_counted_and_writes_nothing);
a forged or replayed install (test_bitrix24_lifecycle.py::test_a_forged_install_is_refused_with_its_reason_
and_changes_nothing); a revoked install (test_bitrix24_lifecycle.py::test_an_uninstall_or_a_deleted_row_is_
refused_by_the_other_process_within_seconds); a replayed genuine event has one effect
(test_service.py::test_bitrix24_install_then_messages_with_duplicates); NUL characters (test_nul_text.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from intake_payloads import (
    APP_TOKEN,
    BOT_HOST,
    BOT_ID,
    BOT_SECRET,
    GENERIC_KEY,
    b24_install,
    b24_message,
    botx_headers,
    botx_message,
    botx_token,
    generic_message,
)
from intake_service import RunningIntake, seed_install
from pybotx.auth import build_botx_jwt_v2

from ticketflow.intake.platforms.web import MAX_BODY_BYTES

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GENERIC = {"Authorization": f"Bearer {GENERIC_KEY}", "Content-Type": "application/json"}
OTHER_PORTAL = "not-installed-portal"  # the tenant file's second portal (intake_payloads.py)
OTHER_TOKEN = "0123456789abcdef0123456789abcdef"
_STORED = """SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM intake_messages),
                    (SELECT count(*) FROM intake_conversations),
                    (SELECT count(*) FROM intake_replies), (SELECT count(*) FROM bitrix24_installs)"""
_OPENED = """SELECT data::text FROM events WHERE event_type = 'TicketOpened'
             AND data->'chat'->>'conversation_id' = $1"""


async def inbound_end(intake: RunningIntake) -> int:
    consumer = AIOKafkaConsumer(intake.topic, bootstrap_servers=intake.bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(intake.topic, p) for p in consumer.partitions_for_topic(intake.topic) or ()]
        assert partitions, intake.topic
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


class NothingStored:
    """What is stored and queued before, compared after: `async with nothing_stored(intake): ...`."""

    def __init__(self, intake: RunningIntake) -> None:
        self.intake = intake

    async def snapshot(self) -> tuple[Any, ...]:
        return (*tuple(await self.intake.pool.fetchrow(_STORED)), await inbound_end(self.intake))

    async def __aenter__(self) -> None:
        self.before = await self.snapshot()

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            await asyncio.sleep(1.0)  # anything taken by mistake would be recorded by now
            assert await self.snapshot() == self.before, "a refused request left something behind"


def v2_token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": str(BOT_ID), "aud": BOT_HOST, "exp": now + 60, "nbf": now, "iat": now, "version": 2,
               "jti": uuid.uuid4().hex, **claims}  # fmt: skip
    return jwt.encode(payload, BOT_SECRET, algorithm="HS256")


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]  # PyJWT: no key for "none"


def _signed(claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, BOT_SECRET, algorithm=algorithm)


NOW = int(time.time())
BAD_TOKENS = {
    "expired": build_botx_jwt_v2(bot_id=BOT_ID, bot_host=BOT_HOST, secret_key=BOT_SECRET, issued_at=NOW - 3600),
    "not yet valid": v2_token(nbf=NOW + 3600, iat=NOW + 3600, exp=NOW + 3660),
    "wrong audience": botx_token(host="cts.attacker.example"),
    "audience as a list": v2_token(aud=[BOT_HOST, "cts.attacker.example"]),
    "another bot's id": v2_token(iss=str(uuid.uuid4())),
    "algorithm none": _unsigned({"iss": str(BOT_ID), "aud": BOT_HOST, "exp": NOW + 3600, "version": 2}),
    "HS512 with the secret": _signed({"iss": str(BOT_ID), "aud": BOT_HOST, "exp": NOW + 3600, "version": 2}, "HS512"),
    "v1 token expired": _signed({"aud": [str(BOT_ID)], "iss": BOT_HOST, "exp": NOW - 3600}),
    "not a JWT": "eyJhbGciOiJIUzI1NiJ9.e30",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_botx_token_that_does_not_verify_is_refused_and_nothing_is_stored(
    intake: RunningIntake, case: str
) -> None:
    payload = botx_message("Не приходят уведомления", chat_id=uuid.uuid4())
    async with intake.client() as client, NothingStored(intake):
        answer = await client.post("/command", json=payload, headers=botx_headers(BAD_TOKENS[case]))
        status = await client.get("/status", params=_status_query(), headers=botx_headers(BAD_TOKENS[case]))
    assert answer.status_code == 401, (case, answer.text)
    assert answer.json()["error"] == "unverified_request"
    assert status.status_code == 401, (case, status.text)


def _status_query() -> dict[str, str]:
    return {"bot_id": str(BOT_ID), "chat_type": "chat", "user_huid": str(uuid.uuid4()), "ad_login": "",
            "ad_domain": "", "is_admin": "false"}  # fmt: skip


async def test_a_botx_token_remembered_after_it_verified_is_refused_once_it_expires(intake: RunningIntake) -> None:
    # intake remembers a verified token until its `exp` (platforms/botx.py): the memory must not outlive it.
    issued = int(time.time()) - 57  # pybotx's tokens live 60 s: this one has 3 s left
    token = build_botx_jwt_v2(bot_id=BOT_ID, bot_host=BOT_HOST, secret_key=BOT_SECRET, issued_at=issued)
    async with intake.client() as client:
        first = await client.post("/command", json=botx_message("x", chat_id=uuid.uuid4()), headers=botx_headers(token))
        assert first.status_code == 202, first.text
        await asyncio.sleep(max(0.0, issued + 60 + 1.5 - time.time()))  # past exp and pybotx's 1 s leeway
        async with NothingStored(intake):
            late = await client.post("/command", json=botx_message("x", chat_id=uuid.uuid4()),
                                     headers=botx_headers(token))  # fmt: skip
    assert late.status_code == 401, late.text
    assert late.json()["error"] == "unverified_request"


async def test_one_portals_application_token_does_not_open_another_portal(intake: RunningIntake) -> None:
    # A token captured from (or issued to) portal A, replayed with portal B's member_id.
    await seed_install(intake.pool)
    await seed_install(intake.pool, member_id=OTHER_PORTAL, token=OTHER_TOKEN)
    try:
        form = b24_message("x", dialog_id="chat1", message_id=str(uuid.uuid4().int % 10**9), member_id=OTHER_PORTAL,
                           token=APP_TOKEN)  # fmt: skip
        async with intake.client() as client, NothingStored(intake):
            answer = await client.post("/bitrix24/events", content=form, headers=FORM)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "wrong_application_token"
    finally:
        await intake.pool.execute("DELETE FROM bitrix24_installs WHERE member_id = $1", OTHER_PORTAL)


async def test_an_application_token_replaced_at_reinstall_is_refused_within_the_install_ttl(
    intake: RunningIntake,
) -> None:
    # The portal was reinstalled (a new application token): the old one is revoked, in every process
    # within the install cache's TTL (5 s by default, TICKETFLOW_B24_INSTALL_TTL).
    await seed_install(intake.pool)
    try:
        await seed_install(intake.pool, token=OTHER_TOKEN)
        deadline = time.monotonic() + 10
        async with intake.client() as client:
            while True:
                form = b24_message("x", dialog_id="chat2", message_id=str(uuid.uuid4().int % 10**9))
                answer = await client.post("/bitrix24/events", content=form, headers=FORM)
                if answer.status_code == 403:
                    break
                assert answer.status_code == 200 and time.monotonic() < deadline, answer.text
                await asyncio.sleep(0.25)
            assert answer.json()["error"] == "wrong_application_token"
            async with NothingStored(intake):
                again = await client.post("/bitrix24/events", headers=FORM, content=b24_message(
                    "x", dialog_id="chat2", message_id=str(uuid.uuid4().int % 10**9)))  # fmt: skip
            assert again.status_code == 403
    finally:
        await seed_install(intake.pool)  # the other tests' token


# Quotes, comment markers, statement separators, placeholders, LIKE wildcards, backslashes, JSON and
# PostgreSQL escapes, dollar quoting: each must come back exactly as sent.
METACHARACTERS = [
    "'; DROP TABLE events; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM intake_messages WHERE ('a'='a",
    "$1 $2 ::text /* */ %s %% _ \\",
    "E'\\x00' \\u0000 \\\\' $$ $tag$ x $tag$",
    '{"data": {"$ne": null}} ]]> <!--',
]


def _sql_text(n: int) -> str:
    return METACHARACTERS[n % len(METACHARACTERS)]


async def _opened(intake: RunningIntake, conversation_id: str) -> dict[str, Any]:
    async def probe() -> list[str]:
        return [r[0] for r in await intake.pool.fetch(_OPENED, conversation_id)]

    found = await intake.eventually(probe, bool, wait_s=20)
    assert len(found) == 1, (conversation_id, found)
    opened: dict[str, Any] = json.loads(found[0])
    return opened


@pytest.mark.parametrize("n", range(len(METACHARACTERS)))
async def test_sql_metacharacters_in_every_botx_text_field_are_stored_verbatim(intake: RunningIntake, n: int) -> None:
    text = _sql_text(n)
    chat = uuid.uuid4()
    payload = botx_message(f"{text} body", chat_id=chat, attachment=(f"{text}.log", b"trace", "text/plain"))
    payload["from"]["username"] = f"{text} name"
    async with intake.client() as client:
        answer = await client.post("/command", json=payload, headers=botx_headers())
    assert answer.status_code == 202, answer.text
    opened = await _opened(intake, str(chat))
    assert opened["text"] == f"{text} body"
    assert opened["requester"]["display_name"] == f"{text} name"
    assert [a["name"] for a in opened["attachments"]] == [f"{text}.log"]


@pytest.mark.parametrize("n", range(len(METACHARACTERS)))
async def test_sql_metacharacters_in_every_bitrix24_text_field_are_stored_verbatim(
    intake: RunningIntake, n: int
) -> None:
    text = _sql_text(n)
    await seed_install(intake.pool)
    dialog = f"chat{text}{uuid.uuid4().hex[:6]}"
    form = b24_message(f"{text} body", dialog_id=dialog, message_id=f"{text}-{uuid.uuid4().hex[:6]}")
    form = form.replace("%5BNAME%5D=Emily+Smith", "%5BNAME%5D=" + quote_plus(f"{text} name"))
    async with intake.client() as client:
        answer = await client.post("/bitrix24/events", content=form, headers=FORM)
    assert answer.status_code == 200, answer.text
    opened = await _opened(intake, dialog)
    assert opened["text"] == f"{text} body"
    assert opened["requester"]["display_name"] == f"{text} name"
    assert opened["platform_message_id"].startswith(text)


@pytest.mark.parametrize("n", range(len(METACHARACTERS)))
async def test_sql_metacharacters_in_every_generic_api_field_are_stored_verbatim(intake: RunningIntake, n: int) -> None:
    text = _sql_text(n)
    conversation = f"{text}-{uuid.uuid4().hex[:6]}"
    message = generic_message(f"{text} body", conversation_id=conversation, message_id=f"{text} id")
    message["sender"] = {"user_id": f"{text} user", "display_name": f"{text} name", "locale": "en"}
    async with intake.client() as client:
        answer = await client.post("/v1/messages", json=message, headers=GENERIC)
    assert answer.status_code == 202, answer.text
    opened = await _opened(intake, conversation)
    assert opened["text"] == f"{text} body"
    assert opened["platform_message_id"] == f"{text} id"
    assert opened["requester"]["display_name"] == f"{text} name"
    assert opened["requester"]["user_id"] == f"{text} user"


ROUTES: dict[str, tuple[dict[str, str], bytes]] = {
    "/command": (botx_headers(), json.dumps(botx_message("x", chat_id=uuid.uuid4())).encode()),
    "/notification/callback": (botx_headers(), b'{"sync_id": "' + str(uuid.uuid4()).encode() + b'"}'),
    "/bitrix24/events": (FORM, b24_message("x", dialog_id="big", message_id="1").encode()),
    "/bitrix24/events (install)": (FORM, b24_install().encode()),
    "/v1/messages": (GENERIC, json.dumps(generic_message("x", conversation_id="big", message_id="1")).encode()),
}


async def _padded(body: bytes, size: int, chunk: int = 16 * 1024) -> AsyncIterator[bytes]:
    """`body`, then filler up to `size` bytes, streamed without a content-length (chunked)."""
    yield body
    sent = len(body)
    while sent < size:
        piece = b" " * min(chunk, size - sent)
        sent += len(piece)
        yield piece


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_body_over_the_limit_is_refused_on_every_route_and_nothing_is_stored(
    intake: RunningIntake, route: str, declared: bool
) -> None:
    headers, body = ROUTES[route]
    if route == "/command":  # a fresh token: the one built at import may have expired
        headers = botx_headers()
    size = MAX_BODY_BYTES + 1
    async with intake.client() as client, NothingStored(intake):
        if declared:  # JSON and forms tolerate trailing whitespace: only the size is wrong
            content: bytes | AsyncIterator[bytes] = body + b" " * (size - len(body))
        else:
            content = _padded(body, size)
        answer = await client.post(route.split(" ")[0], content=content, headers=headers)
    assert answer.status_code == 413, (route, answer.status_code, answer.text[:300])
    assert answer.json()["error"] == "body_too_large"


async def test_a_body_at_the_limit_is_read(intake: RunningIntake) -> None:
    # The limit is the limit, not less: the same message padded to exactly MAX_BODY_BYTES is taken.
    chat = uuid.uuid4()
    body = json.dumps(botx_message("at the limit", chat_id=chat)).encode()
    async with intake.client() as client:
        answer = await client.post("/command", content=body + b" " * (MAX_BODY_BYTES - len(body)),
                                   headers=botx_headers())  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert (await _opened(intake, str(chat)))["text"] == "at the limit"
