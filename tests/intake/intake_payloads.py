"""Requests shaped as the platforms send them: BotX proto v4 commands and system events with a v2 JWT,
Bitrix24 event callbacks as form-encoded PHP-style keys."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlencode

from pybotx.auth import build_botx_jwt_v2

BOT_ID = uuid.UUID("8dada2c8-67a6-4434-9dec-570d244e78ee")
BOT_HOST = "cts.example.com"
BOT_SECRET = "bot-secret-for-tests-0123456789abcdef-0123456789abcdef-0123456789abcdef"
OTHER_BOT_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")
MEMBER_ID = "bac1cd5c8940947a75e0d71b1a84e348"
APP_TOKEN = "831c76b092f9f135d9b6b36c3a720757"
B24_BOT_ID = "567"
GENERIC_TENANT = "acme-helpdesk"
GENERIC_KEY = "acme-api-key-for-tests"

B24_CLIENT_ID = "local.ticketflow-test"  # the fake platform's (tests/fakes/bitrix24.py) defaults
B24_CLIENT_SECRET = "client-secret-for-tests"
B24_DOMAIN = "some-domain.bitrix24.com"


def tenants_toml(b24_domains: tuple[str, ...] = (B24_DOMAIN,)) -> str:
    """The test tenant file; `b24_domains`: the domains a portal may install from (a fake's host:port)."""
    return _TENANTS.replace("B24_DOMAINS", ", ".join(f'"{d}"' for d in b24_domains))


_TENANTS = f"""
[[express]]
bot_id = "{BOT_ID}"
host = "{BOT_HOST}"
secret_env = "INTAKE_TEST_BOT_SECRET"
desk = "express"
track = "client"
self_help_hints = true

[[bitrix24]]
member_id = "{MEMBER_ID}"
client_id = "{B24_CLIENT_ID}"
client_secret_env = "INTAKE_TEST_B24_SECRET"
portal_domains = [B24_DOMAINS]
bot_ids = ["{B24_BOT_ID}"]
desk = "bitrix24-box"
track = "box"

[[bitrix24]]
member_id = "not-installed-portal"
client_id = "{B24_CLIENT_ID}"
client_secret_env = "INTAKE_TEST_B24_SECRET"
desk = "bitrix24-box"
track = "box"

[[generic]]
tenant_id = "{GENERIC_TENANT}"
api_key_env = "INTAKE_TEST_GENERIC_KEY"
desk = "generic"
track = "default"
"""
TENANTS_TOML = tenants_toml()
TENANT_SECRETS = {
    "INTAKE_TEST_BOT_SECRET": BOT_SECRET,
    "INTAKE_TEST_GENERIC_KEY": GENERIC_KEY,
    "INTAKE_TEST_B24_SECRET": B24_CLIENT_SECRET,
}


def botx_token(bot_id: uuid.UUID = BOT_ID, secret: str = BOT_SECRET, host: str = BOT_HOST) -> str:
    return build_botx_jwt_v2(bot_id=bot_id, bot_host=host, secret_key=secret)


def botx_headers(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or botx_token()}", "Content-Type": "application/json"}


def _sender(chat_id: uuid.UUID, user_huid: uuid.UUID, *, is_admin: bool, locale: str) -> dict[str, Any]:
    return {
        "user_huid": str(user_huid),
        "user_udid": str(uuid.uuid5(user_huid, "udid")),
        "group_chat_id": str(chat_id),
        "host": BOT_HOST,
        "ad_login": "ivanov",
        "ad_domain": "example.com",
        "username": "Иван Иванов",
        "chat_type": "chat",
        "manufacturer": "Google",
        "device": "Chrome 120",
        "device_software": "Linux",
        "device_meta": {"pushes": False, "timezone": "Europe/Moscow", "permissions": {"microphone": True}},
        "platform": "web",
        "platform_package_id": "ru.unlimitedtech.express",
        "is_admin": is_admin,
        "is_creator": False,
        "app_version": "3.21.1",
        "locale": locale,
    }


def botx_message(
    body: str,
    *,
    chat_id: uuid.UUID,
    user_huid: uuid.UUID | None = None,
    sync_id: uuid.UUID | None = None,
    bot_id: uuid.UUID = BOT_ID,
    attachment: tuple[str, bytes, str] | None = None,
    is_admin: bool = False,
    locale: str = "ru",
) -> dict[str, Any]:
    """A user message (command_type "user") exactly as BotX posts it to /command."""
    attachments = []
    if attachment is not None:
        name, content, mime = attachment
        data_url = f"data:{mime};base64,{base64.b64encode(content).decode()}"
        attachments.append({"type": "document", "data": {"content": data_url, "file_name": name}})
    return {
        "sync_id": str(sync_id or uuid.uuid4()),
        "source_sync_id": None,
        "command": {"body": body, "command_type": "user", "data": {}, "metadata": {}},
        "attachments": attachments,
        "async_files": [],
        "entities": [],
        "from": _sender(chat_id, user_huid or uuid.uuid4(), is_admin=is_admin, locale=locale),
        "bot_id": str(bot_id),
        "proto_version": 4,
    }


def botx_chat_created(chat_id: uuid.UUID, creator: uuid.UUID, bot_id: uuid.UUID = BOT_ID) -> dict[str, Any]:
    return {
        "sync_id": str(uuid.uuid4()),
        "source_sync_id": None,
        "command": {
            "body": "system:chat_created",
            "command_type": "system",
            "data": {
                "chat_type": "group_chat",
                "creator": str(creator),
                "group_chat_id": str(chat_id),
                "members": [
                    {"admin": True, "huid": str(creator), "name": "Иван", "user_kind": "user"},
                    {"admin": False, "huid": str(bot_id), "name": "Support bot", "user_kind": "botx"},
                ],
                "name": "Поддержка",
            },
            "metadata": {},
        },
        "attachments": [],
        "async_files": [],
        "entities": [],
        "from": {
            "user_huid": None,
            "group_chat_id": str(chat_id),
            "host": BOT_HOST,
            "chat_type": "group_chat",
        },
        "bot_id": str(bot_id),
        "proto_version": 4,
    }


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]" if prefix else str(key), item, out)
    else:
        out.append((prefix, str(value)))


