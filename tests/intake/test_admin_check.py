"""Bitrix24 admin detection against a real local HTTPS portal: intake (a real process) asks REST
`user.admin` with the event's `auth[access_token]` at the portal's stored domain, and the answer, or
why there is none, ends up in the TicketOpened requester in the real PostgreSQL store."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fake_portal import FakePortal
from intake_payloads import APP_TOKEN, B24_BOT_ID, B24_CLIENT_ID, TENANTS_TOML, b24_auth, b24_message
from intake_service import RunningIntake, free_port, migrate_intake, seed_install, start_intake, stop_intake

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# The fake portal listens on one port of three loopback addresses; its certificate names the first two.
CERTIFIED, UNCERTIFIED = ("127.0.0.1", "127.0.0.2"), "127.0.0.3"


class Portals:
    """member_id -> the domain the portal installs with (and its events name): IP literals, as no test
    name resolves in the service's process (names and their resolution: test_portal_admin.py)."""

    def __init__(self, port: int) -> None:
        self.closed = closed = free_port()
        self.domains = {
            "m-ok": f"127.0.0.1:{port}",
            "m-slow": f"127.0.0.2:{port}",  # its own address: a timeout keeps m-ok's portal asked
            "m-private": f"10.0.0.5:{port}",  # a private address, not among the allowed networks
            "m-ip": "192.168.10.5",  # a private address, default port
            "m-down": f"127.0.0.1:{closed}",  # nothing listens there
            "m-tls": f"{UNCERTIFIED}:{port}",  # the certificate does not name it
        }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def portal() -> AsyncIterator[FakePortal]:
    fake = FakePortal(CERTIFIED, hosts=(*CERTIFIED, UNCERTIFIED))
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def setup(
    pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any, portal: FakePortal
) -> AsyncIterator[tuple[RunningIntake, Portals]]:
    portals = Portals(portal.port)
    tmp = tmp_path_factory.mktemp("intake-admin")
    tenants = tmp / "admin-tenants.toml"
    extra = "".join(
        f'\n[[bitrix24]]\nmember_id = "{m}"\nclient_id = "{B24_CLIENT_ID}"\n'
        'client_secret_env = "INTAKE_TEST_B24_SECRET"\n'
        f'portal_domains = ["{d}"]\nbot_ids = ["{B24_BOT_ID}"]\ndesk = "bitrix24-box"\ntrack = "box"\n'
        for m, d in portals.domains.items()
    )
    tenants.write_text(TENANTS_TOML + extra)
    ca = tmp / "ca.pem"
    ca.write_text(portal.ca_pem)
    await migrate_intake(pg_database)
    intake = await start_intake(
        pg_database,
        kafka_bootstrap,
        tmp,
        extra_env={  # a deployment whose portals sit on 127.0.0.0/8 behind their own CA
            "TICKETFLOW_INTAKE_TENANTS": str(tenants),
            "TICKETFLOW_INTAKE_B24_ADMIN_CHECK": "1",
            "TICKETFLOW_B24_ALLOWED_NETWORKS": "127.0.0.0/8",
            "TICKETFLOW_B24_ALLOWED_PORTS": f"{portal.port},{portals.closed},443",
            "TICKETFLOW_B24_CA_FILE": str(ca),
            "TICKETFLOW_INTAKE_B24_ADMIN_TIMEOUT": "1",
        },
    )
    for member, domain in portals.domains.items():  # verified installs: test_bitrix24_lifecycle.py
        await seed_install(intake.pool, member, domain)
    yield intake, portals
    await stop_intake(intake)


async def post_message(
    intake: RunningIntake,
    member: str,
    domain: str,
    access_token: str,
    user_id: str,
    *,
    auth_user: str | None = None,
    suffix: str = "",
) -> str:
    dialog = f"u{uuid.uuid4().hex[:10]}"
    auth = b24_auth(
        member,
        APP_TOKEN,
        auth_user or user_id,
        domain=domain,
        access_token=access_token,
        expires=str(int(time.time()) + 3600),
    )
    form = b24_message(
        "После обновления портал отдаёт 500",
        dialog_id=dialog,
        message_id=str(uuid.uuid4().int % 10**9),
        user_id=user_id,
        member_id=member,
        auth=auth,
    )
    async with intake.client() as client:
        answer = await client.post("/bitrix24/events", content=form + suffix, headers=FORM)
    assert (answer.status_code, answer.json()) == (200, {"result": "accepted"}), answer.text
    return dialog


async def requester(intake: RunningIntake, dialog: str) -> dict[str, Any]:
    """The requester of the TicketOpened in this Bitrix24 dialog, read from the event store."""
    query = """SELECT data::text FROM events WHERE event_type = 'TicketOpened'
               AND data->'chat'->>'platform' = 'bitrix24' AND data->'chat'->>'conversation_id' = $1"""
    rows = await intake.eventually(lambda: intake.pool.fetch(query, dialog), lambda r: len(r) >= 1)
    assert len(rows) == 1, f"no TicketOpened for {dialog}:\n{intake.log_path.read_text()[-3000:]}"
    found: dict[str, Any] = json.loads(rows[0][0])["requester"]
    return found


