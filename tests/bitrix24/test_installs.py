"""ticketflow.bitrix24 against the fake platform (HTTPS on 127.0.0.1) and the real PostgreSQL: installs are
verified before anything is stored, tokens that expire during the test are renewed once across two
"processes", an uninstall is seen by another process within its cache TTL, the bot is registered once."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from fakes.bitrix24 import FakeBitrix24
from support.bitrix24 import fake_app, guarded_http, install_claim, opened, portal_rest
from support.netguard import LOOPBACK_ALLOWED, StaticResolver

from ticketflow.bitrix24 import (
    BotProfile,
    ForbiddenAddress,
    InstallRefused,
    NotInstalled,
    OAuthServer,
    PortalRest,
    TokenRefreshRefused,
    Unavailable,
    ensure_bot,
    verify_install,
)
from ticketflow.bitrix24.http import GuardedHttp

pytestmark = pytest.mark.pg
APP_TOKEN = "application-token-0001"


claim = install_claim


async def installed(fake: FakeBitrix24, rest: PortalRest) -> None:
    install = await verify_install(claim(fake.install_form(APP_TOKEN)), fake_app(fake), rest.oauth)
    await rest.installs.save(install)


async def test_a_genuine_install_is_verified_and_its_tokens_work(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = portal_rest(fake, pool)
    await pool.execute("DELETE FROM bitrix24_installs")
    install = await verify_install(claim(fake.install_form(APP_TOKEN)), fake_app(fake), rest.oauth)
    assert (install.member_id, install.domain, install.client_id) == (fake.member_id, fake.domain, fake.client_id)
    assert fake.refreshes[-1].outcome == "renewed"  # the install's refresh token was spent on verification
    await rest.installs.save(install)
    assert await rest.call(fake.member_id, "user.admin") is True


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong secret", "not_verified"),
        ("unknown domain", "unknown_domain"),
        ("another portal's member_id", "member_mismatch"),
        ("replayed", "not_verified"),
        ("another application", "not_verified"),
        ("no refresh token", "no_tokens"),
        ("unconfigured portal", "unknown_portal"),
    ],
)
async def test_a_forged_install_is_refused_and_nothing_is_stored(
    fake: FakeBitrix24, pool: asyncpg.Pool, case: str, reason: str
) -> None:
    rest = portal_rest(fake, pool)
    await pool.execute("DELETE FROM bitrix24_installs")
    app = fake_app(fake)
    form = fake.install_form(APP_TOKEN)
    if case == "wrong secret":
        app = fake_app(fake, secret="not-the-secret")
    elif case == "unknown domain":
        form = fake.install_form(APP_TOKEN, domain="portal.attacker.example")
    elif case == "another portal's member_id":
        other = "0" * 32
        form = fake.install_form(APP_TOKEN, member_id=other)
        app = type(app)(app.client_id, app.client_secret, frozenset({other}), app.domains)
    elif case == "replayed":
        await verify_install(claim(form), app, rest.oauth)  # the genuine one, verified once
    elif case == "another application":
        app = type(app)("local.someone-else", app.client_secret, app.member_ids, app.domains)
    elif case == "no refresh token":
        form = fake.install_form(APP_TOKEN, refresh_token="")
    elif case == "unconfigured portal":
        app = None  # type: ignore[assignment]
    with pytest.raises(InstallRefused) as refused:
        await verify_install(claim(form), app, rest.oauth)
    assert refused.value.reason == reason, refused.value
    assert await pool.fetchval("SELECT count(*) FROM bitrix24_installs") == 0


async def test_a_token_that_expires_is_renewed_and_the_call_succeeds(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = portal_rest(fake, pool)
    await installed(fake, rest)
    before = fake.renewed()
    fake.expire_access_tokens()  # an hour passes; our copy still says the token is valid
    assert await rest.call(fake.member_id, "user.admin") is True
    assert fake.renewed() == before + 1
    assert ("user.admin", "expired_token") in fake.calls  # refused once, renewed, called again


async def test_two_processes_renewing_at_once_spend_the_refresh_token_once(
    fake: FakeBitrix24, pool: asyncpg.Pool, pg_database: str
) -> None:
    await installed(fake, portal_rest(fake, pool))
    other_pool = await asyncpg.create_pool(pg_database, min_size=1, max_size=4)
    assert other_pool is not None
    try:
        first, second = portal_rest(fake, pool), portal_rest(fake, other_pool)  # separate caches and clients
        fake.expire_access_tokens()
        fake.refresh_delay = 0.5  # both find the token expired while the OAuth server still thinks
        before = len(fake.refreshes)
        results = await asyncio.gather(
            *(rest.call(fake.member_id, "user.admin") for rest in (first, second, first, second))
        )
        assert results == [True] * 4
        assert [r.outcome for r in fake.refreshes[before:]] == ["renewed"]  # one renewal, no invalid_grant
    finally:
        fake.refresh_delay = 0.0
        await other_pool.close()


async def test_an_uninstall_in_one_process_is_seen_by_another_within_its_ttl(
    fake: FakeBitrix24, pool: asyncpg.Pool, pg_database: str
) -> None:
    other_pool = await asyncpg.create_pool(pg_database, min_size=1, max_size=2)
    assert other_pool is not None
    try:
        first, second = portal_rest(fake, pool), portal_rest(fake, other_pool, ttl_s=1.0)
        await installed(fake, first)
        assert await second.call(fake.member_id, "user.admin") is True  # cached in the second process now
        assert await first.installs.delete(fake.member_id)
        started = time.monotonic()
        while True:
            try:
                await second.call(fake.member_id, "user.admin")
            except NotInstalled:
                break
            assert time.monotonic() - started < 3.0, "the second process still trusts the uninstalled portal"
            await asyncio.sleep(0.1)
    finally:
        await other_pool.close()


async def test_a_refused_renewal_is_recorded_and_not_asked_again(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    await installed(fake, portal_rest(fake, pool))
    await pool.execute("UPDATE bitrix24_installs SET refresh_token = 'spent-elsewhere'")
    rest = portal_rest(fake, pool)
    fake.expire_access_tokens()
    with pytest.raises(TokenRefreshRefused):
        await rest.call(fake.member_id, "user.admin")
    asked = len(fake.refreshes)
    with pytest.raises(TokenRefreshRefused):
        await portal_rest(fake, pool).call(fake.member_id, "user.admin")  # another process: not asked again
    assert len(fake.refreshes) == asked
    assert await pool.fetchval("SELECT refresh_failure FROM bitrix24_installs") == "invalid_grant: Invalid grant"


async def test_the_bot_is_registered_once(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    rest = portal_rest(fake, pool)
    await installed(fake, rest)
    fake.bots.clear()
    profile = BotProfile(handler_url="https://intake.example/bitrix24/events", code=f"bot_{uuid.uuid4().hex[:6]}")
    bot_id, registered = await ensure_bot(rest, fake.member_id, profile)
    assert registered and fake.bots[bot_id]["CODE"] == profile.code
    assert await ensure_bot(portal_rest(fake, pool), fake.member_id, profile) == (bot_id, False)
    assert len(fake.bots) == 1


async def test_the_guard_refuses_what_the_deployment_does_not_allow(fake: FakeBitrix24, pool: asyncpg.Pool) -> None:
    """The production policy (public addresses only) refuses the fake on 127.0.0.1: nothing is sent."""
    strict = opened(GuardedHttp(allowed_ports=frozenset({fake.port, fake.oauth_port}), ca_file=fake.ca_file))
    requests = fake.requests
    with pytest.raises(ForbiddenAddress) as refused:
        await strict.request("POST", f"{fake.rest_url}/user.admin.json", body=b"{}")
    assert refused.value.reason == "forbidden_address"
    with pytest.raises(ForbiddenAddress) as port:
        await guarded_http(fake).request("GET", "https://127.0.0.1:8443/")
    assert port.value.reason == "forbidden_port"
    with pytest.raises(ForbiddenAddress):
        await OAuthServer(guarded_http(fake), "http://127.0.0.1:80").refresh("a", "b", "c")
    assert fake.requests == requests


async def test_a_name_is_resolved_once_judged_and_the_judged_address_called(fake: FakeBitrix24) -> None:
    """The guard in aiohttp's resolver hook: the connection goes to the address that was judged, and
    the name is what TLS checks (the fake's certificate names portal.test and 127.0.0.1)."""
    fake.user_tokens["user-token"] = True
    url = f"https://portal.test:{fake.port}/rest/user.admin.json"
    body = b'{"auth": "user-token"}'
    ports = frozenset({fake.port})
    resolver = StaticResolver({"portal.test": "127.0.0.1"})
    allowed = opened(GuardedHttp(policy=LOOPBACK_ALLOWED, allowed_ports=ports, ca_file=fake.ca_file, resolver=resolver))
    assert (await allowed.request("POST", url, body=body)).document["result"] is True
    assert resolver.calls == {"portal.test": 1}
    requests = fake.requests
    production = opened(GuardedHttp(allowed_ports=ports, ca_file=fake.ca_file, resolver=resolver))
    with pytest.raises(ForbiddenAddress, match="loopback"):
        await production.request("POST", url, body=body)
    mixed = StaticResolver({"portal.test": ["127.0.0.1", "10.0.0.5"]})
    with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.5 \(private\)"):  # one bad address refuses the name
        await opened(GuardedHttp(policy=LOOPBACK_ALLOWED, allowed_ports=ports, resolver=mixed)).request("POST", url)
    untrusted = opened(GuardedHttp(policy=LOOPBACK_ALLOWED, allowed_ports=ports, resolver=resolver))
    with pytest.raises(Unavailable, match="tls_error"):  # the system trust store does not know the fake's CA
        await untrusted.request("POST", url, body=body)
    assert fake.requests == requests
