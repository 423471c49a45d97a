"""The license and update checks for real (issue 16, item 2): the portal is asked through its install
(ticketflow.bitrix24 against the fake Bitrix24 platform, tokens in the real PostgreSQL), and the
stable-versions feed is fetched over HTTPS, cached, and kept when a later fetch fails. Each outcome:
checked and passed, checked and failed with remediation, not checked with the reason (which is in the
preflight event the agent reads, and does not refuse the customer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from fakes.asgi import Fault, serve
from fakes.bitrix24 import FakeBitrix24
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.bitrix24 import installed_portal, portal_rest
from support.netguard import LOOPBACK_ALLOWED, StaticResolver

from ticketflow.bitrix24 import PortalRest
from ticketflow.contracts import ticket_events as e
from ticketflow.deskconfig import load_desks
from ticketflow.eventstore import EventStore
from ticketflow.preflight.adapters.checks import (
    CheckName,
    ChecksConfig,
    Outcome,
    PortalCheckReport,
    PortalTarget,
    StableFeed,
    check_portal_uncached,
)
from ticketflow.preflight.adapters.stable_versions import StableVersionsFeed
from ticketflow.preflight.app import Preflight

pytestmark = pytest.mark.pg
STABLE = {"main": "25.100.300", "im": "25.0.100"}


class FeedServer:
    """The stable-versions feed at an https URL; `answer` is what the next fetch gets."""

    def __init__(self) -> None:
        self.answer: Response = JSONResponse(STABLE)
        self.requests = 0
        self.url = ""

    async def _feed(self, request: Request) -> Response:
        self.requests += 1
        return self.answer


@pytest_asyncio.fixture(loop_scope="session")
async def fake() -> AsyncIterator[FakeBitrix24]:
    async with FakeBitrix24(member_id="portal-7").running() as platform:
        yield platform


@pytest_asyncio.fixture(loop_scope="session")
async def feed_server(fake: FakeBitrix24) -> AsyncIterator[FeedServer]:
    server = FeedServer()
    async with serve(Starlette(routes=[Route("/stable.json", server._feed)]), tls=fake.ca) as base:
        server.url = f"{base}/stable.json"
        yield server


def checks_config(fake: FakeBitrix24, timeout_s: float = 3.0) -> ChecksConfig:
    """A deployment whose portals and feed are on 127.0.0.0/8 behind the fake's CA."""
    ca = fake.ca.cert_pem.bytes().decode("ascii")
    return ChecksConfig(timeout_s=timeout_s, address_policy=LOOPBACK_ALLOWED, extra_trusted_ca_pem=ca,
                        allowed_ports=None)  # fmt: skip


async def check(
    fake: FakeBitrix24,
    rest: PortalRest | None,
    feed: StableFeed,
    *,
    member_id: str = "portal-7",
    timeout_s: float = 3.0,
) -> PortalCheckReport:
    async def ask(method: str) -> Any:
        assert rest is not None
        return await rest.call(member_id, method)

    target = PortalTarget(url=fake.base_url, member_id=member_id)
    resolver = StaticResolver({})
    return await check_portal_uncached(
        target, checks_config(fake, timeout_s), resolver, ask=ask if rest else None, feed=feed
    )


