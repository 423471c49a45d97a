"""A Bitrix24 portal's application lifecycle through two intake processes (real processes, one database)
and the fake Bitrix24 platform (portal and OAuth server over HTTPS): an install is verified with the
desk's client secret before anything is stored, registers the chat bot, and a forged or replayed install
is refused with its reason; an uninstall (or a deleted row) handled by one process is refused by the
other within seconds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fakes.bitrix24 import FakeBitrix24
from intake_payloads import APP_TOKEN, MEMBER_ID, b24_message, tenants_toml
from intake_service import RunningIntake, migrate_intake, start_intake, stop_intake
from support.bitrix24 import b24_environment

pytestmark = [pytest.mark.pg, pytest.mark.kafka, pytest.mark.e2e]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EVENTS_URL = "https://intake.example.ru/bitrix24/events"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake() -> AsyncIterator[FakeBitrix24]:
    async with FakeBitrix24(member_id=MEMBER_ID).running() as platform:
        yield platform


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(
    pg_database: str, kafka_bootstrap: str, tmp_path_factory: Any, fake: FakeBitrix24
) -> AsyncIterator[tuple[RunningIntake, RunningIntake]]:
    await migrate_intake(pg_database)
    tmp = tmp_path_factory.mktemp("intake-b24")
    env = {
        **b24_environment(fake, "INTAKE_TEST_B24_SECRET"),
        "TICKETFLOW_INTAKE_B24_EVENTS_URL": EVENTS_URL,
        "TICKETFLOW_B24_INSTALL_TTL": "1",
    }
    tenants = tenants_toml((fake.domain,))
    first = await start_intake(pg_database, kafka_bootstrap, tmp, extra_env=env, tenants_text=tenants)
    second = await start_intake(pg_database, kafka_bootstrap, tmp, extra_env=env, tenants_text=tenants)
    yield first, second
    await stop_intake(first)
    await stop_intake(second)


async def post(intake: RunningIntake, form: str) -> httpx.Response:
    async with intake.client() as client:
        answer: httpx.Response = await client.post("/bitrix24/events", content=form, headers=FORM)
    return answer


def message(bot_id: str) -> str:
    form: str = b24_message("Не открывается /crm/", dialog_id=f"u{uuid.uuid4().hex[:8]}",
                            message_id=str(uuid.uuid4().int % 10**9), bot_id=bot_id)  # fmt: skip
    return form


async def installs(intake: RunningIntake) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await intake.pool.fetch("SELECT member_id, domain, application_token, bot_id FROM bitrix24_installs")
    ]


async def test_an_install_is_verified_stored_and_registers_the_bot(
    pair: tuple[RunningIntake, RunningIntake], fake: FakeBitrix24
) -> None:
    first, second = pair
    answer = await post(first, fake.install_form(APP_TOKEN))
    assert answer.status_code == 200, answer.text
    [bot_id] = fake.bots
    assert answer.json() == {"result": "installed", "bot": "registered", "bot_id": bot_id}
    assert fake.bots[bot_id]["HANDLER"] == EVENTS_URL and fake.bots[bot_id]["CODE"] == "ticketflow_support"
    assert await installs(first) == [
        {"member_id": MEMBER_ID, "domain": fake.domain, "application_token": APP_TOKEN, "bot_id": bot_id}
    ]
    # The bot registered at install is the desk's bot now, in every process (the desk lists only 567).
    accepted = await post(second, message(str(bot_id)))
    assert (accepted.status_code, accepted.json()) == (200, {"result": "accepted"}), accepted.text
    again = await post(second, fake.install_form(APP_TOKEN, event="ONAPPUPDATE"))  # the bot is found, not doubled
    assert again.json() == {"result": "installed", "bot": "present", "bot_id": bot_id}
    assert len(fake.bots) == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged tokens", "not_verified"),
        ("replayed", "not_verified"),
        ("unknown domain", "unknown_domain"),
        ("no refresh token", "no_tokens"),
        ("another portal", "unknown_portal"),
    ],
)
async def test_a_forged_install_is_refused_with_its_reason_and_changes_nothing(
    pair: tuple[RunningIntake, RunningIntake], fake: FakeBitrix24, case: str, reason: str
) -> None:
    first, _ = pair
    genuine = fake.install_form(APP_TOKEN)
    assert (await post(first, genuine)).status_code == 200
    before = await installs(first)
    forged = {
        "forged tokens": fake.install_form("forged-app-token", refresh_token="f" * 32, access_token="a" * 32),
        "replayed": genuine,  # its refresh token was spent verifying it
        "unknown domain": fake.install_form("forged-app-token", domain="portal.attacker.example"),
        "no refresh token": fake.install_form("forged-app-token", refresh_token=""),
        "another portal": fake.install_form("forged-app-token", member_id="0" * 32),
    }[case]
    answer = await post(first, forged)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == reason
    assert await installs(first) == before
    assert "refused" in first.log_path.read_text() or reason == "unknown_portal"


async def refused_within(intake: RunningIntake, form: str, seconds: float) -> float:
    started = time.monotonic()
    while True:
        answer = await post(intake, form)
        if answer.status_code == 403:
            assert answer.json()["error"] == "portal_not_installed", answer.text
            return time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started < seconds, "the other process still accepts the portal's events"
        await asyncio.sleep(0.1)


async def test_an_uninstall_or_a_deleted_row_is_refused_by_the_other_process_within_seconds(
    pair: tuple[RunningIntake, RunningIntake], fake: FakeBitrix24
) -> None:
    first, second = pair
    installed = await post(first, fake.install_form(APP_TOKEN))
    bot_id = str(installed.json()["bot_id"])
    assert (await post(second, message(bot_id))).status_code == 200  # the second process has it cached
    uninstalled = await post(first, fake.uninstall_form(APP_TOKEN))
    assert (uninstalled.status_code, uninstalled.json()) == (200, {"result": "uninstalled"})
    assert await installs(first) == []
    assert await refused_within(second, message(bot_id), 3.0) < 3.0

    assert (await post(first, fake.install_form(APP_TOKEN))).status_code == 200
    assert (await post(second, message(bot_id))).status_code == 200
    await first.pool.execute("DELETE FROM bitrix24_installs WHERE member_id = $1", MEMBER_ID)  # an operator
    assert await refused_within(second, message(bot_id), 3.0) < 3.0


async def test_an_uninstall_needs_the_installs_token(
    pair: tuple[RunningIntake, RunningIntake], fake: FakeBitrix24
) -> None:
    first, _ = pair
    assert (await post(first, fake.install_form(APP_TOKEN))).status_code == 200
    answer = await post(first, fake.uninstall_form("someone-elses-token"))
    assert (answer.status_code, answer.json()["error"]) == (403, "wrong_application_token")
    assert len(await installs(first)) == 1
