"""The admin check in this process: the production address policy, the networks and CAs a deployment
may add (`TICKETFLOW_B24_ALLOWED_NETWORKS`, `TICKETFLOW_B24_CA_FILE`), answer parsing, where the request
goes, and the stale answer used when the portal cannot be asked."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from fake_portal import FakePortal
from intake_payloads import APP_TOKEN, b24_auth, b24_message
from support.netguard import StaticResolver

from ticketflow.intake.adapters.portal_admin import AdminCheck, CheckFailed, _parse
from ticketflow.intake.metrics import Metrics
from ticketflow.intake.platforms import bitrix24 as b24
from ticketflow.intake.settings import IntakeSettings
from ticketflow.runtime.netguard import AddressPolicy, parse_networks
from ticketflow.runtime.settings import SettingsError, load_settings

SRC = Path(__file__).resolve().parents[2] / "services" / "intake" / "src"
LOOPBACK = AddressPolicy(parse_networks("127.0.0.0/8"))  # what the tests' deployment allows


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


def test_an_allowed_network_admits_itself_only() -> None:
    assert LOOPBACK.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert LOOPBACK.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert LOOPBACK.refusal(ipaddress.ip_address("10.0.0.5")) == "private"
    assert LOOPBACK.refusal(ipaddress.ip_address("::1")) == "loopback"  # IPv6 loopback is another network


def test_the_allowed_networks_and_the_ca_file_are_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    settings = load_settings(IntakeSettings, b24_allowed_networks="10.20.0.0/16, 127.0.0.0/8", b24_ca_file=str(ca))
    assert settings.b24_allowed_networks == parse_networks("10.20.0.0/16,127.0.0.0/8")
    assert settings.b24_ca_file == ca
    assert load_settings(IntakeSettings).b24_allowed_networks == ()  # by default: public addresses only
    assert load_settings(IntakeSettings).b24_ca_file is None


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("b24_allowed_networks", "10.0.0.0/33", "TICKETFLOW_B24_ALLOWED_NETWORKS"),
        ("b24_allowed_networks", "intranet", "TICKETFLOW_B24_ALLOWED_NETWORKS"),
        ("b24_ca_file", "/nonexistent/ca.pem", "TICKETFLOW_B24_CA_FILE"),
    ],
)
def test_a_bad_network_or_ca_file_stops_the_service_naming_the_variable(field: str, value: str, variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(IntakeSettings, **{field: value})


def test_the_product_code_never_asks_whether_it_runs_under_pytest() -> None:
    """Loopback portals, static name tables and test CAs were allowed "under pytest" only; the tests now
    use the same settings as a deployment."""
    for path in (SRC / "ticketflow" / "intake").rglob("*.py"):
        text = path.read_text()
        assert "pytest" not in text and "PYTEST_CURRENT_TEST" not in text, path


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


def ca_file(portal: FakePortal, tmp_path: Path) -> Path:
    path = tmp_path / "portal-ca.pem"
    path.write_text(portal.ca_pem)
    return path


async def test_the_production_policy_sends_nothing_to_a_name_that_resolves_to_loopback(
    portal: FakePortal, tmp_path: Path
) -> None:
    domain = f"portal.test:{portal.port}"
    resolver = StaticResolver({"portal.test": "127.0.0.1"})
    check = AdminCheck(Metrics(), resolver=resolver, ca_file=ca_file(portal, tmp_path))
    verdict = await check.verdict(event(domain, "tok-admin-1", "1"), "1", domain)
    assert (verdict.is_admin, verdict.outcome) == (False, "unverified")
    assert verdict.unverified is not None and verdict.unverified.startswith("forbidden_address")
    assert "(loopback)" in verdict.unverified and portal.seen == []


async def test_the_request_goes_to_the_judged_address_under_the_portals_name(
    portal: FakePortal, tmp_path: Path
) -> None:
    """Resolved once: the connection goes to the address judged, while TLS (SNI, the certificate) and the
    Host header use the stored name, so a second lookup (DNS rebinding) has nothing to answer."""
    domain = f"portal.test:{portal.port}"
    resolver = StaticResolver({"portal.test": "127.0.0.1"})
    check = AdminCheck(Metrics(), policy=LOOPBACK, resolver=resolver, ca_file=ca_file(portal, tmp_path))
    verdict = await check.verdict(event(domain, "tok-admin-2", "2"), "2", domain)
    assert (verdict.is_admin, verdict.outcome) == (True, "admin")
    [seen] = portal.seen
    assert (seen.host, seen.path, seen.sni, seen.token) == (
        domain,
        "/rest/user.admin.json",
        "portal.test",
        "tok-admin-2",
    )
    assert resolver.calls == {"portal.test": 1}


async def test_a_name_that_does_not_resolve_is_unverified_not_an_error(portal: FakePortal) -> None:
    domain = f"nowhere.test:{portal.port}"
    check = AdminCheck(Metrics(), policy=LOOPBACK, resolver=StaticResolver({}))
    verdict = await check.verdict(event(domain, "tok-admin-3", "3"), "3", domain)
    assert verdict.unverified is not None and verdict.unverified.startswith("not_resolved")


async def test_without_the_ca_file_the_portals_certificate_is_not_trusted(portal: FakePortal) -> None:
    domain = f"portal.test:{portal.port}"
    check = AdminCheck(Metrics(), policy=LOOPBACK, resolver=StaticResolver({"portal.test": "127.0.0.1"}))
    verdict = await check.verdict(event(domain, "tok-admin-4", "4"), "4", domain)
    assert verdict.unverified is not None and verdict.unverified.startswith("tls_error")


async def test_a_known_answer_is_used_when_the_portal_later_fails(portal: FakePortal, tmp_path: Path) -> None:
    domain = f"portal.test:{portal.port}"
    metrics = Metrics()
    check = AdminCheck(
        metrics,
        resolver=StaticResolver({"portal.test": "127.0.0.1"}),
        policy=LOOPBACK,
        ca_file=ca_file(portal, tmp_path),
        ttl_s=0.0,  # every message asks again
    )
    first = await check.verdict(event(domain, "tok-admin-7", "7"), "7", domain)
    later = await check.verdict(event(domain, "tok-expired-7", "7"), "7", domain)  # the portal says 401 now
    assert (first.is_admin, first.outcome) == (True, "admin")
    assert (later.is_admin, later.unverified, later.outcome) == (True, None, "stale")
    assert metrics.value("ticketflow_intake_admin_unverified", reason="http_401") == 1
    assert [s.token for s in portal.seen] == ["tok-admin-7", "tok-expired-7"]
