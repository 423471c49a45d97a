"""The OpenAPI document of intake's HTTP routes (`http.py`); the platforms' own request formats (BotX,
Bitrix24) are theirs and only named here. The generic API's bodies are the Structs that decode them."""

from __future__ import annotations

from typing import Any

from ticketflow.intake.platforms.generic import Accepted, ErrorBody, GenericMessage
from ticketflow.intake.platforms.web import MAX_BODY_BYTES
from ticketflow.runtime.openapi import Operation, document

PROBLEMS = {
    400: ("malformed body", ErrorBody),
    401: ("authentication failed (a bad BotX JWT, a missing or wrong API key)", ErrorBody),
    403: ("unknown tenant, bot or portal", ErrorBody),
    413: (f"body over {MAX_BODY_BYTES} bytes", ErrorBody),
    415: ("wrong content type", ErrorBody),
    422: ("a field is missing or has the wrong type", ErrorBody),
    500: ("a bug: see the service log", ErrorBody),
    503: ("the message could not be made durable now (Kafka or PostgreSQL away): send it again", ErrorBody),
}
BOTX = "eXpress BotX (proto_version 4), signed `Authorization: Bearer <HS256 JWT>` with the bot secret"
B24 = "Bitrix24 imbot events (ONIMBOTMESSAGEADD, ONAPPINSTALL, ...), PHP-style nested form keys"
ANY: dict[str, Any] = {"type": "object"}


def operations() -> list[Operation]:
    accepted = {202: ("accepted (durable); a repeated message is also accepted", Accepted)}
    return [
        Operation("post", "/command", f"a BotX command: {BOTX}", {**accepted, **PROBLEMS}, request="application/json",
                  security=("botxJwt",)),
        Operation("get", "/status", "BotX: the bot's commands menu", {200: ("the menu", ANY), **PROBLEMS},
                  security=("botxJwt",)),
        Operation("post", "/notification/callback", "BotX: the result of a message the bot sent",
                  {**accepted, **PROBLEMS}, request="application/json", security=("botxJwt",)),
        Operation("post", "/bitrix24/events", f"a Bitrix24 event: {B24}; checked against the portal's application "
                  "token", {200: ("accepted, or installed", Accepted), **PROBLEMS},
                  request="application/x-www-form-urlencoded"),
        Operation("post", "/v1/messages", "the generic chat API: one requester message", {**accepted, **PROBLEMS},
                  request=GenericMessage, security=("tenantKey",), parameters=[{
                      "name": "Idempotency-Key", "in": "header", "required": False,
                      "description": "The delivery id of this attempt (logged; message_id dedupes)",
                      "schema": {"type": "string", "maxLength": 200}}]),
        Operation("get", "/openapi.json", "the generic chat API's own OpenAPI document", {200: ("OpenAPI 3.1", ANY)}),
    ]  # fmt: skip


def openapi(*, noop: bool = False) -> dict[str, Any]:
    extra = [Operation("post", "/noop", "the benchmark's ceiling: same server, no work", {202: ("accepted", None)})]
    return document("intake", "Chat platforms' webhooks and the generic chat API: each message is made durable "
                    "(chat.inbound) before the answer.", [*operations(), *(extra if noop else [])], {
                        "botxJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                        "tenantKey": {"type": "http", "scheme": "bearer"}})  # fmt: skip