async def test_an_administrator_is_named_portal_admin_after_one_call(
    setup: tuple[RunningIntake, Portals], portal: FakePortal
) -> None:
    intake, portals = setup
    domain = portals.domains["m-ok"]
    first = await post_message(intake, "m-ok", domain, "tok-admin-101", "101")
    second = await post_message(intake, "m-ok", domain, "tok-admin-101", "101")  # a new dialog, same user
    for dialog in (first, second):
        found = await requester(intake, dialog)
        assert found["user_id"] == "101" and found["roles"] == ["portal_admin"]
        assert found.get("admin_unverified") is None
    assert portal.tokens_seen("tok-admin-101") == 1  # the second answer came from the cache
    [seen] = [s for s in portal.seen if s.token == "tok-admin-101"]
    # Sent to the stored domain (the Host header), at the checked address; an IP literal has no SNI (a
    # name's SNI and certificate: test_portal_admin.py).
    assert (seen.host, seen.path, seen.sni) == (domain, "/rest/user.admin.json", None)
    assert await intake.metric("ticketflow_intake_admin_checks_total", outcome="admin") >= 1
    assert await intake.metric("ticketflow_intake_admin_checks_total", outcome="cached") >= 1


async def test_concurrent_messages_of_one_user_cost_one_call(
    setup: tuple[RunningIntake, Portals], portal: FakePortal
) -> None:
    intake, portals = setup
    domain = portals.domains["m-ok"]
    dialogs = await asyncio.gather(*(post_message(intake, "m-ok", domain, "tok-admin-102", "102") for _ in range(8)))
    for dialog in dialogs:
        assert (await requester(intake, dialog))["roles"] == ["portal_admin"]
    assert portal.tokens_seen("tok-admin-102") == 1


async def test_a_user_who_is_not_an_administrator_gets_no_admin_role(
    setup: tuple[RunningIntake, Portals], portal: FakePortal
) -> None:
    intake, portals = setup
    dialog = await post_message(intake, "m-ok", portals.domains["m-ok"], "tok-user-201", "201")
    found = await requester(intake, dialog)
    assert found["roles"] == [] and found.get("admin_unverified") is None
    assert portal.tokens_seen("tok-user-201") == 1


async def test_a_flag_the_portal_states_itself_is_used_without_a_call(
    setup: tuple[RunningIntake, Portals], portal: FakePortal
) -> None:
    intake, portals = setup
    suffix = "&data%5BUSER%5D%5BIS_ADMIN%5D=Y"
    dialog = await post_message(intake, "m-ok", portals.domains["m-ok"], "tok-user-202", "202", suffix=suffix)
    assert (await requester(intake, dialog))["roles"] == ["portal_admin"]
    assert portal.tokens_seen("tok-user-202") == 0


@pytest.mark.parametrize(
    ("member", "token", "reason", "reaches_portal"),
    [
        ("m-ok", "tok-expired-301", "http_401: expired_token", True),
        ("m-ok", "tok-garbage-302", "bad_answer", True),
        ("m-ok", "tok-redirect-303", "redirect", True),
        ("m-slow", "tok-slow-304", "timeout", True),
        ("m-private", "tok-admin-305", "forbidden_address", False),
        ("m-ip", "tok-admin-306", "forbidden_address", False),
        ("m-down", "tok-admin-307", "connection_failed", False),
        ("m-tls", "tok-admin-308", "tls_error", False),
    ],
)
async def test_a_portal_that_cannot_be_asked_still_gets_its_ticket_marked_unverified(
    setup: tuple[RunningIntake, Portals],
    portal: FakePortal,
    member: str,
    token: str,
    reason: str,
    reaches_portal: bool,
) -> None:
    intake, portals = setup
    user = token.rsplit("-", 1)[1]
    started = time.monotonic()
    dialog = await post_message(intake, member, portals.domains[member], token, user)
    assert time.monotonic() - started < 3  # the 1 s timeout bounds the webhook's wait
    found = await requester(intake, dialog)
    assert found["roles"] == [] and found["admin_unverified"].startswith(reason), found
    assert portal.tokens_seen(token) == (1 if reaches_portal else 0)
    assert await intake.metric("ticketflow_intake_admin_unverified_total", reason=reason.split(":")[0]) >= 1
    assert await intake.metric("ticketflow_intake_admin_checks_total", outcome="unverified") >= 1


async def test_an_event_naming_another_domain_sends_the_token_nowhere(
    setup: tuple[RunningIntake, Portals], portal: FakePortal
) -> None:
    intake, _ = setup
    dialog = await post_message(intake, "m-ok", "evil.test", "tok-admin-401", "401")  # installed as portal.test
    found = await requester(intake, dialog)
    assert found["roles"] == [] and found["admin_unverified"].startswith("domain_mismatch")
    assert portal.tokens_seen("tok-admin-401") == 0


async def test_a_token_of_another_user_is_not_used(setup: tuple[RunningIntake, Portals], portal: FakePortal) -> None:
    intake, portals = setup
    dialog = await post_message(intake, "m-ok", portals.domains["m-ok"], "tok-admin-402", "402", auth_user="1")
    found = await requester(intake, dialog)
    assert found["roles"] == [] and found["admin_unverified"].startswith("token_user_mismatch")
    assert portal.tokens_seen("tok-admin-402") == 0
