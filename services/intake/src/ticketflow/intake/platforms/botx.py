"""eXpress (BotX) requests: JWT verification and parsing by pybotx, normalisation to `ChatMessage`.

pybotx's `Bot` holds the bot accounts and verifies the `Authorization: Bearer` HS256 JWT (v2 tokens:
iss = bot id, aud = CTS host; v1: aud = [bot id], iss = host). Parsing uses pybotx's own API models
(`BotAPIIncomingMessage`, the `BotAPISystemEvent` union), so what passes here is what pybotx accepts.
Every pybotx exception becomes a `Problem` (a 4xx), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from pybotx import Bot, BotAccountWithSecret
from pybotx.bot.api.exceptions import UnknownSystemEventError, UnsupportedBotAPIVersionError
from pybotx.bot.api.responses.bot_disabled import build_bot_disabled_response
from pybotx.bot.api.responses.unverified_request import build_unverified_request_response
from pybotx.bot.exceptions import (
    RequestHeadersNotProvidedError,
    UnknownBotAccountError,
    UnverifiedRequestError,
)
from pybotx.models.commands import BotAPISystemEvent
from pybotx.models.message.incoming_message import BotAPIIncomingMessage
from pybotx.models.method_callbacks import BotXMethodCallback
from pybotx.models.status import BotAPIStatusRecipient, BotMenu, build_bot_status_response
from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.values import Attachment
from ticketflow.intake.platforms.web import Problem
from ticketflow.intake.tenants import Tenants

PROTO_VERSION = 4
VERIFIED_TOKENS_KEPT = 4096
MENU = BotMenu(
    {
        "/ticket": "Открыть новое обращение / open a new ticket",
        "/status": "Статус обращения / ticket status",
        "/close": "Закрыть обращение / close the ticket",
        "/recheck": "Проверить снова / check again",
    }
)
_system_events: TypeAdapter[Any] = TypeAdapter(BotAPISystemEvent)
_callbacks: TypeAdapter[Any] = TypeAdapter(BotXMethodCallback)


@dataclass(frozen=True)
class SystemNotice:
    """A BotX system event (chat created, user added...): accepted, no customer message in it."""

    name: str
    bot_id: str


def _unverified(detail: str) -> Problem:
    return Problem(401, "unverified_request", detail, build_unverified_request_response(detail))


def _unknown_bot(bot_id: object) -> Problem:
    detail = f"unknown bot {bot_id}"
    return Problem(403, "unknown_bot", detail, build_bot_disabled_response(detail))


class BotxGateway:
    def __init__(self, tenants: Tenants) -> None:
        accounts = [
            BotAccountWithSecret(
                id=bot.bot_id,
                cts_url=AnyHttpUrl(f"https://{bot.host}"),
                secret_key=tenants.secret(bot.secret_env),
            )
            for bot in tenants.express.values()
        ]
        self._known = {str(bot.bot_id) for bot in tenants.express.values()}
        self._bot = Bot(collectors=[], bot_accounts=accounts)
        self._verified: dict[str, tuple[float, str]] = {}  # Authorization header -> (exp, bot id)

    async def close(self) -> None:
        await self._bot.shutdown()

    def verify(self, headers: Mapping[str, str], bot_id: object) -> None:
        """The JWT must verify with `bot_id`'s secret and name that same bot.

        A token that verified is remembered until its `exp` (BotX reuses a token for its lifetime),
        so the three HS256 decodes happen once per token, not once per request."""
        if str(bot_id) not in self._known:
            raise _unknown_bot(bot_id)
        authorization = headers.get("authorization", "")
        remembered = self._verified.get(authorization)
        if remembered is not None and remembered[1] == str(bot_id) and time.time() < remembered[0]:
            return
        try:
            self._bot._verify_request(headers)  # pybotx's own check: private, hence pybotx~=0.77.1 (pyproject)
        except (UnverifiedRequestError, RequestHeadersNotProvidedError, UnknownBotAccountError) as exc:
            raise _unverified(str(exc) or type(exc).__name__) from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _unverified(f"invalid token: {exc}") from exc
        token_bot, expires = _token_claims(authorization)
        if token_bot != str(bot_id):
            raise _unverified(f"the token is for bot {token_bot}, the payload for bot {bot_id}")
        if expires is not None:
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.pop(next(iter(self._verified)))
            self._verified[authorization] = (expires, token_bot)

    def parse_command(self, raw: dict[str, Any], received_at: datetime) -> ChatMessage | SystemNotice:
        version = raw.get("proto_version")
        if version != PROTO_VERSION:
            raise Problem(400, "unsupported_proto_version", f"proto_version {version!r}, expected 4")
        command = raw.get("command")
        command_type = command.get("command_type") if isinstance(command, dict) else None
        try:
            if command_type == "user":
                parsed = BotAPIIncomingMessage.model_validate(raw)
                return _normalise(parsed, raw, received_at)
            event = _system_events.validate_python(raw)
            body = event.payload.body
            return SystemNotice(str(getattr(body, "value", body)), str(event.bot_id))
        except UnsupportedBotAPIVersionError as exc:
            raise Problem(400, "unsupported_proto_version", exc.message) from exc
        except UnknownSystemEventError as exc:
            raise Problem(400, "unknown_system_event", exc.message) from exc
        except ValidationError as exc:
            raise Problem(422, "invalid_payload", _summary(exc)) from exc
        except Exception as exc:  # pybotx validators raise TypeError etc. on odd shapes: still bad input
            raise Problem(422, "invalid_payload", f"{type(exc).__name__}: {exc}") from exc

    def parse_callback(self, raw: dict[str, Any]) -> None:
        try:
            _callbacks.validate_python(raw)
        except ValidationError as exc:
            raise Problem(422, "invalid_payload", _summary(exc)) from exc
        except Exception as exc:  # see parse_command
            raise Problem(422, "invalid_payload", f"{type(exc).__name__}: {exc}") from exc

    def status(self, query: Mapping[str, str], headers: Mapping[str, str]) -> dict[str, Any]:
        try:
            recipient = BotAPIStatusRecipient.model_validate(dict(query))
        except ValidationError as exc:
            raise Problem(422, "invalid_query", _summary(exc)) from exc
        except Exception as exc:  # see parse_command
            raise Problem(422, "invalid_query", f"{type(exc).__name__}: {exc}") from exc
        self.verify(headers, recipient.bot_id)
        return build_bot_status_response(MENU)


def _token_claims(authorization: str) -> tuple[str, float | None]:
    """The bot a (verified) token speaks for (v2 `iss`, v1 `aud[0]`) and its expiry, if it has one."""
    claims = jwt.decode(authorization.split()[-1], options={"verify_signature": False})
    audience = claims.get("aud")
    expires = claims.get("exp")
    expiry = float(expires) if isinstance(expires, int | float) else None
    if claims.get("version") == 2 or isinstance(audience, str):
        return str(claims.get("iss")), expiry
    return (str(audience[0]) if isinstance(audience, list) and audience else ""), expiry


def _summary(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts) or "invalid payload"


def _normalise(parsed: BotAPIIncomingMessage, raw: dict[str, Any], received_at: datetime) -> ChatMessage:
    sender = parsed.sender
    display = sender.username or sender.ad_login or ""
    return ChatMessage(
        platform="express",
        tenant_id=str(parsed.bot_id),
        conversation_id=str(sender.group_chat_id),
        message_id=str(parsed.sync_id),
        sender=ChatSender(
            user_id=str(sender.user_huid),
            display_name=display,
            is_admin=bool(sender.is_admin),
            locale=sender.locale or "ru",
        ),
        text=parsed.payload.body,
        received_at=received_at,
        attachments=tuple(_attachments(raw)),
        delivery_id=str(parsed.sync_id),
    )


def _attachments(raw: dict[str, Any]) -> list[Attachment]:
    """Metadata only: BotX inlines file content as an RFC 2397 data URL, which the ticket does not keep."""
    found = []
    for item in raw.get("attachments") or []:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            continue
        data = item["data"]
        kind = str(item.get("type", "file"))
        content = data.get("content")
        mime, size = _data_url_meta(content) if isinstance(content, str) else ("application/octet-stream", None)
        name = data.get("file_name") or data.get("name") or data.get("url") or kind
        url = data.get("url") if kind == "link" else None
        found.append(Attachment(name=str(name), mime_type=mime, size=size, url=url))
    return found


def _data_url_meta(content: str) -> tuple[str, int | None]:
    head, sep, payload = content.partition(",")
    if not sep or not head.startswith("data:"):
        return "application/octet-stream", None
    mime = head[5:].split(";", 1)[0] or "application/octet-stream"
    try:
        size = len(base64.b64decode(payload, validate=False)) if head.endswith(";base64") else len(payload)
    except (binascii.Error, ValueError):
        size = None
    return mime, size
