"""For the browser tests: the whole system as real processes on free ports, beside everybody else's: a
fresh database on the shared PostgreSQL, this run's own topics and consumer groups on the shared broker
(tests/support/system.py), the local fake chat platforms, the query API with this run's tokens, and the
dashboard; and Debian's chromium driven by Playwright (never a downloaded browser). Under CI=true a missing
chromium fails, never skips."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from intake_payloads import botx_message
from playwright.async_api import Browser, BrowserContext, Page
from pybotx.auth import build_botx_jwt_v2
from support.demo import ROOT, demo_secrets
from support.eventstore import migrated_pool
from support.infra import drop_database, dsn_with_database, unique_name
from support.system import EXPRESS_BOTS, PUBLIC_BOT, PUBLIC_BOT_HOST, ChatPlatforms, PrivateTopics, System

CHROMIUM = Path(os.environ.get("TICKETFLOW_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
SERVICES = ("projector", "queries", "intake", "preflight", "routing", "sla", "notifications")
AGENT = "agent-anna"  # on the eXpress desk's client-l1 queue: the eXpress tickets are hers


@dataclass(frozen=True)
class Token:
    name: str
    token: str
    scopes: tuple[str, ...]
    agent_id: str | None = None
    expires_at: str | None = None

    def grant(self) -> dict[str, Any]:
        grant: dict[str, Any] = {"name": self.name, "sha256": hashlib.sha256(self.token.encode()).hexdigest()}
        grant["scopes"] = list(self.scopes)
        if self.agent_id:
            grant["agent_id"] = self.agent_id
        if self.expires_at:
            grant["expires_at"] = self.expires_at
        return grant


def _token(name: str, *scopes: str, agent: str | None = None, expires_at: str | None = None) -> Token:
    return Token(name, f"tfq_{uuid.uuid4().hex}{uuid.uuid4().hex}", scopes, agent, expires_at)


@dataclass(frozen=True)
class Tokens:
    """This run's tokens (random), given to the query API by their hashes."""

    lead: Token
    anna: Token
    express_wallboard: Token
    box_wallboard: Token
    expired: Token

    @classmethod
    def made(cls) -> Tokens:
        return cls(
            _token("lead", "read:*"),
            _token("anna", "agent:express", agent=AGENT),
            _token("express wallboard", "read:express"),
            _token("box wallboard", "read:bitrix24-box"),
            _token("last year's agent", "agent:express", agent="agent-old", expires_at="2025-01-01T00:00:00Z"),
        )

    def all(self) -> list[Token]:
        return [self.lead, self.anna, self.express_wallboard, self.box_wallboard, self.expired]


@dataclass
class Running:
    system: System
    platforms: ChatPlatforms
    topics: PrivateTopics
    dsn: str
    bootstrap: str
    tokens: Tokens

    @property
    def url(self) -> str:
        return str(self.system["dashboard"].url)

    async def post_as_express(
        self, text: str, *, bot: uuid.UUID = PUBLIC_BOT, host: str = PUBLIC_BOT_HOST, chat: uuid.UUID | None = None
    ) -> uuid.UUID:
        """A user's message to an eXpress bot (the public one by default), as BotX posts it to intake; the
        chat's id."""
        chat = chat or uuid.uuid4()
        command = botx_message(text, chat_id=chat, user_huid=uuid.uuid4(), bot_id=bot)
        command["from"]["host"] = host
        jwt = build_botx_jwt_v2(bot_id=bot, bot_host=host, secret_key=demo_secrets()[EXPRESS_BOTS[bot]])
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{self.system['intake'].url}/command", json=command, headers={"Authorization": f"Bearer {jwt}"}
            )
        assert answer.status_code == 202, answer.text
        return chat

    async def query(self, token: Token, path: str, **params: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.get(
                f"{self.system['queries'].url}/v1{path}",
                params=params,
                headers={"Authorization": f"Bearer {token.token}"},
            )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def fresh_database(pg_dsn: str) -> str:
    name = unique_name("tf_dash")
    server = await asyncpg.connect(pg_dsn)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    dsn = str(dsn_with_database(pg_dsn, name))
    database = await asyncpg.connect(dsn)
    try:
        await database.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    finally:
        await database.close()
    pool = await migrated_pool(dsn)
    await pool.close()
    return dsn


async def drop_database_of(pg_dsn: str, dsn: str) -> None:
    server = await asyncpg.connect(pg_dsn)
    try:
        await drop_database(server, dsn.rsplit("/", 1)[1].split("?")[0])
    finally:
        await server.close()


async def signed_in(browser: Browser, running: Running, token: Token, lang: str = "en") -> tuple[BrowserContext, Page]:
    """A fresh browser context signed in through the login form, in `lang`."""
    context = await browser.new_context(locale=lang)
    page = await context.new_page()
    await page.goto(f"{running.url}/login?lang={lang}")
    await page.fill("#token", token.token)
    await page.click("form[action='/login'] button")
    await page.wait_for_url(f"{running.url}/")
    return context, page


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (axe is injected, not served)."""
    await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = await page.evaluate("async () => await axe.run(document)")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path: Path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def eventually(check: Any, timeout_s: float = 60, every_s: float = 0.5) -> Any:
    """`check()`'s first truthy answer within `timeout_s` (an AssertionError naming the wait otherwise)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(every_s)
