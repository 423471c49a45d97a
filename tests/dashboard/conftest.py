"""The running system and the browser, once for every test of this folder (dashboard_world.py)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from dashboard_world import AGENT, CHROMIUM, SERVICES, Running, Tokens, drop_database_of, fresh_database
from playwright.async_api import Browser, async_playwright
from support.agents import agent_event
from support.system import ChatPlatforms, PrivateTopics, System

from ticketflow.contracts.roster_events import AgentJoinedQueue, AgentStatusChanged


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def running(
    pg_dsn: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    logs = tmp_path_factory.mktemp("dashboard")
    dsn = await fresh_database(pg_dsn)
    topics = PrivateTopics.named("dash")
    tokens = Tokens.made()
    try:
        await topics.create(kafka_bootstrap)
        async with ChatPlatforms.running(logs) as platforms:
            grants = json.dumps([t.grant() for t in tokens.all()])
            overrides = {"queries": {"TOKENS": grants}, "notifications": {"AUTO_REDRIVE_SECONDS": "0"}}
            system = System(dsn, kafka_bootstrap, topics, platforms, logs, overrides)
            try:
                await system.start(*SERVICES)
                system.overrides["dashboard"] = {"QUERIES_URL": system["queries"].url}
                await system.start("dashboard")
                for agent, queue in ((AGENT, "client-l1"), ("agent-ivan", "box-l1")):
                    await agent_event(dsn, AgentJoinedQueue(agent, queue, (), ("ru", "en"), 5))
                    await agent_event(dsn, AgentStatusChanged(agent, "online"))
                yield Running(system, platforms, topics, dsn, kafka_bootstrap, tokens)
            finally:
                system.stop()
    finally:
        await topics.delete(kafka_bootstrap)
        await drop_database_of(pg_dsn, dsn)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        hint = f"no chromium at {CHROMIUM}: apt-get install -y chromium (or set TICKETFLOW_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(hint, pytrace=False)
        pytest.skip(hint)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