async def test_checked_and_passed(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = await installed_portal(fake, pool)
    report = await check(fake, rest, StableFeed(STABLE))
    for name in (CheckName.LICENSE, CheckName.UPDATES):
        assert (report.result(name).outcome, report.result(name).reason) == (Outcome.PASSED, "ok"), report.result(name)
    assert ("ticketflow.portal.info", "ok") in fake.calls  # asked with the install's token


async def test_checked_and_failed_with_remediation(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = await installed_portal(fake, pool)
    fake.portal_info = {"LICENSE": "ru_demo", "LICENSE_DEMO": True, "MODULES": {"main": "24.0.0", "im": "25.0.100"}}
    report = await check(fake, rest, StableFeed(STABLE))
    license_result, updates = report.result(CheckName.LICENSE), report.result(CheckName.UPDATES)
    assert (license_result.outcome, license_result.reason) == (Outcome.FAILED, "demo_license")
    assert (updates.outcome, updates.reason) == (Outcome.FAILED, "updates_missing")
    assert updates.evidence.detail == "main 24.0.0 < 25.100.300"
    for failed in (license_result, updates):
        assert failed.remediation is not None and failed.remediation.ru and failed.remediation.en


async def test_an_expired_token_is_renewed_and_the_portal_checked(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = await installed_portal(fake, pool)
    fake.expire_access_tokens()
    renewed = fake.renewed()
    report = await check(fake, rest, StableFeed(STABLE))
    assert report.result(CheckName.LICENSE).outcome is Outcome.PASSED
    assert fake.renewed() == renewed + 1


@pytest.mark.parametrize("cause", ["no install", "renewal refused", "timeout", "method missing"])
async def test_not_checked_with_the_reason_when_the_portal_cannot_be_asked(
    fake: FakeBitrix24, pool: asyncpg.Pool, cause: str
) -> None:
    rest: PortalRest | None = await installed_portal(fake, pool)
    member_id, expected = "portal-7", ""
    if cause == "no install":
        member_id, expected = "portal-never-installed", "not_installed"
        rest = portal_rest(fake, pool)
    elif cause == "renewal refused":
        await pool.execute("UPDATE bitrix24_installs SET refresh_token = 'spent' WHERE member_id = 'portal-7'")
        rest, expected = portal_rest(fake, pool), "refresh_refused"
        fake.expire_access_tokens()
    elif cause == "timeout":
        fake.faults.add(Fault(200, {"result": {}}, delay=3.0))
        expected = "timeout"
    elif cause == "method missing":  # a portal without the support module's method
        fake.faults.add(Fault(404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found"}))
        expected = "ERROR_METHOD_NOT_FOUND"
    report = await check(fake, rest, StableFeed(STABLE), member_id=member_id, timeout_s=1.0)
    for name in (CheckName.LICENSE, CheckName.UPDATES):
        result = report.result(name)
        assert (result.outcome, result.reason) == (Outcome.NOT_CHECKED, expected), result
        assert result.remediation is None and result.evidence.detail
    fake.faults.take()  # a fault the portal was never asked for (an earlier refusal) does not leak
    if cause == "renewal refused":
        assert "invalid_grant" in (report.result(CheckName.LICENSE).evidence.detail or "")


async def test_not_checked_when_the_install_cannot_be_read(fake: FakeBitrix24, pg_database: str) -> None:
    gone = await asyncpg.create_pool(pg_database, min_size=1, max_size=1)
    assert gone is not None
    rest = portal_rest(fake, gone)
    await gone.close()  # a database outage while the install is read
    report = await check(fake, rest, StableFeed(STABLE))
    assert {(report.result(n).outcome, report.result(n).reason) for n in (CheckName.LICENSE, CheckName.UPDATES)} == {
        (Outcome.NOT_CHECKED, "installs_unavailable")
    }


async def test_the_feed_is_fetched_cached_and_its_last_good_copy_kept(
    fake: FakeBitrix24, feed_server: FeedServer
) -> None:
    now = [1000.0]
    feed = StableVersionsFeed(url=feed_server.url, config=checks_config(fake), resolver=StaticResolver({}),
                              ttl_s=600, retry_s=60, clock=lambda: now[0])  # fmt: skip
    assert (await feed.current()).versions == STABLE
    assert (await feed.current()).versions == STABLE and feed_server.requests == 1  # cached
    now[0] += 601
    feed_server.answer = Response(b"<html>maintenance</html>", status_code=503)
    kept = await feed.current()
    assert kept.versions == STABLE and feed_server.requests == 2  # the fetch failed: the last copy is kept
    assert (await feed.current()).versions == STABLE and feed_server.requests == 2  # not asked again until retry_s
    now[0] += 61
    feed_server.answer = JSONResponse({"modules": {"main": "25.200.0"}})
    assert (await feed.current()).versions == {"main": "25.200.0"} and feed_server.requests == 3


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Response(b"<html>1C-Bitrix downloads</html>", media_type="text/html"), "feed_unreadable"),
        (Response(b"busy", status_code=503), "feed_unavailable"),
        (JSONResponse({"main": 25}), "feed_unreadable"),
    ],
)
async def test_without_a_good_copy_updates_is_not_checked_with_the_reason(
    fake: FakeBitrix24, feed_server: FeedServer, pool: asyncpg.Pool, answer: Response, reason: str
) -> None:
    feed_server.answer = answer
    feed = StableVersionsFeed(url=feed_server.url, config=checks_config(fake), resolver=StaticResolver({}))
    stable = await feed.current()
    assert stable.versions == {} and stable.problem is not None and stable.problem[0] == reason
    report = await check(fake, await installed_portal(fake, pool), stable)
    assert report.result(CheckName.LICENSE).outcome is Outcome.PASSED  # the license is still checked
    updates = report.result(CheckName.UPDATES)
    assert (updates.outcome, updates.reason) == (Outcome.NOT_CHECKED, reason)


async def test_the_agent_reads_not_checked_in_the_preflight_event_and_the_customer_is_not_refused(
    fake: FakeBitrix24, pool: asyncpg.Pool
) -> None:
    """The whole service path: the ticket's portal has no install; its network checks pass (the fake
    portal answers /pub/ and the REST root in JSON); PreflightPassed carries license and updates as
    not checked, with the reason."""
    from test_service_preflight import PRODUCT_ERROR, events_of, open_ticket, ticket_of

    desks = load_desks()
    rest = portal_rest(fake, pool)
    config = checks_config(fake)
    service = Preflight(EventStore(pool), desks, StaticResolver({}), lambda _desk: config, portal_call=rest.call)
    opened = await open_ticket(service.store, text=PRODUCT_ERROR, portal_url=fake.base_url)
    outcome = await service.handle(opened)
    last = (await events_of(service.store, ticket_of(opened)))[-1]
    checks = {check.name: check for check in last.checks}
    assert checks["license"].reason == checks["updates"].reason == "not_checked_not_installed"
    assert checks["license"].passed and checks["license"].evidence["outcome"] == "not_checked"
    assert "has not installed" in checks["license"].evidence["detail"]
    # The portal's network checks decide the outcome; license and updates never hold the ticket.
    holding = [c.name for c in last.checks if not c.passed]
    assert "license" not in holding and "updates" not in holding
    assert outcome in {"RecordPreflightPassed", "RecordPreflightFailed"}
    assert isinstance(last, e.PreflightPassed | e.PreflightFailed)
