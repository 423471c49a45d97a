"""The preflight service against the real PostgreSQL event store and real HTTPS portals on 127.0.0.1.

Tickets are opened through the lifecycle decider (as intake does); the stored envelopes are fed to the
handlers directly. The packaged desk files are used as they ship.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from preflight_fakes import PORTAL_NAME, Certificates, PortalServer, Reply, ServeFactory, healthy_routes, rest_ask
from support.netguard import StaticResolver

from ticketflow.contracts import commands as c
from ticketflow.contracts import ticket_events as e
from ticketflow.contracts.envelope import EventEnvelope
from ticketflow.contracts.ids import ticket_stream
from ticketflow.contracts.values import ChatRef, Requester, Role
from ticketflow.deskconfig import DeskRegistry, load_desks
from ticketflow.eventstore import EventStore
from ticketflow.eventstore.commands import execute
from ticketflow.lifecycle import decide, evolve, initial_state
from ticketflow.preflight.adapters.checks import ChecksConfig
from ticketflow.preflight.app import Preflight
from ticketflow.preflight.domain import outcome as domain

pytestmark = pytest.mark.pg
BOX_MEMBER = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # the packaged bitrix24-box desk's example portal
CLIENT_BOT = "8dada2c8-67a6-4434-9dec-570d244e78ee"  # the packaged express desk's client-support bot
CONTRACT_BOT = "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"
PRODUCT_ERROR = "После обновления модуля main портал выдаёт ошибку 500 при открытии CRM"
FEATURE_SHORT = "Предложение: добавьте возможность закреплять сообщения в чатах"
FEATURE_DETAILS = "Платформа: мобильное приложение и web. Просят часто, около 40 обращений в месяц. Важность: высокая"


@pytest.fixture(scope="module")
def desks() -> DeskRegistry:
    return load_desks()


def make_service(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, portal: PortalServer | None = None
) -> Preflight:
    """`portal`: where license and updates are asked (its REST, as the install's client would); None:
    the portal has no install, so they are not checked."""
    resolver = StaticResolver({PORTAL_NAME: ["127.0.0.1"]})

    async def call(member_id: str, method: str) -> Any:
        assert portal is not None
        return await rest_ask(portal.url(), config, resolver)(method)

    return Preflight(EventStore(pool), desks, resolver, lambda _desk: config, portal_call=call if portal else None)


async def open_ticket(
    store: EventStore,
    *,
    text: str,
    roles: tuple[Role, ...] = ("portal_admin",),
    portal_url: str | None = None,
    desk: str = "bitrix24-box",
    track: str = "box",
    tenant: str = BOX_MEMBER,
    locale: str = "ru",
    admin_unverified: str | None = None,
    user: str | None = None,
) -> EventEnvelope:
    """Open a ticket the way intake does (OpenTicket through the decider); returns the stored envelope.
    Each ticket has a requester of its own unless `user` names one."""
    ticket = uuid.uuid4()
    platform = "bitrix24" if desk == "bitrix24-box" else "express" if desk == "express" else "generic"
    chat = ChatRef(platform, tenant, f"chat-{ticket}", portal_url=portal_url)  # type: ignore[arg-type]
    requester = Requester(user or f"user-{ticket}", locale=locale, roles=roles, admin_unverified=admin_unverified)
    command = c.OpenTicket(ticket, desk, track, chat, requester, text, f"m-{ticket}", datetime.now(UTC))
    await execute(store, ticket_stream(ticket), command, decide, evolve, initial_state())
    [opened] = await store.read_stream(ticket_stream(ticket))
    return opened


async def customer_says(store: EventStore, ticket: uuid.UUID, text: str, message_id: str) -> EventEnvelope:
    command = c.AddCustomerMessage(ticket, message_id, text, datetime.now(UTC))
    await execute(store, ticket_stream(ticket), command, decide, evolve, initial_state())
    return (await store.read_stream(ticket_stream(ticket)))[-1]


async def events_of(store: EventStore, ticket: uuid.UUID) -> list[Any]:
    return [env.event for env in await store.read_stream(ticket_stream(ticket))]


def ticket_of(envelope: EventEnvelope) -> uuid.UUID:
    return envelope.event.ticket_id  # type: ignore[union-attr]


async def test_a_portal_admin_with_a_healthy_portal_passes_with_every_checks_evidence(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config, server)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url())
    assert await service.handle(opened) == "RecordPreflightPassed"
    [_, passed] = await events_of(service.store, ticket_of(opened))
    assert isinstance(passed, e.PreflightPassed)
    assert passed.category == "product_errors"  # the desk file's id for the seed's "ошибки продукта"
    names = [check.name for check in passed.checks]
    assert sorted(names) == sorted([*desks.desk("bitrix24-box").preflight.checks, "scope"])
    assert all(check.passed and check.reason in ("ok", "in_scope") for check in passed.checks)
    tls = next(check for check in passed.checks if check.name == "tls_certificate")
    assert tls.evidence["connected_address"] == "127.0.0.1" and "trustme" in tls.evidence["cert_issuer"].lower()

    connections = server.connections
    assert await service.handle(opened) == "duplicate delivery"  # redelivered: nothing run, nothing stored
    assert len(await events_of(service.store, ticket_of(opened))) == 2
    second = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url())
    assert await service.handle(second) == "RecordPreflightPassed"
    assert server.connections == connections  # the same portal within the TTL: the cached report


async def test_a_non_admin_is_refused_in_their_language_and_the_portal_is_not_contacted(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config, server)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, roles=("end_user",), portal_url=server.url())
    assert await service.handle(opened) == "RefuseTicket"
    refused = (await events_of(service.store, ticket_of(opened)))[-1]
    assert isinstance(refused, e.TicketRefused) and refused.code == "not_portal_admin"
    assert "администраторам портала" in refused.reason
    assert server.connections == 0


async def test_a_requester_whose_portal_could_not_be_asked_hears_so_not_that_they_are_no_admin(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config, server)
    opened = await open_ticket(
        service.store, text=PRODUCT_ERROR, roles=(), portal_url=server.url(), admin_unverified="timeout", locale="en"
    )
    assert await service.handle(opened) == "RefuseTicket"
    refused = (await events_of(service.store, ticket_of(opened)))[-1]
    assert isinstance(refused, e.TicketRefused) and refused.code == "portal_admin_unverified"
    assert "could not confirm" in refused.reason and "write again" in refused.reason
    assert server.connections == 0


async def test_a_failed_check_waits_for_the_customer_and_recheck_runs_fresh_checks_once(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    routes = healthy_routes()
    routes["/pub/"] = Reply(status=302, headers={"Location": "/auth/"})
    routes["/auth/"] = Reply(body=b"<form>login</form>")
    server = await serve(certs.valid, routes)
    service = make_service(pool, desks, config, server)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url(), locale="en")
    ticket = ticket_of(opened)
    assert await service.handle(opened) == "RecordPreflightFailed"
    failed = (await events_of(service.store, ticket))[-1]
    assert isinstance(failed, e.PreflightFailed)
    [pub] = [check for check in failed.checks if not check.passed]
    assert pub.name == "pub_readable" and pub.reason == "pub_not_readable"
    assert "/pub/" in pub.remediation["ru"] and "/pub/" in pub.remediation["en"]
    assert "/auth/" in pub.evidence["detail"]

    chatter = await customer_says(service.store, ticket, "I think we fixed it", "c1")
    assert await service.handle(chatter) == "ignored"  # only /recheck re-runs the portal checks
    routes["/pub/"] = Reply(body=b"<html>public</html>")  # the administrator fixes it
    recheck = await customer_says(service.store, ticket, "/recheck", "c2")
    assert await service.handle(recheck) == "RecordPreflightPassed"  # the failed report was cached for 60 s
    requests = len(server.requests)
    assert await service.handle(recheck) == "duplicate delivery"  # the same message: no second run
    assert len(server.requests) == requests
    assert [type(ev).__name__ for ev in await events_of(service.store, ticket)] == [
        "TicketOpened",
        "PreflightFailed",
        "CustomerMessageAdded",
        "CustomerMessageAdded",
        "PreflightPassed",
    ]
    late = await customer_says(service.store, ticket, "/recheck", "c3")
    assert await service.handle(late) == "ignored"  # no longer held by preflight


async def test_without_an_install_license_and_updates_are_not_checked_and_the_ticket_passes(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config)  # no install: nothing may ask the portal
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=server.url())
    assert await service.handle(opened) == "RecordPreflightPassed"
    passed = (await events_of(service.store, ticket_of(opened)))[-1]
    unchecked = {check.name: check for check in passed.checks if check.evidence.get("outcome") == "not_checked"}
    assert set(unchecked) == {"license", "updates"}
    assert {check.reason for check in unchecked.values()} == {"not_checked_no_install"}
    assert not any(target.startswith("/rest/ticketflow") for target, _ in server.requests)


async def test_the_desks_portal_domain_is_checked_when_the_event_has_no_address(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    service = make_service(pool, desks, config)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR)  # portal.example.ru does not resolve here
    assert await service.handle(opened) == "RecordPreflightFailed"
    failed = (await events_of(service.store, ticket_of(opened)))[-1]
    address = next(check for check in failed.checks if check.name == "public_address")
    assert address.reason == "not_resolved" and "portal.example.ru" in address.remediation["en"] + str(address.evidence)


async def test_a_clearly_out_of_scope_question_is_referred_and_a_vague_one_passes_unclassified(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig, serve: ServeFactory, certs: Certificates
) -> None:
    server = await serve(certs.valid, healthy_routes())
    service = make_service(pool, desks, config, server)
    custom = await open_ticket(
        service.store, text="Разработайте нам модуль интеграции с 1С под наши требования", portal_url=server.url()
    )
    assert await service.handle(custom) == "ReferTicket"
    referred = (await events_of(service.store, ticket_of(custom)))[-1]
    assert isinstance(referred, e.TicketReferred) and referred.category == "custom_development"
    assert "https://www.bitrix24.ru/partners/" in referred.reason and "bitrix24_partners" not in referred.reason
    # "502" is server_diagnostics evidence, but weak (1.5): a 502 may as well be a product error.
    vague = await open_ticket(service.store, text="Портал пишет 502", portal_url=server.url())
    assert await service.handle(vague) == "RecordPreflightPassed"
    passed = (await events_of(service.store, ticket_of(vague)))[-1]
    scope = next(check for check in passed.checks if check.name == "scope")
    assert passed.category == "unclassified" and scope.reason == "out_of_scope_suggested"
    assert scope.evidence["classifier_category"] == "server_diagnostics"


async def test_express_feature_request_follow_ups_then_duplicates(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    service = make_service(pool, desks, config)
    bot = str(uuid.uuid4()) + "-" + CLIENT_BOT  # a tenant of its own, so other runs' tickets do not match
    first = await open_ticket(
        service.store, text=FEATURE_SHORT, roles=("end_user",), desk="express", track="client", tenant=bot,
        user="ann",
    )  # fmt: skip
    ticket = ticket_of(first)
    assert await service.handle(first) == "RecordPreflightFailed"
    failed = (await events_of(service.store, ticket))[-1]
    [feature] = [check for check in failed.checks if not check.passed]
    assert feature.name == domain.FEATURE_CHECK
    assert "платформ" in feature.remediation["ru"].lower() and "how often" in feature.remediation["en"].lower()

    answer = await customer_says(service.store, ticket, FEATURE_DETAILS, "a1")
    assert await service.handle(answer) == "RecordPreflightPassed"
    passed = (await events_of(service.store, ticket))[-1]
    assert passed.category == "feature_request"
    row = await pool.fetchrow(
        "SELECT organisation_id, kind, body, merge_scope FROM preflight_open_tickets WHERE ticket_id = $1", ticket
    )
    assert row is not None and row["kind"] == "feature" and FEATURE_DETAILS in row["body"]
    assert row["merge_scope"] == f"express:{bot}:ann"  # not one organisation: the requester's own

    again = await open_ticket(
        service.store,
        text=FEATURE_SHORT + ", пожалуйста",
        roles=("end_user",),
        desk="express",
        track="client",
        tenant=bot,
        user="ann",
    )
    assert await service.handle(again) == "MarkDuplicate"  # the same requester again: merged
    duplicate = (await events_of(service.store, ticket_of(again)))[-1]
    assert isinstance(duplicate, e.DuplicateSuspected) and duplicate.duplicate_of == ticket
    assert duplicate.suspected_at is not None

    # When the ticket closes (much later, after routing and work), it stops being a duplicate candidate.
    close_envelope = msgspec.structs.replace(
        first, event=e.TicketClosed(ticket, "done", "agent"), event_id=uuid.uuid4()
    )
    assert await service.handle(close_envelope) == "forgotten"
    assert await pool.fetchval("SELECT count(*) FROM preflight_open_tickets WHERE ticket_id = $1", ticket) == 0


async def test_an_end_user_is_refused_technical_support(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    service = make_service(pool, desks, config)
    opened = await open_ticket(
        service.store, text="CTS не стартует", roles=("end_user",), desk="express", track="technical-standard",
        tenant=CONTRACT_BOT, locale="en",
    )  # fmt: skip
    assert await service.handle(opened) == "RefuseTicket"
    refused = (await events_of(service.store, ticket_of(opened)))[-1]
    assert refused.code == "not_contract_contact" and "system administrators" in refused.reason


async def test_another_requesters_look_alike_on_a_public_bot_is_suggested_and_an_undone_merge_not_redone(
    pool: asyncpg.Pool, desks: DeskRegistry, config: ChecksConfig
) -> None:
    """Issue 14: the public client-support bot is one tenant for every customer."""
    service = make_service(pool, desks, config)
    bot = str(uuid.uuid4()) + "-" + CLIENT_BOT
    ask = {"roles": ("end_user",), "desk": "express", "track": "client", "tenant": bot}
    a = await open_ticket(service.store, text="Ошибка входа с телефона: пароль не принимается", user="a", **ask)  # type: ignore[arg-type]
    assert await service.handle(a) == "RecordPreflightPassed"

    b = await open_ticket(service.store, text="ошибка вход телефон", user="b", **ask)  # type: ignore[arg-type]
    assert await service.handle(b) == "RecordPreflightPassed"  # a ticket of its own
    [_, passed, suggested] = await events_of(service.store, ticket_of(b))
    assert isinstance(passed, e.PreflightPassed) and passed.category == "bug_report"
    assert isinstance(suggested, e.DuplicateSuggested) and suggested.candidate_id == ticket_of(a)

    # The same requester's repeat is merged; an agent undoes it; preflight examines it again and now
    # only suggests its own earlier ticket.
    a2 = await open_ticket(service.store, text="ошибка вход с телефона", user="a", **ask)  # type: ignore[arg-type]
    assert await service.handle(a2) == "MarkDuplicate"
    undo = c.UndoMerge(ticket_of(a2), "a different problem", "lead")
    await execute(service.store, ticket_stream(ticket_of(a2)), undo, decide, evolve, initial_state())
    undone = (await service.store.read_stream(ticket_stream(ticket_of(a2))))[-1]
    assert isinstance(undone.event, e.MergeUndone)
    assert await service.handle(undone) == "RecordPreflightPassed"
    after = await events_of(service.store, ticket_of(a2))
    since_undo = after[after.index(undone.event) + 1 :]
    assert isinstance(since_undo[0], e.PreflightPassed)
    suggested_ids = {s.candidate_id for s in since_undo[1:] if isinstance(s, e.DuplicateSuggested)}
    assert ticket_of(a) in suggested_ids and suggested_ids <= {ticket_of(a), ticket_of(b)}
