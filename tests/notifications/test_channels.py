"""Each channel client against a real local server speaking its platform's protocol."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from fakes.asgi import Fault
from fakes.bitrix24 import FakeBitrix24
from fakes.botx import FakeBotX
from fakes.smtp import FakeSmtp
from fakes.webhook import FakeWebhookReceiver
from pybotx import BotXAuthVersion
from support.bitrix24 import installed_portal, portal_rest

from ticketflow.notifications.adapters.channels import (
    Bitrix24Channel,
    EmailChannel,
    ExpressBot,
    ExpressChannel,
    OutcomeUnknown,
    PermanentFailure,
    SmtpRelay,
    TemporaryFailure,
    WebhookChannel,
    WebhookEndpoint,
)
from ticketflow.notifications.domain.model import OutgoingMessage

BOT_ID = uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee")
SECRET = "bot-secret-0123456789abcdef0123456789abcdef"
CHAT = uuid.UUID("dcfa5a7c-7cc4-4c89-b6c0-80325604f9f4")


def message(destination: str, address: str, body: str = "Привет, #42 открыт") -> OutgoingMessage:
    return OutgoingMessage(
        key="k-" + uuid.uuid4().hex,
        destination=destination,
        address=address,
        subject="Обращение 42",
        body=body,
        locale="ru",
        template="ticket_opened",
        event_id="e-1",
        recipient="u-1",
    )


@pytest.mark.filterwarnings("ignore:BotX auth v1 is deprecated:DeprecationWarning")  # v1 on purpose
@pytest.mark.parametrize("auth_version", [BotXAuthVersion.V2, BotXAuthVersion.V1])
async def test_express_sends_through_pybotx_with_valid_auth(auth_version: BotXAuthVersion) -> None:
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        channel = ExpressChannel(
            [ExpressBot(BOT_ID, fake.base_url, SECRET)], auth_version=auth_version, callback_timeout=5
        )
        try:
            sync_id = await channel.send(message(str(BOT_ID), str(CHAT)))
            # No callback will reach this process: pybotx's per-message bookkeeping is released.
            assert channel.bot._callbacks_manager._callback_alarms == {}
        finally:
            await channel.aclose()
    assert uuid.UUID(sync_id)
    assert [(r.bot_id, r.chat_id, r.body) for r in fake.received] == [(BOT_ID, CHAT, "Привет, #42 открыт")]
    assert fake.token_requests == (1 if auth_version is BotXAuthVersion.V1 else 0)


async def test_express_wrong_secret_is_permanent() -> None:
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        channel = ExpressChannel([ExpressBot(BOT_ID, fake.base_url, "wrong-secret-0123456789abcdef0123456789")])
        try:
            with pytest.raises(PermanentFailure, match="credentials"):
                await channel.send(message(str(BOT_ID), str(CHAT)))
        finally:
            await channel.aclose()
    assert fake.received == [] and fake.rejected_auth == 1


@pytest.mark.parametrize(
    ("status", "expected"), [(503, TemporaryFailure), (429, TemporaryFailure), (400, PermanentFailure)]
)
async def test_express_status_classification(status: int, expected: type[Exception]) -> None:
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        fake.fail_next(status, retry_after="3")
        channel = ExpressChannel([ExpressBot(BOT_ID, fake.base_url, SECRET)])
        try:
            with pytest.raises(expected) as caught:
                await channel.send(message(str(BOT_ID), str(CHAT)))
        finally:
            await channel.aclose()
    if isinstance(caught.value, TemporaryFailure):
        assert caught.value.retry_after == 3.0
    assert fake.received == []


async def test_express_garbage_answer_is_permanent_not_retried() -> None:
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        fake.fail_next(202, body=b"<html>proxy error</html>")
        channel = ExpressChannel([ExpressBot(BOT_ID, fake.base_url, SECRET)])
        try:
            with pytest.raises(PermanentFailure, match="unrecognised answer"):
                await channel.send(message(str(BOT_ID), str(CHAT)))
        finally:
            await channel.aclose()


async def test_express_unknown_chat_is_permanent_in_sync_mode() -> None:
    async with FakeBotX({BOT_ID: SECRET}, known_chats=[CHAT]).running() as fake:
        channel = ExpressChannel([ExpressBot(BOT_ID, fake.base_url, SECRET)], synchronous=True)
        try:
            with pytest.raises(PermanentFailure, match="unknown chat"):
                await channel.send(message(str(BOT_ID), str(uuid.uuid4())))
            await channel.send(message(str(BOT_ID), str(CHAT)))
        finally:
            await channel.aclose()
    assert len(fake.undeliverable) == 1 and len(fake.received) == 1


async def test_express_connection_refused_is_temporary() -> None:
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        dead_url = fake.base_url
    channel = ExpressChannel([ExpressBot(BOT_ID, dead_url, SECRET)])
    try:
        with pytest.raises(TemporaryFailure, match="connection"):
            await channel.send(message(str(BOT_ID), str(CHAT)))
    finally:
        await channel.aclose()


@pytest.mark.pg
async def test_bitrix24_sends_imbot_message_add_with_the_installs_bot_and_token(pool: asyncpg.Pool) -> None:
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        rest = await installed_portal(fake, pool)
        channel = Bitrix24Channel(rest)
        message_id = await channel.send(message("portal-1", "chat15"))
    [bot_id] = fake.bots
    assert message_id == "1001"
    assert [(r.bot_id, r.dialog_id, r.message) for r in fake.received] == [(bot_id, "chat15", "Привет, #42 открыт")]


@pytest.mark.pg
async def test_bitrix24_a_token_that_expired_is_renewed_and_the_message_delivered(pool: asyncpg.Pool) -> None:
    """Issue 16: after about an hour every chat notification failed as `expired_token` (permanent)."""
    async with FakeBitrix24(member_id="portal-1", access_ttl=2.0).running() as fake:
        channel = Bitrix24Channel(await installed_portal(fake, pool))
        await channel.send(message("portal-1", "chat1"))
        await asyncio.sleep(2.5)  # the access token expires during the test
        await channel.send(message("portal-1", "chat2"))
    assert [r.dialog_id for r in fake.received] == ["chat1", "chat2"]
    assert fake.renewed() >= 2  # the install's verification, then the expired token's renewal


@pytest.mark.pg
@pytest.mark.parametrize(
    ("prepare", "expected", "match"),
    [
        (lambda f: f.query_limit_next(), TemporaryFailure, "QUERY_LIMIT_EXCEEDED"),
        (lambda f: f.fail_next(500), TemporaryFailure, "INTERNAL_SERVER_ERROR"),
        (lambda f: f.fail_next(502, body=b"Bad gateway"), TemporaryFailure, "http_502"),
        (lambda f: f.fail_next(200, body=b"not json at all"), PermanentFailure, "unrecognised answer"),
        (lambda f: f.fail_next(200, body={"result": {"weird": "shape"}}), PermanentFailure, "unrecognised"),
        (lambda f: f.fail_next(200, body={"result": False}), PermanentFailure, "result=false"),
        (lambda f: f.fail_next(400, body={"error": "DIALOG_ID_EMPTY"}), PermanentFailure, "DIALOG_ID_EMPTY"),
    ],
)
async def test_bitrix24_answers_are_classified(prepare, expected, match, pool: asyncpg.Pool) -> None:  # type: ignore[no-untyped-def]
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        channel = Bitrix24Channel(await installed_portal(fake, pool))
        prepare(fake)
        with pytest.raises(expected, match=match):
            await channel.send(message("portal-1", "chat15"))
    assert fake.received == []


@pytest.mark.pg
async def test_bitrix24_without_an_install_or_with_a_dead_one_is_permanent(pool: asyncpg.Pool) -> None:
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        rest = await installed_portal(fake, pool)
        channel = Bitrix24Channel(rest)
        with pytest.raises(PermanentFailure, match="not_installed"):
            await channel.send(message("portal-2", "chat15"))
        await pool.execute("UPDATE bitrix24_installs SET refresh_token = 'spent' WHERE member_id = 'portal-1'")
        fake.expire_access_tokens()
        with pytest.raises(PermanentFailure, match="invalid_grant"):  # renewal refused: reinstall needed
            await Bitrix24Channel(portal_rest(fake, pool)).send(message("portal-1", "chat15"))
    assert fake.received == []


@pytest.mark.pg
async def test_bitrix24_a_portal_installed_without_a_bot_yet_is_temporary(pool: asyncpg.Pool) -> None:
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        channel = Bitrix24Channel(await installed_portal(fake, pool, bot=False))
        with pytest.raises(TemporaryFailure, match="no chat bot") as caught:
            await channel.send(message("portal-1", "chat15"))
    assert caught.value.retry_after == 60.0 and fake.received == []


@pytest.mark.pg
async def test_bitrix24_installs_unreadable_is_temporary_not_a_dead_letter(pg_database: str) -> None:
    """A database outage while the install is read: the message waits (house rule), it is not dead."""
    gone = await asyncpg.create_pool(pg_database, min_size=1, max_size=1)
    assert gone is not None
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        channel = Bitrix24Channel(portal_rest(fake, gone))
        await gone.close()
        with pytest.raises(TemporaryFailure, match="installs cannot be read"):
            await channel.send(message("portal-1", "chat15"))


@pytest.mark.pg
async def test_bitrix24_oauth_server_away_is_temporary(pool: asyncpg.Pool) -> None:
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        rest = await installed_portal(fake, pool)
        rest.oauth.base_url = "https://127.0.0.1:9"  # nothing listens there
        rest.http.allowed_ports = rest.http.allowed_ports | {9}
        fake.expire_access_tokens()
        with pytest.raises(TemporaryFailure):
            await Bitrix24Channel(rest).send(message("portal-1", "chat15"))


@pytest.mark.pg
async def test_bitrix24_token_bucket_keeps_under_the_portal_limit(pool: asyncpg.Pool) -> None:
    # The portal allows 3 at once then 20/s; our bucket (burst 3, 20/s) must never trip it.
    async with FakeBitrix24(member_id="portal-1", limit_rate=20, limit_burst=3).running() as fake:
        rest = await installed_portal(fake, pool)
        await asyncio.sleep(0.2)  # the install's own calls drain out of the portal's bucket
        channel = Bitrix24Channel(rest, rate=20.0, burst=3)
        for i in range(8):
            outgoing = message("portal-1", f"chat{i}")
            if not channel.ready(outgoing):  # the engine's order: a token, then the request
                await channel.pace(outgoing)
            await channel.send(outgoing)
    assert len(fake.received) == 8 and fake.limited == 0


async def test_email_over_smtp_with_message_id_from_key() -> None:
    async with FakeSmtp().running() as fake:
        channel = EmailChannel([SmtpRelay("main", "127.0.0.1", fake.port, "support@ticketflow.test")])
        msg = message("main", "client@example.test")
        message_id = await channel.send(msg)
    assert len(fake.received) == 1
    mail = fake.received[0]
    assert mail.recipients == ["client@example.test"]
    assert mail.message["Subject"] == "Обращение 42"
    assert mail.message["Message-ID"] == message_id == f"<{msg.key}@ticketflow.local>"
    assert "Привет, #42 открыт" in mail.body


async def test_email_failures_are_classified() -> None:
    async with FakeSmtp(rejected=["nobody@example.test"]).running() as fake:
        channel = EmailChannel([SmtpRelay("main", "127.0.0.1", fake.port, "support@ticketflow.test")])
        with pytest.raises(PermanentFailure, match="refused"):
            await channel.send(message("main", "nobody@example.test"))
        fake.fail_next(451)
        with pytest.raises(TemporaryFailure, match="451"):
            await channel.send(message("main", "client@example.test"))
        with pytest.raises(PermanentFailure, match="not an e-mail"):
            await channel.send(message("main", "no-at-sign"))
    assert fake.received == []


async def test_webhook_signs_exact_body_and_sends_idempotency_key() -> None:
    async with FakeWebhookReceiver(secret="hook-secret").running() as fake:
        channel = WebhookChannel([WebhookEndpoint("crm", fake.url, "hook-secret")])
        msg = message("crm", "ext-user-1")
        try:
            await channel.send(msg)
            wrong = WebhookChannel([WebhookEndpoint("crm", fake.url, "other-secret")])
            with pytest.raises(PermanentFailure, match="http 401"):
                await wrong.send(msg)
            await wrong.aclose()
            fake.fail_next(429, retry_after="7")
            with pytest.raises(TemporaryFailure) as caught:
                await channel.send(msg)
        finally:
            await channel.aclose()
    assert caught.value.retry_after == 7.0
    assert [h.idempotency_key for h in fake.received] == [msg.key]
    assert fake.received[0].payload["body"] == "Привет, #42 открыт"
    assert fake.bad_signatures == 1


async def test_a_destination_that_does_not_answer_in_time_is_an_unknown_outcome() -> None:
    """The request left; the receiver may have acted on it: not a plain temporary failure (issue 16)."""
    async with FakeWebhookReceiver(secret="hook-secret").running() as fake:
        fake.faults.add(Fault(200, b"", {}, delay=1.0))
        channel = WebhookChannel([WebhookEndpoint("crm", fake.url, "hook-secret")], timeout=0.2)
        try:
            with pytest.raises(OutcomeUnknown, match="no answer in time"):
                await channel.send(message("crm", "ext-user-1"))
        finally:
            await channel.aclose()


async def test_a_refused_connection_is_temporary_for_the_aiohttp_channels() -> None:
    """Nothing was sent: safe to send again."""
    async with FakeWebhookReceiver(secret="hook-secret").running() as fake:
        dead_url = fake.url
    channel = WebhookChannel([WebhookEndpoint("crm", dead_url, "hook-secret")])
    try:
        with pytest.raises(TemporaryFailure, match="connection error"):
            await channel.send(message("crm", "ext-user-1"))
    finally:
        await channel.aclose()


async def test_express_answer_after_its_timeout_is_an_unknown_outcome_and_the_message_was_posted() -> None:
    """BotX has no idempotency key: the chat shows a message whose answer was lost, so sending it again
    would show it twice."""
    async with FakeBotX({BOT_ID: SECRET}).running() as fake:
        fake.answer_delay = 1.0
        channel = ExpressChannel([ExpressBot(BOT_ID, fake.base_url, SECRET)], timeout=0.2)
        try:
            with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
                await channel.send(message(str(BOT_ID), str(CHAT)))
        finally:
            await channel.aclose()
    assert len(fake.received) == 1


@pytest.mark.pg
async def test_bitrix24_an_answer_lost_after_the_message_left_is_an_unknown_outcome(pool: asyncpg.Pool) -> None:
    """imbot.message.add has no idempotency key: a timeout after sending is never a plain retry (issue 16)."""
    async with FakeBitrix24(member_id="portal-1").running() as fake:
        rest = await installed_portal(fake, pool)
        rest.http.timeout_s = 0.3
        await rest.http.aclose()  # the session is made again with the new timeout
        fake.faults.add(Fault(200, {"result": 1001}, delay=1.0))  # the portal acts, the answer comes late
        with pytest.raises(OutcomeUnknown, match="timeout"):
            await Bitrix24Channel(rest).send(message("portal-1", "chat15"))
        fake.faults.add(Fault(503, {"error": "INTERNAL_SERVER_ERROR"}))  # an answer: a plain retry is safe
        with pytest.raises(TemporaryFailure):
            await Bitrix24Channel(rest).send(message("portal-1", "chat15"))
