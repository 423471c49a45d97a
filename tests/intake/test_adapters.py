"""The platforms (no I/O): pybotx verification/parsing, Bitrix24 form parsing, the generic API schema;
the tenants."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from intake_payloads import (
    APP_TOKEN,
    BOT_ID,
    BOT_SECRET,
    MEMBER_ID,
    OTHER_BOT_ID,
    TENANT_SECRETS,
    TENANTS_TOML,
    b24_install,
    b24_message,
    botx_chat_created,
    botx_message,
    botx_token,
    generic_message,
)
from pybotx.models.message.incoming_message import BotAPIIncomingMessage

from ticketflow.intake.platforms import bitrix24 as b24
from ticketflow.intake.platforms.botx import BotxGateway, SystemNotice
from ticketflow.intake.platforms.generic import openapi_document, parse_generic
from ticketflow.intake.platforms.web import Problem
from ticketflow.intake.tenants import Tenants, load_tenants

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Tenants:
    path = tmp_path_factory.mktemp("intake") / "tenants.toml"
    path.write_text(TENANTS_TOML)
    os.environ.update(TENANT_SECRETS)
    return load_tenants(path)


@pytest.fixture(scope="module")
def gateway(tenants: Tenants) -> BotxGateway:
    return BotxGateway(tenants)


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_payload_builder_is_what_pybotx_itself_accepts() -> None:
    raw = botx_message("hello", chat_id=uuid.uuid4(), attachment=("log.txt", b"abc", "text/plain"))
    domain = BotAPIIncomingMessage.model_validate(raw).to_domain(raw)
    assert domain.body == "hello" and domain.file is not None and domain.file.filename == "log.txt"


def test_the_system_event_builder_is_what_pybotx_itself_accepts() -> None:
    from pybotx.models.commands import BotAPISystemEvent
    from pybotx.models.system_events.chat_created import ChatCreatedEvent
    from pydantic import TypeAdapter

    raw = botx_chat_created(uuid.uuid4(), uuid.uuid4())
    event = TypeAdapter(BotAPISystemEvent).validate_python(raw).to_domain(raw)
    assert isinstance(event, ChatCreatedEvent) and len(event.members) == 2


def test_a_user_message_is_normalised(gateway: BotxGateway) -> None:
    chat, user, sync = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    raw = botx_message(
        "не работает", chat_id=chat, user_huid=user, sync_id=sync, attachment=("shot.png", b"\x89PNG" * 10, "image/png")
    )
    gateway.verify(auth(botx_token()), raw["bot_id"])
    message = gateway.parse_command(raw, NOW)
    assert not isinstance(message, SystemNotice)
    assert (message.platform, message.tenant_id, message.conversation_id) == ("express", str(BOT_ID), str(chat))
    assert (message.message_id, message.sender.user_id, message.text) == (str(sync), str(user), "не работает")
    [attachment] = message.attachments
    assert (attachment.name, attachment.mime_type, attachment.size) == ("shot.png", "image/png", 40)


def test_system_events_are_recognised(gateway: BotxGateway) -> None:
    notice = gateway.parse_command(botx_chat_created(uuid.uuid4(), uuid.uuid4()), NOW)
    assert notice == SystemNotice("system:chat_created", str(BOT_ID))


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda r: r.update(proto_version=3), 400, "unsupported_proto_version"),
        (lambda r: r.update(proto_version="4"), 400, "unsupported_proto_version"),
        (lambda r: r["command"].update(body="system:unheard_of", command_type="system"), 400, "unknown_system_event"),
        (lambda r: r["from"].update(user_huid=12), 422, "invalid_payload"),
        (lambda r: r.update(sync_id="not-a-uuid"), 422, "invalid_payload"),
        (lambda r: r.pop("command"), 422, "invalid_payload"),
    ],
)
def test_bad_commands_are_problems(gateway: BotxGateway, mutate: object, status: int, reason: str) -> None:
    raw = botx_message("x", chat_id=uuid.uuid4())
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(Problem) as caught:
        gateway.parse_command(raw, NOW)
    assert (caught.value.status, caught.value.reason) == (status, reason)


@pytest.mark.parametrize(
    ("headers", "bot_id", "status", "reason"),
    [
        ({}, BOT_ID, 401, "unverified_request"),
        (auth("garbage"), BOT_ID, 401, "unverified_request"),
        (
            auth(botx_token(secret="forged-secret-of-sufficient-length-0123456789abcdef")),
            BOT_ID,
            401,
            "unverified_request",
        ),
        (auth(botx_token(host="evil.example.com")), BOT_ID, 401, "unverified_request"),
        (
            auth(jwt.encode({"iss": str(BOT_ID), "aud": "cts.example.com"}, BOT_SECRET, "HS512")),
            BOT_ID,
            401,
            "unverified_request",
        ),
        (auth(botx_token()), OTHER_BOT_ID, 403, "unknown_bot"),
        (auth(botx_token()), "not-a-uuid", 403, "unknown_bot"),
    ],
)
def test_bad_tokens_are_refused(
    gateway: BotxGateway, headers: dict[str, str], bot_id: object, status: int, reason: str
) -> None:
    with pytest.raises(Problem) as caught:
        gateway.verify(headers, bot_id)
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_status_answers_the_command_menu(gateway: BotxGateway) -> None:
    query = {
        "bot_id": str(BOT_ID),
        "user_huid": str(uuid.uuid4()),
        "chat_type": "chat",
        "ad_login": "",
        "is_admin": "true",
    }
    answer = gateway.status(query, auth(botx_token()))
    assert answer["status"] == "ok"
    assert {c["body"] for c in answer["result"]["commands"]} == {"/ticket", "/status", "/close", "/recheck"}


def test_bitrix24_message_is_parsed_from_the_form() -> None:
    event = b24.parse_event(b24_message("Привет", dialog_id="27", message_id="84331").encode())
    assert (event.name, event.member_id, event.application_token) == ("ONIMBOTMESSAGEADD", MEMBER_ID, APP_TOKEN)
    message = b24.to_chat_message(event, NOW)
    assert message is not None
    assert (message.platform, message.tenant_id, message.conversation_id, message.message_id) == (
        "bitrix24",
        MEMBER_ID,
        "27",
        "84331",
    )
    assert (message.text, message.sender.user_id, message.sender.display_name) == ("Привет", "27", "Emily Smith")
    assert message.sender.is_admin is False  # the documented payload has no admin flag
    assert message.portal_url == "https://some-domain.bitrix24.com/"  # from auth[domain], for preflight


def test_bitrix24_install_carries_the_token() -> None:
    event = b24.parse_event(b24_install().encode())
    assert (event.name, event.member_id, event.application_token) == ("ONAPPINSTALL", MEMBER_ID, APP_TOKEN)


def test_bitrix24_install_as_documented_has_expires_in_only_and_no_user() -> None:
    """ONAPPINSTALL/ONAPPUPDATE carry `expires_in` and no `expires` or `user_id` (Bitrix24 REST docs,
    on-app-install.md): parsed, with the refresh token the install is verified with."""
    form = re.sub(r"&auth%5B(expires|user_id)%5D=[^&]*", "", b24_install())
    assert "expires%5D" not in form and "user_id" not in form
    event = b24.parse_event(form.encode())
    assert event.name == "ONAPPINSTALL" and event.refresh_token and event.access_token
    assert event.token_expires is not None and event.token_expires > time.time() + 3000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed_form"),
        (b"\xff\xfe", "malformed_form"),
        (b"event=ONIMBOTMESSAGEADD", "invalid_payload"),
        (b24_message("x", dialog_id="1", message_id="2", event="ONCRMDEALADD").encode(), "unknown_event"),
        (b"a=1&a[b]=2&event=x&event_handler_id=1&ts=1", "invalid_payload"),
    ],
)
def test_bad_bitrix24_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(Problem) as caught:
        b24.parse_event(body)
    assert caught.value.reason == reason and 400 <= caught.value.status < 500


def test_bitrix24_unknown_portal_and_bot(tenants: Tenants) -> None:
    stranger = b24.parse_event(b24_message("x", dialog_id="1", message_id="2", member_id="stranger").encode())
    with pytest.raises(Problem, match="unknown_portal"):
        b24.check_portal(tenants, stranger)
    other_bot = b24.parse_event(b24_message("x", dialog_id="1", message_id="2", bot_id="999").encode())
    b24.check_portal(tenants, other_bot)  # a served portal; which bots it may address is the install's
    with pytest.raises(Problem, match="unknown_bot"):
        b24.check_bot(other_bot, {"567", "7"})  # the desk's bot ids and the bot registered at install
    b24.check_bot(other_bot, {"999"})
    b24.check_bot(other_bot, set())  # none configured or registered: any bot of the application


def test_bitrix24_token_comparison_is_exact() -> None:
    assert b24.tokens_match(APP_TOKEN, APP_TOKEN)
    assert not b24.tokens_match(APP_TOKEN, APP_TOKEN[:-1])
    assert not b24.tokens_match(APP_TOKEN, "")


def test_generic_message_and_its_errors() -> None:
    import msgspec

    body = msgspec.json.encode(generic_message("hi", conversation_id="c1", message_id="m1"))
    message = parse_generic(body, NOW, "delivery-1")
    assert message.idempotency_key() == "generic:acme-helpdesk:m1" and message.delivery_id == "delivery-1"
    with pytest.raises(Problem, match="malformed_json"):
        parse_generic(b"{", NOW, None)
    wrong_type = msgspec.json.encode({**generic_message("hi", conversation_id="c1", message_id="m1"), "text": 5})
    with pytest.raises(Problem, match=r"invalid_payload.*text"):
        parse_generic(wrong_type, NOW, None)


def test_openapi_document_describes_the_route() -> None:
    doc = openapi_document()
    post = doc["paths"]["/v1/messages"]["post"]
    assert doc["openapi"].startswith("3.1") and "202" in post["responses"]
    assert "GenericMessage" in doc["components"]["schemas"]


def test_a_tenant_without_its_secret_is_disabled(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(TENANTS_TOML.replace("INTAKE_TEST_BOT_SECRET", "INTAKE_TEST_UNSET_SECRET"))
    tenants = load_tenants(path)
    assert tenants.route("express", str(BOT_ID)) is None
    assert any("INTAKE_TEST_UNSET_SECRET" in d for d in tenants.disabled)
    assert BotxGateway(tenants) is not None  # starts with no bots


def test_a_remembered_token_does_not_let_a_forged_or_expired_one_through(gateway: BotxGateway) -> None:
    good = botx_token()
    gateway.verify(auth(good), BOT_ID)
    gateway.verify(auth(good), BOT_ID)  # remembered: still fine
    head, payload, signature = good.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}AA"
    with pytest.raises(Problem, match="unverified_request"):
        gateway.verify(auth(tampered), BOT_ID)
    with pytest.raises(Problem):  # a remembered token speaks for its own bot only
        gateway.verify(auth(good), OTHER_BOT_ID)
    from pybotx.auth import build_botx_jwt_v2

    expired = build_botx_jwt_v2(bot_id=BOT_ID, bot_host="cts.example.com", secret_key=BOT_SECRET, issued_at=1)
    with pytest.raises(Problem, match="unverified_request"):
        gateway.verify(auth(expired), BOT_ID)


def test_tenants_come_from_the_packaged_desk_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from ticketflow.deskconfig import load_desks
    from ticketflow.intake.tenants import tenants_from_desks

    registry = load_desks()
    for desk in registry.desks.values():
        for bot in desk.platforms.express:
            monkeypatch.setenv(bot.secret_env, "x" * 64)
        for tenant in desk.platforms.generic:
            monkeypatch.setenv(tenant.api_key_env, "y" * 32)
    tenants = tenants_from_desks(registry)
    client_bot = tenants.route("express", "8dada2c8-67a6-4434-9dec-570d244e78ee")
    assert client_bot is not None and (client_bot.desk_id, client_bot.track_id) == ("express", "client")
    assert client_bot.self_help_hints
    portal = tenants.route("bitrix24", "a1b2c3d4e5f60718293a4b5c6d7e8f90")
    assert portal is not None and portal.desk_id == "bitrix24-box"
