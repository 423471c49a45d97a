"""The generic JSON API (`POST /v1/messages`) for platforms without a dedicated adapter, and its
OpenAPI document (generated from the same msgspec Structs that decode the body)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from ticketflow.contracts.chat import ChatMessage, ChatSender
from ticketflow.contracts.values import Attachment, Role
from ticketflow.intake.platforms.web import MAX_BODY_BYTES, Problem

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class GenericSender(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: NonEmpty
    display_name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    is_admin: bool = False
    roles: tuple[Role, ...] = ()
    locale: Annotated[str, msgspec.Meta(max_length=20)] = "ru"
    email: str | None = None


class GenericMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One message from a requester. `message_id` is the platform's id for it: posting the same id
    again is a no-op (the idempotency key is tenant + message_id)."""

    tenant_id: NonEmpty
    conversation_id: NonEmpty
    message_id: NonEmpty
    sender: GenericSender
    text: Annotated[str, msgspec.Meta(max_length=20_000)]
    attachments: Annotated[tuple[Attachment, ...], msgspec.Meta(max_length=20)] = ()
    sent_at: datetime | None = None


class Accepted(msgspec.Struct, frozen=True):
    result: str = "accepted"
    idempotency_key: str = ""


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    detail: str


_decoder = msgspec.json.Decoder(GenericMessage)


def parse_generic(body: bytes, received_at: datetime, delivery_id: str | None) -> ChatMessage:
    try:
        incoming = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid_payload", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed_json", f"body is not valid JSON: {exc}") from exc
    s = incoming.sender
    return ChatMessage(
        platform="generic",
        tenant_id=incoming.tenant_id,
        conversation_id=incoming.conversation_id,
        message_id=incoming.message_id,
        sender=ChatSender(s.user_id, s.display_name, s.roles, s.is_admin, s.locale, s.email),
        text=incoming.text,
        received_at=received_at,
        attachments=incoming.attachments,
        delivery_id=delivery_id,
        sent_at=incoming.sent_at,
    )


def openapi_document() -> dict[str, Any]:
    (message, accepted, error), components = msgspec.json.schema_components(
        (GenericMessage, Accepted, ErrorBody), ref_template="#/components/schemas/{name}"
    )

    def problem(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": error}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ticketflow intake: generic chat API",
            "version": "1.0.0",
            "description": "Post requester messages from any chat platform. Authenticate with "
            "`Authorization: Bearer <tenant api key>`. Answers 202 once the message is durable; the ticket "
            f"events follow asynchronously. Bodies over {MAX_BODY_BYTES} bytes are refused.",
        },
        "paths": {
            "/v1/messages": {
                "post": {
                    "operationId": "postMessage",
                    "security": [{"tenantKey": []}],
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "The delivery id of this attempt (logged; message_id dedupes)",
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": message}}},
                    "responses": {
                        "202": {
                            "description": "accepted (durable); repeating an accepted message_id is also 202",
                            "content": {"application/json": {"schema": accepted}},
                        },
                        "400": problem("malformed JSON"),
                        "401": problem("missing or wrong API key"),
                        "403": problem("unknown tenant"),
                        "413": problem("body too large"),
                        "415": problem("content type is not application/json"),
                        "422": problem("a field is missing or has the wrong type"),
                    },
                }
            }
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"tenantKey": {"type": "http", "scheme": "bearer"}},
        },
    }
