"""Portal prerequisite checks against real HTTPS servers on 127.0.0.1 (seed: bitrix24-box-support.txt)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import msgspec
import pytest
from preflight_fakes import (
    PORTAL_NAME,
    Certificates,
    RebindingResolver,
    Reply,
    ServeFactory,
    healthy_routes,
    json_reply,
    portal_info_document,
    rest_ask,
)
from support.netguard import StaticResolver

from ticketflow.preflight.adapters.checks import (
    CheckCache,
    CheckName,
    ChecksConfig,
    Outcome,
    PortalCheckReport,
    PortalTarget,
    check_portal_uncached,
)
from ticketflow.runtime.netguard import SystemResolver

LOCAL = {PORTAL_NAME: ["127.0.0.1"]}
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


async def check(url: str, config: ChecksConfig, resolver: StaticResolver | None = None) -> PortalCheckReport:
    resolver = resolver or StaticResolver(LOCAL)
    target = PortalTarget(url=url, member_id="m-1")
    return await check_portal_uncached(target, config, resolver, ask=rest_ask(url, config, resolver))


def assert_failures_explained(report: PortalCheckReport) -> None:
    for failure in report.failures:
        assert failure.remediation is not None, failure
        assert CYRILLIC.search(failure.remediation.ru), failure.remediation.ru
        assert failure.remediation.en and not CYRILLIC.search(failure.remediation.en)


async def test_a_healthy_portal_passes_every_check_with_evidence(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    server = await serve(certs.valid, healthy_routes())
    report = await check(server.url(), config)
    assert [r.reason for r in report.results] == ["ok"] * 7, report.failures
    assert report.passed
    tls_evidence = report.result(CheckName.TLS_CERTIFICATE).evidence
    assert tls_evidence.cert_issuer and "trustme" in tls_evidence.cert_issuer.lower()
    assert tls_evidence.cert_not_after and tls_evidence.connected_address == "127.0.0.1"
    assert report.result(CheckName.PUBLIC_ADDRESS).evidence.resolved_addresses == ("127.0.0.1",)
    assert report.result(CheckName.JSON_ANSWER).evidence.status_code == 401  # Bitrix REST: JSON error
    # Connected to the pinned IP, yet the name went in SNI and Host.
    assert set(server.server_names) == {PORTAL_NAME}
    assert {host for _target, host in server.requests} == {f"{PORTAL_NAME}:{server.port}"}


@pytest.mark.parametrize(
    ("which", "reason", "verify_codes"),
    [
        ("self_signed", "self_signed", {18}),
        ("expired", "expired", {10}),
        ("wrong_host", "hostname_mismatch", {62}),
    ],
)
async def test_a_bad_certificate_is_named_and_other_checks_still_run(
    serve: ServeFactory,
    certs: Certificates,
    config: ChecksConfig,
    which: str,
    reason: str,
    verify_codes: set[int],
) -> None:
    server = await serve(getattr(certs, which), healthy_routes())
    report = await check(server.url(), config)
    tls = report.result(CheckName.TLS_CERTIFICATE)
    assert (tls.outcome, tls.reason) == (Outcome.FAILED, reason)
    assert tls.evidence.tls_verify_code in verify_codes
    assert tls.evidence.cert_subject and tls.evidence.cert_not_after  # the bad certificate is shown
    assert tls.remediation is not None and "SSL" in tls.remediation.ru
    assert [r.name for r in report.failures] == [CheckName.TLS_CERTIFICATE]
    assert_failures_explained(report)


async def test_the_expired_certificate_evidence_shows_a_past_date(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    server = await serve(certs.expired, healthy_routes())
    report = await check(server.url(), config)
    not_after = report.result(CheckName.TLS_CERTIFICATE).evidence.cert_not_after
    assert not_after is not None
    assert dt.datetime.fromisoformat(not_after) < dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "172.16.5.5", "169.254.169.254", "::1", "fd00::5"])
async def test_a_portal_name_on_an_internal_address_is_refused_and_never_contacted(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig, address: str
) -> None:
    server = await serve(certs.valid, healthy_routes())
    report = await check(server.url(), config, StaticResolver({PORTAL_NAME: [address]}))
    first = report.results[0]
    assert (first.name, first.reason) == (CheckName.PUBLIC_ADDRESS, "forbidden_address")
    assert address in (first.evidence.detail or "")
    assert all(r.outcome is Outcome.SKIPPED for r in report.results[1:])
    assert server.connections == 0
    assert_failures_explained(report)


async def test_a_mixed_answer_with_one_internal_address_is_refused(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    server = await serve(certs.valid, healthy_routes())
    report = await check(server.url(), config, StaticResolver({PORTAL_NAME: ["127.0.0.1", "10.0.0.1"]}))
    assert report.results[0].reason == "forbidden_address"
    assert server.connections == 0


async def test_production_policy_refuses_the_loopback_test_server(serve: ServeFactory, certs: Certificates) -> None:
    server = await serve(certs.valid, healthy_routes())
    production = ChecksConfig(timeout_s=1.0, extra_trusted_ca_pem=certs.ca_pem, allowed_ports=None)
    report = await check(server.url(), production)
    assert report.results[0].reason == "forbidden_address"
    assert "loopback" in (report.results[0].evidence.detail or "")
    assert server.connections == 0


async def test_only_the_ports_the_desk_allows_are_checked_first_url_and_redirects_alike(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    server = await serve(certs.valid, routes)
    desk_default = dataclasses.replace(config, allowed_ports=frozenset({443, 80}))  # the desk file's default
    report = await check(server.url(), desk_default)
    refused = report.results[0]
    assert (refused.reason, server.connections) == ("forbidden_port", 0)  # never contacted
    assert refused.remediation is not None and "443" in refused.remediation.ru and "443" in refused.remediation.en
    routes["/pub/"] = Reply(status=302, headers={"Location": f"https://{PORTAL_NAME}:8444/pub/"})
    its_port = dataclasses.replace(config, allowed_ports=frozenset({server.port}))
    pub = (await check(server.url(), its_port)).result(CheckName.PUB_READABLE)
    assert pub.reason == "forbidden_port" and "8444" in (pub.evidence.detail or "")


async def test_a_redirect_to_an_internal_address_is_not_followed(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    server = await serve(certs.valid, routes)
    routes["/pub/"] = Reply(status=302, headers={"Location": f"https://intranet.test:{server.port}/pub/"})
    routes["/rest/"] = Reply(status=301, headers={"Location": "https://10.0.0.7/rest/"})
    resolver = StaticResolver({**LOCAL, "intranet.test": ["192.168.1.20"]})
    report = await check(server.url(), config, resolver)
    pub, json_answer = report.result(CheckName.PUB_READABLE), report.result(CheckName.JSON_ANSWER)
    assert (pub.reason, json_answer.reason) == ("forbidden_address", "forbidden_address")
    assert pub.evidence.redirects == (f"https://intranet.test:{server.port}/pub/",)
    assert "192.168.1.20" in (pub.evidence.detail or "")
    assert all(host.startswith(PORTAL_NAME) for _target, host in server.requests)


async def test_redirect_loops_and_long_chains_fail_with_a_reason(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    routes["/pub/"] = Reply(status=302, headers={"Location": "/pub/again/"})
    routes["/pub/again/"] = Reply(status=302, headers={"Location": "/pub/"})
    routes["/rest/"] = lambda target: Reply(status=307, headers={"Location": f"/rest/?n={len(target)}"})
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    assert report.result(CheckName.PUB_READABLE).reason == "redirect_loop"
    assert report.result(CheckName.JSON_ANSWER).reason == "too_many_redirects"
    assert len(report.result(CheckName.JSON_ANSWER).evidence.redirects) == config.max_redirects + 1
    assert_failures_explained(report)


async def test_a_server_that_hangs_gives_timeouts_not_exceptions(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    silent = await serve(certs.valid, healthy_routes(), tls_hang=True)
    report = await check(silent.url(), config)
    assert report.results[0].passed  # the address is fine; the server is not
    assert {r.reason for r in report.results[1:]} == {"timeout"}
    assert_failures_explained(report)


async def test_an_endpoint_that_hangs_times_out_alone(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    routes["/rest/"] = Reply(hang=True)
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    assert [r.name for r in report.failures] == [CheckName.JSON_ANSWER]
    assert report.failures[0].reason == "timeout"


async def test_a_huge_answer_is_capped(serve: ServeFactory, certs: Certificates, config: ChecksConfig) -> None:
    routes = healthy_routes()
    routes["/rest/"] = Reply(endless=True, content_type="application/json")
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    result = report.result(CheckName.JSON_ANSWER)
    assert result.reason == "too_large"
    assert result.evidence.bytes_read == config.max_body_bytes


async def test_a_non_json_answer_where_json_is_expected_fails(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    routes["/rest/"] = Reply(status=502, body=b"<html><h1>502 Bad Gateway</h1>nginx</html>")
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    result = report.result(CheckName.JSON_ANSWER)
    assert result.reason == "not_json"
    assert "502 Bad Gateway" in (result.evidence.detail or "")
    assert result.evidence.content_type == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "pub_route",
    [
        Reply(status=403, body=b"Forbidden"),
        Reply(status=401, body=b"Auth"),
        Reply(status=302, headers={"Location": "/auth/?backurl=%2Fpub%2F"}),
        Reply(status=404),
    ],
)
async def test_pub_that_needs_a_login_fails(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig, pub_route: Reply
) -> None:
    routes = healthy_routes()
    routes["/pub/"] = pub_route
    routes["/auth/"] = Reply(body=b"<form>login</form>")
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    assert [(r.name, r.reason) for r in report.failures] == [(CheckName.PUB_READABLE, "pub_not_readable")]
    assert report.failures[0].remediation is not None and "/pub/" in report.failures[0].remediation.ru


@pytest.mark.parametrize(
    ("document", "license_reason", "updates_reason"),
    [
        (portal_info_document(demo=True, license_code="ru_demo"), "demo_license", "ok"),
        (portal_info_document(active_until="2020-01-01"), "license_expired", "ok"),
        (portal_info_document(modules={"main": "24.0.0", "im": "25.0.100"}), "ok", "updates_missing"),
    ],
)
async def test_license_and_updates_come_from_the_portals_rest_answer(
    serve: ServeFactory,
    certs: Certificates,
    config: ChecksConfig,
    document: dict[str, object],
    license_reason: str,
    updates_reason: str,
) -> None:
    routes = healthy_routes()
    routes["/rest/ticketflow.portal.info.json"] = json_reply(document)
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    assert report.result(CheckName.LICENSE).reason == license_reason
    assert report.result(CheckName.UPDATES).reason == updates_reason
    asked = [t for t, _ in server.requests if t.startswith("/rest/ticketflow")]
    assert asked == ["/rest/ticketflow.portal.info.json?auth=token-123"]  # one REST call serves both
    assert_failures_explained(report)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found"}, "ERROR_METHOD_NOT_FOUND"),
        ({"result": {"LICENSE": "ru_corp"}}, "bad_portal_info"),
        (None, "timeout"),
    ],
)
async def test_a_portal_that_cannot_be_asked_leaves_license_and_updates_not_checked_not_failed(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig, document: dict[str, object] | None, reason: str
) -> None:
    routes = healthy_routes()
    routes["/rest/ticketflow.portal.info.json"] = json_reply(document) if document else Reply(hang=True)
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    for name in (CheckName.LICENSE, CheckName.UPDATES):
        assert (report.result(name).outcome, report.result(name).reason) == (Outcome.NOT_CHECKED, reason)
        assert report.result(name).remediation is None and report.result(name).evidence.detail
    assert report.failures == ()


async def test_without_an_install_license_and_updates_are_not_checked(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    server = await serve(certs.valid, healthy_routes())
    report = await check_portal_uncached(PortalTarget(url=server.url()), config, StaticResolver(LOCAL))
    assert {
        (r.name, r.outcome, r.reason) for r in report.results if r.name in {CheckName.LICENSE, CheckName.UPDATES}
    } == {
        (CheckName.LICENSE, Outcome.NOT_CHECKED, "no_install"),
        (CheckName.UPDATES, Outcome.NOT_CHECKED, "no_install"),
    }
    assert report.failures == ()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "malformed_url"),
        ("not a url", "malformed_url"),
        ("https://", "malformed_url"),
        ("https://portal.test:99999/", "malformed_url"),
        ("https://exa mple.test/", "malformed_url"),
        ("http://portal.test/", "not_https"),
        ("ftp://portal.test/", "not_https"),
        ("https://nowhere.test/", "not_resolved"),
    ],
)
async def test_bad_portal_addresses_fail_the_address_check_without_raising(
    config: ChecksConfig, url: str, reason: str
) -> None:
    report = await check(url, config)
    assert report.results[0].reason == reason
    assert [r.outcome for r in report.results[1:]] == [Outcome.SKIPPED] * 6
    assert_failures_explained(report)


async def test_a_closed_port_and_a_plain_http_server_are_told_apart(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    plain = await serve(None, healthy_routes())
    report = await check(plain.url(), config)
    assert report.result(CheckName.HTTPS_REACHABLE).reason == "tls_handshake_failed"
    closed_port = plain.port
    await plain.stop()
    report = await check(f"https://{PORTAL_NAME}:{closed_port}", config)
    assert report.result(CheckName.HTTPS_REACHABLE).reason == "connection_failed"
    assert_failures_explained(report)


async def test_dns_rebinding_after_the_address_check_is_caught_on_every_hop(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    server = await serve(certs.valid, healthy_routes())
    report = await check(server.url(), config, RebindingResolver(LOCAL))
    assert report.results[0].passed
    assert {r.reason for r in report.results[1:]} == {"forbidden_address"}
    assert server.connections == 0


async def test_the_cache_serves_a_portal_once_per_ttl(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    import asyncio

    from ticketflow.preflight.adapters.checks import run_portal_checks

    server = await serve(certs.valid, healthy_routes())
    now = [1000.0]
    cache = CheckCache(clock=lambda: now[0])
    target = PortalTarget(url=server.url(), member_id="m-1")
    ask = rest_ask(server.url(), config, StaticResolver(LOCAL))
    first, second = await asyncio.gather(
        run_portal_checks(target, config, StaticResolver(LOCAL), cache, ask=ask),
        run_portal_checks(target, config, StaticResolver(LOCAL), cache, ask=ask),
    )
    assert first is second  # concurrent asks share one run
    requests_after_first_run = len(server.requests)
    now[0] += config.cache_ttl_passed_s - 1
    assert await run_portal_checks(target, config, StaticResolver(LOCAL), cache, ask=ask) is first
    assert len(server.requests) == requests_after_first_run
    now[0] += 2
    third = await run_portal_checks(target, config, StaticResolver(LOCAL), cache, ask=ask)
    assert third is not first and len(server.requests) == 2 * requests_after_first_run


async def test_the_rest_token_never_appears_in_results(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    routes["/rest/ticketflow.portal.info.json"] = lambda target: Reply(
        status=302, headers={"Location": target + "&again=1"}
    )
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    license_result = report.result(CheckName.LICENSE)
    assert (license_result.outcome, license_result.reason) == (Outcome.NOT_CHECKED, "too_many_redirects")
    assert "token-123" not in msgspec.json.encode(report).decode()
    assert "auth=***" in (license_result.evidence.detail or "")


async def test_a_redirect_to_an_unsendable_target_is_a_reason_not_a_crash(
    serve: ServeFactory, certs: Certificates, config: ChecksConfig
) -> None:
    routes = healthy_routes()
    routes["/pub/"] = Reply(status=302, headers={"Location": "/pub/a\x01b"})
    server = await serve(certs.valid, routes)
    report = await check(server.url(), config)
    assert report.result(CheckName.PUB_READABLE).reason == "malformed_url"


# Loopback spelt every way a URL parser or getaddrinfo accepts (inet_aton's short, decimal, hex and octal
# forms, IPv4-mapped and -compatible IPv6, the name), resolved by the system resolver as in production.
LOOPBACK_SPELLINGS = ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.000.000.001", "[::ffff:127.0.0.1]",
                      "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[::127.0.0.1]", "localhost"]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_spelt_oddly_in_the_portal_url_is_refused_and_never_contacted(
    serve: ServeFactory, certs: Certificates, host: str
) -> None:
    server = await serve(certs.valid, healthy_routes())
    production = ChecksConfig(timeout_s=1.0, extra_trusted_ca_pem=certs.ca_pem, allowed_ports=None)
    url, resolver = f"https://{host}:{server.port}", SystemResolver()
    report = await check_portal_uncached(PortalTarget(url=url, member_id="m-1"), production, resolver,
                                         ask=rest_ask(url, production, resolver))  # fmt: skip
    first = report.results[0]
    assert (first.name, first.outcome) == (CheckName.PUBLIC_ADDRESS, Outcome.FAILED), (host, first)
    assert first.reason == "forbidden_address", (host, first)
    assert all(r.outcome is Outcome.SKIPPED for r in report.results[1:])
    assert server.connections == 0
    assert_failures_explained(report)
