"""Bitrix24 imbot events: form-encoded bodies with PHP-style keys, parsed by b24pysdk's `OAuthEventData`.

Authenticity: every event carries `auth[application_token]`; it must equal (constant time) the token of
the portal's (`auth[member_id]`) verified install (`adapters/portals.py`, `ticketflow.bitrix24`: an install
is trusted only after the OAuth server confirmed its tokens with the desk's client secret).

Admin flag: Bitrix24's documented ONIMBOTMESSAGEADD payload has no admin field in `data[USER]` (ID, NAME,
FIRST_NAME, LAST_NAME, WORK_POSITION, GENDER, IS_BOT, IS_CONNECTOR, IS_NETWORK, IS_EXTRANET). This
module passes `IS_ADMIN=Y` through if a portal sends it; otherwise `portal_admin.AdminCheck` asks the
portal (REST `user.admin` with the event's `auth[access_token]`, the author's token) before the message
is accepted.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from b24pysdk.credentials.oauth_event_data import OAuthEventData

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.text import NUL
from ticketflow.contracts.values import Attachment
from ticketflow.intake.platforms.web import Problem
from ticketflow.intake.tenants import Tenants

MESSAGE_ADD = "ONIMBOTMESSAGEADD"
JOIN_CHAT = "ONIMBOTJOINCHAT"
BOT_DELETE = "ONIMBOTDELETE"
APP_INSTALL = "ONAPPINSTALL"
APP_UPDATE = "ONAPPUPDATE"
APP_UNINSTALL = "ONAPPUNINSTALL"
KNOWN_EVENTS = frozenset({MESSAGE_ADD, JOIN_CHAT, BOT_DELETE, APP_INSTALL, APP_UPDATE, APP_UNINSTALL})


@dataclass(frozen=True)
class Bitrix24Event:
    name: str
    member_id: str
    application_token: str
    domain: str
    client_endpoint: str
    data: dict[str, Any]
    # The event's user authorisation (the author of a message): for REST `user.admin` only, never stored.
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)  # an install's: spent verifying it, then ours
    auth_user_id: str = ""
    token_expires: float | None = None  # unix time


def parse_event(body: bytes) -> Bitrix24Event:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "malformed_form", f"body is not application/x-www-form-urlencoded: {exc}") from exc
    if not fields:
        raise Problem(400, "malformed_form", "empty form body")
    expires_in = fields.get("auth[expires_in]", [""])[0]
    if "auth[access_token]" in fields and "auth[expires]" not in fields and expires_in.isdigit():
        # ONAPPINSTALL documents `expires_in` only; b24pysdk's token wants the moment (`expires`).
        fields["auth[expires]"] = [str(int(time.time()) + int(expires_in))]
    try:
        event = OAuthEventData.from_dict(fields)
    except OAuthEventData.ValidationError as exc:
        raise Problem(422, "invalid_payload", str(exc)) from exc
    name = str(event.event).upper()
    if name not in KNOWN_EVENTS:
        raise Problem(400, "unknown_event", f"unsupported Bitrix24 event {event.event!r}")
    data = event.data if isinstance(event.data, dict) else {}
    auth = event.auth
    token = auth.oauth_token
    for key in ("member_id", "application_token", "domain", "client_endpoint", "user_id"):
        if NUL in str(getattr(auth, key, "") or ""):  # identifiers and addresses, stored or used as keys
            raise Problem(422, "invalid_payload", f"auth[{key}] contains a NUL character (U+0000)")
    if token is not None and NUL in str(token.access_token):
        raise Problem(422, "invalid_payload", "auth[access_token] contains a NUL character (U+0000)")
    return Bitrix24Event(
        name=name,
        member_id=str(auth.member_id).lower(),
        application_token=str(auth.application_token),
        domain=str(getattr(auth, "domain", "") or ""),
        client_endpoint=str(getattr(auth, "client_endpoint", "") or ""),
        data=data,
        access_token=str(token.access_token) if token is not None else "",
        refresh_token=str(token.refresh_token or "") if token is not None else "",
        auth_user_id=str(auth.user_id) if auth.user_id is not None else "",
        token_expires=token.expires.timestamp() if token is not None and token.expires is not None else None,
    )


def tokens_match(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())


def check_portal(tenants: Tenants, event: Bitrix24Event) -> None:
    """The portal must be one intake serves."""
    if event.member_id not in tenants.bitrix24:
        raise Problem(403, "unknown_portal", f"portal {event.member_id!r} is not served here")


def check_bot(event: Bitrix24Event, allowed: set[str]) -> None:
    """A bot event must be for one of `allowed` (the desk's bot_ids and the bot registered at install;
    empty: any bot of the application)."""
    if not allowed or event.name not in {MESSAGE_ADD, JOIN_CHAT, BOT_DELETE}:
        return
    bots = event.data.get("BOT")
    ids = {str(k) for k in bots} if isinstance(bots, dict) else set()
    if isinstance(bots, list):  # b24pysdk turns {"0": ..., "1": ...} into a list
        ids = {str(b.get("BOT_ID")) for b in bots if isinstance(b, dict)}
    if not ids & allowed:
        raise Problem(403, "unknown_bot", f"event is for bots {sorted(ids)}, not this desk's bots")


def _field(data: dict[str, Any], section: str, name: str) -> str:
    part = data.get(section)
    value = part.get(name) if isinstance(part, dict) else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Problem(422, "invalid_payload", f"data[{section}][{name}] must be a string")
    return value


def to_chat_message(event: Bitrix24Event, received_at: datetime) -> ChatMessage | None:
    """The normalised message, or None for a system message (nothing a requester said)."""
    data = event.data
    if _field(data, "PARAMS", "SYSTEM") == "Y" or _field(data, "USER", "IS_BOT") == "Y":
        return None
    dialog_id = _field(data, "PARAMS", "DIALOG_ID")
    message_id = _field(data, "PARAMS", "MESSAGE_ID")
    user_id = _field(data, "USER", "ID") or _field(data, "PARAMS", "FROM_USER_ID")
    missing = [n for n, v in (("DIALOG_ID", dialog_id), ("MESSAGE_ID", message_id), ("USER.ID", user_id)) if not v]
    if missing:
        raise Problem(422, "invalid_payload", f"missing {', '.join(missing)} in data[PARAMS]/data[USER]")
    language = _field(data, "PARAMS", "LANGUAGE") or "ru"
    return ChatMessage(
        platform="bitrix24",
        tenant_id=event.member_id,
        conversation_id=dialog_id,
        message_id=message_id,
        sender=ChatSender(
            user_id=user_id,
            display_name=_field(data, "USER", "NAME"),
            is_admin=_field(data, "USER", "IS_ADMIN") == "Y",
            locale=language,
        ),
        text=_field(data, "PARAMS", "MESSAGE"),
        received_at=received_at,
        attachments=tuple(_files(data)),
        portal_url=f"https://{event.domain}/" if event.domain else None,
    )


def _files(data: dict[str, Any]) -> list[Attachment]:
    params = data.get("PARAMS")
    files = params.get("FILES") if isinstance(params, dict) else None
    items = files.values() if isinstance(files, dict) else files if isinstance(files, list) else []
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        size = str(item.get("size", ""))
        found.append(
            Attachment(
                name=str(item.get("name") or item.get("id") or "file"),
                mime_type=str(item.get("type") or "application/octet-stream"),
                size=int(size) if size.isdigit() else None,
                url=str(item["urlDownload"]) if item.get("urlDownload") else None,
            )
        )
    return found
