"""The ticketflow.bitrix24 pieces wired to a fake platform (tests/fakes/bitrix24.py): its CA trusted,
127.0.0.0/8 and the fake's two ports allowed (a deployment's `TICKETFLOW_B24_*` settings, as tests set them
for services they start as processes: `b24_environment`)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

import asyncpg
from fakes.asgi import Faults
from fakes.bitrix24 import FakeBitrix24

from support.netguard import LOOPBACK_ALLOWED
from ticketflow.bitrix24 import (
    App,
    Apps,
    BotProfile,
    GuardedHttp,
    InstallClaim,
    Installs,
    OAuthServer,
    PortalRest,
    ensure_bot,
    verify_install,
)

BOX_CLIENT_ID = "local.ticketflow-box-support"  # the packaged desk bitrix24-box.toml's application
BOX_SECRET_ENV = "TICKETFLOW_B24_BOX_CLIENT_SECRET"


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


def install_claim(form: str) -> InstallClaim:
    """What an install event's `auth` block claims (as intake reads it)."""
    fields = {k: v[0] for k, v in parse_qs(form, keep_blank_values=True).items()}
    return InstallClaim(
        member_id=fields["auth[member_id]"],
        domain=fields["auth[domain]"],
        application_token=fields["auth[application_token]"],
        access_token=fields["auth[access_token]"],
        refresh_token=fields["auth[refresh_token]"],
    )


async def installed_portal(
    fake: FakeBitrix24, pool: asyncpg.Pool, *, application_token: str = "app-token", bot: bool = True
) -> PortalRest:
    """The fake portal installed as intake installs it (verified, stored, bot registered); a process's
    REST client for it."""
    rest = portal_rest(fake, pool)
    queued, fake.faults = fake.faults, Faults()  # faults a test queued are for what it does next
    try:
        claim = install_claim(fake.install_form(application_token))
        await rest.installs.save(await verify_install(claim, fake_app(fake), rest.oauth))
        if bot:
            bot_id, _ = await ensure_bot(rest, fake.member_id, BotProfile("https://intake.test/bitrix24/events"))
            await rest.installs.set_bot(fake.member_id, bot_id)
    finally:
        fake.faults = queued
    return rest


def desks_for(fake: FakeBitrix24, folder: Path) -> Path:
    """The packaged desk files, with the Bitrix24 box desk's portal at the fake's address (for services
    started as processes: `TICKETFLOW_DESK_CONFIG_DIR`). The fake must use BOX_CLIENT_ID."""
    return desks_naming(fake.domain, folder)


def desks_naming(domain: str, folder: Path) -> Path:
    """The packaged desk files in `folder`, the Bitrix24 box desk's only portal domain being `domain`."""
    packaged = Path(str(resources.files("ticketflow.deskconfig") / "desks"))
    folder.mkdir(parents=True, exist_ok=True)
    for desk in packaged.glob("*.toml"):
        shutil.copy(desk, folder / desk.name)
    box = folder / "bitrix24-box.toml"
    text = box.read_text(encoding="utf-8")
    start = text.index("portal_domains = [")
    end = text.index("]", start) + 1
    box.write_text(text[:start] + f'portal_domains = ["{domain}"]' + text[end:], encoding="utf-8")
    return folder