def php_form(payload: dict[str, Any]) -> str:
    """Encode nested data the way Bitrix24 (PHP http_build_query) does: data[PARAMS][MESSAGE]=..."""
    pairs: list[tuple[str, str]] = []
    _flatten("", payload, pairs)
    return urlencode(pairs)


def b24_auth(
    member_id: str = MEMBER_ID,
    token: str = APP_TOKEN,
    user_id: str = "27",
    *,
    domain: str = "some-domain.bitrix24.com",
    access_token: str = "a98b9d690000071b000008440000001b0000071d8a2",
    expires: str = "1771932585",
) -> dict[str, str]:
    return {
        "access_token": access_token,
        "expires": expires,
        "expires_in": "3600",
        "scope": "imbot",
        "domain": domain,
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "status": "F",
        "client_endpoint": f"https://{domain}/rest/",
        "member_id": member_id,
        "user_id": user_id,
        "refresh_token": "990ac569071b000008440000001b000007f80ccc35b5e3",
        "application_token": token,
    }


def b24_install(
    member_id: str = MEMBER_ID,
    token: str = APP_TOKEN,
    event: str = "ONAPPINSTALL",
    *,
    domain: str = "some-domain.bitrix24.com",
) -> str:
    return php_form(
        {
            "event": event,
            "event_handler_id": "1",
            "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"},
            "ts": "1771928985",
            "auth": b24_auth(member_id, token, user_id="1", domain=domain),
        }
    )


def b24_message(
    text: str,
    *,
    dialog_id: str,
    message_id: str,
    user_id: str = "27",
    member_id: str = MEMBER_ID,
    token: str = APP_TOKEN,
    event: str = "ONIMBOTMESSAGEADD",
    bot_id: str = B24_BOT_ID,
    auth: dict[str, str] | None = None,
) -> str:
    """ONIMBOTMESSAGEADD as in Bitrix24's documentation (personal chat with the bot). `auth`: the
    event's user authorisation (default: `b24_auth` for the author)."""
    bot_auth = {**b24_auth(member_id, token, user_id=bot_id), "client_id": "a7eff906dd1d950269258a599214f69e"}
    return php_form(
        {
            "event": event,
            "event_handler_id": "403",
            "data": {
                "BOT": {bot_id: {**bot_auth, "AUTH": bot_auth, "BOT_ID": bot_id, "BOT_CODE": "BOT1"}},
                "PARAMS": {
                    "MESSAGE": text,
                    "TEMPLATE_ID": str(uuid.uuid4()),
                    "MESSAGE_TYPE": "P",
                    "FROM_USER_ID": user_id,
                    "DIALOG_ID": dialog_id,
                    "TO_CHAT_ID": "1407",
                    "AUTHOR_ID": user_id,
                    "SYSTEM": "N",
                    "TO_USER_ID": bot_id,
                    "MESSAGE_ID": message_id,
                    "CHAT_TYPE": "P",
                    "LANGUAGE": "ru",
                },
                "USER": {
                    "ID": user_id,
                    "NAME": "Emily Smith",
                    "FIRST_NAME": "Emily",
                    "LAST_NAME": "Smith",
                    "WORK_POSITION": "",
                    "GENDER": "F",
                    "IS_BOT": "N",
                    "IS_CONNECTOR": "N",
                    "IS_NETWORK": "N",
                    "IS_EXTRANET": "N",
                },
            },
            "ts": "1771928985",
            "auth": auth or b24_auth(member_id, token, user_id),
        }
    )


def generic_message(text: str, *, conversation_id: str, message_id: str) -> dict[str, Any]:
    return {
        "tenant_id": GENERIC_TENANT,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "sender": {"user_id": "u-1", "display_name": "Ann", "locale": "en"},
        "text": text,
    }
