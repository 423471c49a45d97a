"""Intake's HTTP routes: the chat platforms' webhooks, the generic API and its OpenAPI document.

Each webhook: check the request (`platforms/`), normalise it, hand it to the application service
(`Intake.accept`: durable before the answer), answer. A bad request is a `Problem`: a 4xx with a JSON
body naming it, counted in `ticketflow_intake_rejected_total`, nothing written. An outage (Kafka, PostgreSQL) is a
503 (the platform retries; nothing was accepted), a bug a JSON 500. Health and readiness are the
runtime's (`/health/live`, `/health/ready`); metrics are served on the operations port, and every request is
traced and counted by route and status by the runtime (`ticketflow.runtime.http_telemetry`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ticketflow.contracts.chat import ChatMessage
from ticketflow.contracts.text import MalformedIdentifier, normalise_chat_message
from ticketflow.eventstore.errors import UnstorableEvent
from ticketflow.intake.adapters.portal_admin import AdminCheck
from ticketflow.intake.adapters.portals import Portals
from ticketflow.intake.app import Intake, UnknownTenant
from ticketflow.intake.platforms import bitrix24 as b24
from ticketflow.intake.platforms.botx import BotxGateway, SystemNotice
from ticketflow.intake.platforms.generic import openapi_document, parse_generic
from ticketflow.intake.platforms.web import (
    Problem,
    decode_json_object,
    json_response,
    problem_response,
    read_body,
    require_content_type,
)

log = logging.getLogger("ticketflow.intake")
# Kafka or PostgreSQL unreachable, timing out or refusing connections (or a connection the server ended).
OUTAGES = (
    OSError, TimeoutError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError
)  # fmt: skip
ACCEPTED = {"result": "accepted"}
Handler = Callable[[Request], Awaitable[Response]]


def routes(webhooks: Webhooks, *, noop: bool = False) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route("/command", webhooks.guarded("botx_command", webhooks.botx_command), methods=["POST"]),
        Route("/status", webhooks.guarded("botx_status", webhooks.botx_status), methods=["GET"]),
        Route("/notification/callback", webhooks.guarded("botx_callback", webhooks.botx_callback), methods=["POST"]),
        Route("/bitrix24/events", webhooks.guarded("bitrix24_event", webhooks.bitrix24_event), methods=["POST"]),
        Route("/v1/messages", webhooks.guarded("generic_message", webhooks.generic_message), methods=["POST"]),
        Route("/openapi.json", webhooks.guarded("openapi", webhooks.openapi), methods=["GET"]),
    ]
    if noop:
        found.append(Route("/noop", _noop, methods=["POST"]))  # the benchmark's ceiling: the same server, no work
    return found


async def _noop(request: Request) -> Response:
    await request.body()
    return json_response(ACCEPTED, 202)


@dataclass
class Webhooks:
    intake: Intake
    botx: BotxGateway
    portals: Portals
    admin: AdminCheck | None = None  # Bitrix24: ask the portal whether the author is an administrator

    def guarded(self, route: str, handler: Handler) -> Handler:
        metrics = self.intake.metrics

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Problem as problem:
                metrics.inc("ticketflow_intake_rejected", route=route, reason=problem.reason)
                return problem_response(problem)
            except OUTAGES as exc:
                # Our outage, not the caller's fault: 503 so the platform retries (nothing was accepted).
                log.warning("%s: could not make the message durable: %r", route, exc)
                metrics.inc("ticketflow_intake_rejected", route=route, reason="unavailable")
                return json_response({"error": "unavailable", "detail": "try again later"}, 503)
            except Exception:
                log.exception("%s: unexpected failure", route)  # a bug: say so, in JSON, and count it
                metrics.inc("ticketflow_intake_rejected", route=route, reason="internal_error")
                return json_response({"error": "internal_error", "detail": "see the service log"}, 500)

        return run

    async def _accept(self, message: ChatMessage) -> None:
        """`message` as `_normalised` returned it."""
        try:
            await self.intake.accept(message)
        except UnknownTenant as exc:
            raise Problem(403, "unknown_tenant", str(exc)) from exc
        except UnstorableEvent as exc:  # store mode; `_normalised` leaves no known cause, so a bug: still named
            raise Problem(422, "invalid_payload", str(exc)) from exc

    async def botx_command(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        raw = decode_json_object(await read_body(request))
        self.botx.verify(request.headers, raw.get("bot_id"))
        parsed = self.botx.parse_command(raw, datetime.now(UTC))
        if isinstance(parsed, SystemNotice):
            self.intake.metrics.inc("ticketflow_intake_ignored", kind=parsed.name)
        else:
            await self._accept(_normalised(parsed))
        return json_response(ACCEPTED, 202)

    async def botx_status(self, request: Request) -> Response:
        return json_response(self.botx.status(request.query_params, request.headers))

    async def botx_callback(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        raw = decode_json_object(await read_body(request))
        bot_id = raw.get("bot_id") or next(iter(self.intake.tenants.express), None)
        self.botx.verify(request.headers, bot_id)
        self.botx.parse_callback(raw)
        self.intake.metrics.inc("ticketflow_intake_ignored", kind="botx_callback")
        return json_response(ACCEPTED, 202)

    async def bitrix24_event(self, request: Request) -> Response:
        require_content_type(request, "application/x-www-form-urlencoded")
        event = b24.parse_event(await read_body(request))
        b24.check_portal(self.intake.tenants, event)
        if event.name in {b24.APP_INSTALL, b24.APP_UPDATE}:
            answer = await self.portals.install(event)
            self.intake.metrics.inc("ticketflow_intake_ignored", kind=event.name)
            return json_response(answer)
        install = await self.portals.verify(event)
        if event.name == b24.APP_UNINSTALL:
            await self.portals.uninstall(event)
            self.intake.metrics.inc("ticketflow_intake_ignored", kind=event.name)
            return json_response({"result": "uninstalled"})
        if event.name == b24.BOT_DELETE:
            await self.portals.bot_deleted(event)
        message = b24.to_chat_message(event, datetime.now(UTC)) if event.name == b24.MESSAGE_ADD else None
        if message is not None:
            message = _normalised(message)
        if message is not None and self.admin is not None:
            # Never a 4xx/5xx for this: a portal that cannot be asked leaves the sender unverified.
            message = await self.admin.apply(event, message, install.domain)
        if message is None:
            self.intake.metrics.inc("ticketflow_intake_ignored", kind=event.name)
        else:
            await self._accept(message)
        return json_response(ACCEPTED)

    async def generic_message(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        body = await read_body(request)
        message = parse_generic(body, datetime.now(UTC), request.headers.get("idempotency-key"))
        tenants = self.intake.tenants
        tenant = tenants.generic.get(message.tenant_id)
        if tenant is None:
            raise Problem(403, "unknown_tenant", f"tenant {message.tenant_id!r} is not served here")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not presented or not b24.tokens_match(tenants.secret(tenant.api_key_env), presented):
            raise Problem(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)")
        message = _normalised(message)
        await self._accept(message)
        return json_response({"result": "accepted", "idempotency_key": message.idempotency_key()}, 202)

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())


def _normalised(message: ChatMessage) -> ChatMessage:
    """NUL characters (PostgreSQL cannot store them): U+FFFD in free text, a 422 in an identifier."""
    try:
        return normalise_chat_message(message)
    except MalformedIdentifier as exc:
        raise Problem(422, "invalid_payload", str(exc)) from exc
