"""The ticketflow.bitrix24 pieces wired to a fake platform (tests/fakes/bitrix24.py): its CA trusted,
127.0.0.0/8 and the fake's two ports allowed (a deployment's `TICKETFLOW_B24_*` settings, as tests set them
for services they start as processes: `b24_environment`)."""

from __future__ import annotations

import asyncpg
from fakes.bitrix24 import FakeBitrix24

from support.netguard import LOOPBACK_ALLOWED
from ticketflow.bitrix24 import App, Apps, GuardedHttp, Installs, OAuthServer, PortalRest


def fake_app(fake: FakeBitrix24, *, secret: str | None = None, domains: tuple[str, ...] | None = None) -> App:
    return App(
        client_id=fake.client_id,
        client_secret=fake.client_secret if secret is None else secret,
        member_ids=frozenset({fake.member_id}),
        domains=frozenset(domains if domains is not None else (fake.domain,)),
        desk_id="bitrix24-box",
        default_track="box",
    )


_OPENED: list[GuardedHttp] = []


def opened(http: GuardedHttp) -> GuardedHttp:
    """Remember `http` for `close_opened` (a test's clients are closed after it, whatever happened)."""
    _OPENED.append(http)
    return http


async def close_opened() -> None:
    while _OPENED:
        await _OPENED.pop().aclose()


def guarded_http(fake: FakeBitrix24) -> GuardedHttp:
    return opened(GuardedHttp(
        policy=LOOPBACK_ALLOWED, allowed_ports=frozenset({fake.port, fake.oauth_port}), ca_file=fake.ca_file,
        timeout_s=5.0,
    ))  # fmt: skip


def portal_rest(fake: FakeBitrix24, pool: asyncpg.Pool, *, ttl_s: float = 5.0, app: App | None = None) -> PortalRest:
    """A process's view: its own cache of installs, its own HTTP client."""
    http = guarded_http(fake)
    return PortalRest(
        Installs(pool, ttl_s=ttl_s), Apps.of([app or fake_app(fake)]), OAuthServer(http, fake.oauth_url), http
    )


def b24_environment(fake: FakeBitrix24, secret_env: str = "TICKETFLOW_B24_TEST_CLIENT_SECRET") -> dict[str, str]:
    """The environment of a service process that talks to the fake platform."""
    return {
        "TICKETFLOW_B24_OAUTH_SERVER": fake.oauth_url,
        "TICKETFLOW_B24_ALLOWED_NETWORKS": "127.0.0.0/8",
        "TICKETFLOW_B24_ALLOWED_PORTS": f"{fake.port},{fake.oauth_port}",
        "TICKETFLOW_B24_CA_FILE": fake.ca_file,
        secret_env: fake.client_secret,
    }
