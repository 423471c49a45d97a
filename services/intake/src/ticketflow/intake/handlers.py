"""Thin entry points: HTTP routes for the chat platforms and the `chat.inbound` batch consumer.

Each route: check the request, normalise it, make it durable (`Acceptor`), answer. A bad request is a
`Problem`: a 4xx with a JSON body naming it, counted in `intake_rejected_total`, nothing written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import Response

from ticketflow.contracts.chat import ChatMessage, chat_message_decoder
from ticketflow.contracts.text import MalformedIdentifier, has_escaped_nul, normalise_chat_message
from ticketflow.eventstore.errors import UnstorableEvent
from ticketflow.intake.adapters import bitrix24 as b24
from ticketflow.intake.adapters.botx import BotxGateway, SystemNotice
from ticketflow.intake.adapters.desks import Tenants
from ticketflow.intake.adapters.generic import openapi_document, parse_generic
from ticketflow.intake.adapters.http import (
    Problem,
    decode_json_object,
    json_response,
    problem_response,
    read_body,
    require_content_type,
)
from ticketflow.intake.adapters.inbound import Acceptor, InboundProducer
from ticketflow.intake.adapters.metrics import Metrics
from ticketflow.intake.adapters.portal_admin import AdminCheck
from ticketflow.intake.adapters.portals import PortalTokens
from ticketflow.intake.adapters.store import IntakeStore, UnroutableMessage

log = logging.getLogger("ticketflow.intake")
# Kafka or PostgreSQL unreachable, timing out or refusing connections.
OUTAGES = (OSError, TimeoutError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError)
ACCEPTED = {"result": "accepted"}
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Intake:
    tenants: Tenants
    botx: BotxGateway
    portals: PortalTokens
    acceptor: Acceptor
    metrics: Metrics
    admin: AdminCheck | None = None  # Bitrix24: ask the portal whether the author is an administrator

    def guarded(self, route: str, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Problem as problem:
                self.metrics.inc("intake_rejected_total", route=route, reason=problem.reason)
                return problem_response(problem)
            except OUTAGES as exc:
                # Our outage, not the caller's fault: 503 so the platform retries (nothing was accepted).
                log.warning("%s: could not make the message durable: %r", route, exc)
                self.metrics.inc("intake_rejected_total", route=route, reason="unavailable")
                return json_response({"error": "unavailable", "detail": "try again later"}, 503)
            except Exception:
                log.exception("%s: unexpected failure", route)  # a bug: say so, in JSON, and count it
                self.metrics.inc("intake_rejected_total", route=route, reason="internal_error")
                return json_response({"error": "internal_error", "detail": "see the service log"}, 500)

        return run

    async def _accept(self, message: ChatMessage) -> None:
        """`message` as `_normalised` returned it."""
        if self.tenants.route(message.platform, message.tenant_id) is None:
            raise Problem(403, "unknown_tenant", f"no desk for {message.platform} tenant {message.tenant_id!r}")
        try:
            await self.acceptor.accept(message)
        except UnstorableEvent as exc:  # store mode; `_normalised` leaves no known cause, so a bug: still named
            raise Problem(422, "invalid_payload", str(exc)) from exc
        self.metrics.inc("intake_accepted_total", platform=message.platform)

    async def botx_command(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        raw = decode_json_object(await read_body(request))
        self.botx.verify(request.headers, raw.get("bot_id"))
        parsed = self.botx.parse_command(raw, datetime.now(UTC))
        if isinstance(parsed, SystemNotice):
            self.metrics.inc("intake_ignored_total", kind=parsed.name)
        else:
            await self._accept(_normalised(parsed))
        return json_response(ACCEPTED, 202)

    async def botx_status(self, request: Request) -> Response:
        return json_response(self.botx.status(request.query_params, request.headers))

    async def botx_callback(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        raw = decode_json_object(await read_body(request))
        bot_id = raw.get("bot_id") or _first_bot(self.tenants)
        self.botx.verify(request.headers, bot_id)
        self.botx.parse_callback(raw)
        self.metrics.inc("intake_ignored_total", kind="botx_callback")
        return json_response(ACCEPTED, 202)

    async def bitrix24_event(self, request: Request) -> Response:
        require_content_type(request, "application/x-www-form-urlencoded")
        event = b24.parse_event(await read_body(request))
        b24.check_portal(self.tenants, event)
        if event.name in {b24.APP_INSTALL, b24.APP_UPDATE}:
            await self.portals.install(event)
            self.metrics.inc("intake_ignored_total", kind=event.name)
            return json_response({"result": "installed"})
        await self.portals.verify(event)
        if event.name == b24.BOT_DELETE:
            await self.portals.bot_deleted(event)
        message = b24.to_chat_message(event, datetime.now(UTC)) if event.name == b24.MESSAGE_ADD else None
        if message is not None:
            message = _normalised(message)
        if message is not None and self.admin is not None:
            # Never a 4xx/5xx for this: a portal that cannot be asked leaves the sender unverified.
            domain = await self.portals.domain(event.member_id, expected=event.domain)
            message = await self.admin.apply(event, message, domain)
        if message is None:
            self.metrics.inc("intake_ignored_total", kind=event.name)
        else:
            await self._accept(message)
        return json_response(ACCEPTED)

    async def generic_message(self, request: Request) -> Response:
        require_content_type(request, "application/json")
        body = await read_body(request)
        message = parse_generic(body, datetime.now(UTC), request.headers.get("idempotency-key"))
        tenant = self.tenants.generic.get(message.tenant_id)
        if tenant is None:
            raise Problem(403, "unknown_tenant", f"tenant {message.tenant_id!r} is not served here")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not presented or not b24.tokens_match(self.tenants.secret(tenant.api_key_env), presented):
            raise Problem(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)")
        message = _normalised(message)
        await self._accept(message)
        return json_response({"result": "accepted", "idempotency_key": message.idempotency_key()}, 202)

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")


def _normalised(message: ChatMessage) -> ChatMessage:
    """NUL characters (PostgreSQL cannot store them): U+FFFD in free text, a 422 in an identifier."""
    try:
        return normalise_chat_message(message)
    except MalformedIdentifier as exc:
        raise Problem(422, "invalid_payload", str(exc)) from exc


def _first_bot(tenants: Tenants) -> str | None:
    return next(iter(tenants.express), None)


class InboundConsumer:
    """`chat.inbound` batches: decode each record, dead-letter the bad ones, record the rest (in lanes:
    concurrent transactions over disjoint conversations). `handle` does it all for one batch; the service
    runs these steps through `adapters.pipeline.InboundPipeline`, which keeps several batches in flight
    and commits offsets in order (manual ack: at-least-once; the store makes it exactly-once)."""

    def __init__(
        self, store: IntakeStore, producer: InboundProducer, tenants: Tenants, metrics: Metrics, lanes: int = 4
    ) -> None:
        self.lanes = lanes
        self.store = store
        self.producer = producer
        self.tenants = tenants
        self.metrics = metrics

    async def handle(self, records: Sequence[Any]) -> None:
        good, bad = self.split(records)
        await self.dead_letter_all(bad)
        await self.record(good)

    def split(self, records: Sequence[Any]) -> tuple[list[tuple[Any, ChatMessage]], list[tuple[Any, str, str]]]:
        """Decoded messages (record, message) and the records to dead-letter (record, reason, detail)."""
        good: list[tuple[Any, ChatMessage]] = []
        bad: list[tuple[Any, str, str]] = []
        served: dict[tuple[str, str], bool] = {}  # (platform, tenant) -> a desk serves it (asked once a batch)
        for record in records:
            value = record.value or b""
            try:
                message = chat_message_decoder.decode(value)
                if has_escaped_nul(value):  # a NUL in a string: checked only then (the hot path skips it)
                    message = normalise_chat_message(message)
            except (msgspec.DecodeError, msgspec.ValidationError, MalformedIdentifier) as exc:
                bad.append((record, "invalid_record", str(exc)))
                continue
            tenant = (message.platform, message.tenant_id)
            ok = served.get(tenant)
            if ok is None:
                ok = served[tenant] = self.tenants.route(*tenant) is not None
            if not ok:
                bad.append((record, "unknown_tenant", f"{message.platform}:{message.tenant_id}"))
                continue
            good.append((record, message))
        return good, bad

    async def dead_letter_all(self, bad: list[tuple[Any, str, str]]) -> None:
        for record, reason, detail in bad:
            await self._dead_letter(record, reason, detail)

    async def record(self, good: list[tuple[Any, ChatMessage]]) -> None:
        if not good:
            return
        try:
            results = await self.store.record_in_lanes([m for _, m in good], self.lanes)
        except (UnroutableMessage, UnstorableEvent):
            # One message spoils its batch's transaction: record them one by one, dead-letter that one.
            results = await self._one_by_one(good)
        outcomes: dict[str, int] = {}
        for result in results:
            outcome = result.outcome.value
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for outcome, count in outcomes.items():
            self.metrics.inc("intake_processed_total", count, outcome=outcome)

    async def _one_by_one(self, good: list[tuple[Any, ChatMessage]]) -> list[Any]:
        results = []
        for record, message in good:
            try:
                results += await self.store.record([message])
            except UnroutableMessage as exc:
                await self._dead_letter(record, "unknown_tenant", str(exc))
            except UnstorableEvent as exc:
                await self._dead_letter(record, "unstorable", str(exc))
        return results

    async def _dead_letter(self, record: Any, reason: str, detail: str) -> None:
        self.metrics.inc("intake_dead_letters_total", reason=reason)
        source = (record.topic, record.partition, record.offset)
        await self.producer.dead_letter(record.value, record.key, reason, detail, source)
