"""The admin check in this process: the production address policy, the test-only allowances that refuse
to exist outside pytest, answer parsing, and the stale answer used when the portal cannot be asked."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fake_portal import FakePortal
from intake_payloads import APP_TOKEN, b24_auth, b24_message

from ticketflow.intake.adapters import bitrix24 as b24
from ticketflow.intake.adapters.metrics import Metrics
from ticketflow.intake.adapters.portal_admin import AddressPolicy, AdminCheck, CheckFailed, StaticResolver, _parse


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.10.5", "private"),
        ("169.254.169.254", "link_local"),  # cloud metadata
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not_global"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("2a00:1450:4010:c05::71", None),
    ],
)
def test_production_policy_refuses_every_internal_address(address: str, reason: str | None) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) == reason


def test_the_loopback_allowance_admits_127_only() -> None:
    policy = AddressPolicy(allow_loopback=True)
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.0.0.5")) == "private"


@pytest.mark.parametrize(
    "code",
    [
        "from ticketflow.intake.adapters.portal_admin import AddressPolicy; AddressPolicy(allow_loopback=True)",
        "from ticketflow.intake.adapters.portal_admin import StaticResolver; StaticResolver({'a': '127.0.0.1'})",
        "import os; os.environ['TICKETFLOW_INTAKE_B24_TEST_HOSTS'] = '{}'\n"
        "from ticketflow.intake.adapters.metrics import Metrics\n"
        "from ticketflow.intake.adapters.portal_admin import AdminCheck; AdminCheck.from_env(Metrics())",
    ],
)
def test_test_allowances_refuse_to_exist_outside_pytest(code: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "for tests only" in done.stderr


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b'{"result": "yes"}', "bad_answer"),
        (200, b"[]", "bad_answer"),
        (200, b'{"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}', "rest_error"),
        (503, b"<html>busy</html>", "http_503"),
        (403, b'{"error": "insufficient_scope"}', "http_403"),
        (301, b"", "redirect"),
    ],
)
def test_answers_that_are_not_a_boolean_result_are_failures(status: int, body: bytes, reason: str) -> None:
    with pytest.raises(CheckFailed) as failed:
        _parse(status, body)
    assert failed.value.reason == reason


def test_a_boolean_result_is_the_answer() -> None:
    assert _parse(200, b'{"result": true, "time": {"start": 1}}') is True
    assert _parse(200, b'{"result": false}') is False


@pytest_asyncio.fixture(loop_scope="session")
async def portal() -> AsyncIterator[FakePortal]:
    fake = FakePortal(("portal.test",))
    await fake.start()
    yield fake
    await fake.stop()


def event(domain: str, access_token: str, user_id: str) -> b24.Bitrix24Event:
    auth = b24_auth(
        "m", APP_TOKEN, user_id, domain=domain, access_token=access_token, expires=str(int(time.time()) + 600)
    )
    form = b24_message("hi", dialog_id=user_id, message_id="1", user_id=user_id, member_id="m", auth=auth)
    return b24.parse_event(form.encode())


async def test_the_production_policy_sends_nothing_to_a_name_that_resolves_to_loopback(portal: FakePortal) -> None:
    domain = f"portal.test:{portal.port}"
    check = AdminCheck(Metrics(), resolver=StaticResolver({"portal.test": "127.0.0.1"}), extra_ca_pem=portal.ca_pem)
    verdict = await check.verdict(event(domain, "tok-admin-1", "1"), "1", domain)
    assert (verdict.is_admin, verdict.outcome) == (False, "unverified")
    assert verdict.unverified is not None and verdict.unverified.startswith("forbidden_address")
    assert "(loopback)" in verdict.unverified and portal.seen == []


async def test_a_known_answer_is_used_when_the_portal_later_fails(portal: FakePortal) -> None:
    domain = f"portal.test:{portal.port}"
    metrics = Metrics()
    check = AdminCheck(
        metrics,
        resolver=StaticResolver({"portal.test": "127.0.0.1"}),
        policy=AddressPolicy(allow_loopback=True),
        extra_ca_pem=portal.ca_pem,
        ttl_s=0.0,  # every message asks again
    )
    first = await check.verdict(event(domain, "tok-admin-7", "7"), "7", domain)
    later = await check.verdict(event(domain, "tok-expired-7", "7"), "7", domain)  # the portal says 401 now
    assert (first.is_admin, first.outcome) == (True, "admin")
    assert (later.is_admin, later.unverified, later.outcome) == (True, None, "stale")
    assert metrics.value("intake_admin_unverified_total", reason="http_401") == 1
    assert [s.token for s in portal.seen] == ["tok-admin-7", "tok-expired-7"]
