"""Run the portal prerequisite checks concurrently, each under its own timeout, never raising."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from ticketflow.bitrix24 import Bitrix24Error
from ticketflow.preflight.adapters.checks import portal_info, tls
from ticketflow.preflight.adapters.checks.cache import CheckCache
from ticketflow.preflight.adapters.checks.guarded_http import (
    FetchFailure,
    FetchTrace,
    HttpsUrl,
    guarded_get,
    make_ssl_context,
    open_pinned,
    parse_https_url,
    request_once,
    resolve_allowed,
)
from ticketflow.preflight.adapters.checks.policy import ChecksConfig
from ticketflow.preflight.domain.checks import (
    CheckName,
    CheckResult,
    Evidence,
    Outcome,
    PortalCheckReport,
    PortalTarget,
)
from ticketflow.preflight.domain.remediation import remediation_for
from ticketflow.runtime.netguard import Resolver


@dataclass
class _Probe:
    """One check's working notes: the fetch trace plus evidence fields the check fills in."""

    trace: FetchTrace = field(default_factory=FetchTrace)
    facts: dict[str, Any] = field(default_factory=dict)


_Verdict = tuple[str, str]  # (reason, detail); reason "ok" means passed
_Body = Callable[[_Probe], Awaitable[_Verdict]]


def _redact(url: str) -> str:
    return re.sub(r"(auth=)[^&#]*", r"\1***", url)


def _snippet(body: bytes) -> str:
    text = body[:120].decode("utf-8", "replace")
    return " ".join(text.split())


async def _run_check(
    name: CheckName, body: _Body, *, portal_url: str, config: ChecksConfig, path: str = "/"
) -> CheckResult:
    probe = _Probe()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(config.timeout_s):
            reason, detail = await body(probe)
    except FetchFailure as exc:
        reason, detail = exc.reason, exc.detail
    except TimeoutError:
        reason, detail = "timeout", f"no answer within {config.timeout_s:g} s"
    except Exception as exc:  # a check must report, not crash the run: the handler needs all results
        reason, detail = "internal_error", f"{type(exc).__name__}: {exc}"
    detail = _redact(detail)  # failure details quote URLs, and the REST URL carries the token
    evidence = Evidence(
        elapsed_ms=round((time.perf_counter() - started) * 1000),
        resolved_addresses=tuple(probe.trace.resolved),
        connected_address=probe.trace.connected,
        redirects=tuple(_redact(u) for u in probe.trace.redirects),
        detail=detail,
        **probe.facts,
    )
    return _result(name, reason, detail, evidence, portal_url=portal_url, path=path)


def _result(
    name: CheckName, reason: str, detail: str, evidence: Evidence, *, portal_url: str, path: str
) -> CheckResult:
    if reason == "ok":
        return CheckResult(name=name, outcome=Outcome.PASSED, reason="ok", evidence=evidence)
    remediation = remediation_for(name, reason, url=portal_url, detail=detail, path=path)
    return CheckResult(name=name, outcome=Outcome.FAILED, reason=reason, evidence=evidence, remediation=remediation)


def _origin(url: HttpsUrl, path: str) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"https://{host}:{url.port}{path}"


async def _public_address(probe: _Probe, url: HttpsUrl, resolver: Resolver, config: ChecksConfig) -> _Verdict:
    await resolve_allowed(url.host, url.port, resolver, config, probe.trace)
    return "ok", f"{url.host} resolves to public addresses {', '.join(probe.trace.resolved)}"


async def _https_reachable(probe: _Probe, url: HttpsUrl, resolver: Resolver, config: ChecksConfig) -> _Verdict:
    # Any HTTP answer over TLS counts; certificate judgement is the TLS check's job.
    root = parse_https_url(_origin(url, "/"))
    addresses = await resolve_allowed(root.host, root.port, resolver, config, probe.trace)
    answer = await request_once(root, addresses, make_ssl_context(config, verify=False), config, probe.trace)
    probe.facts["status_code"] = answer.status
    return "ok", f"HTTP {answer.status} over TLS"


async def _tls_certificate(probe: _Probe, url: HttpsUrl, resolver: Resolver, config: ChecksConfig) -> _Verdict:
    addresses = await resolve_allowed(url.host, url.port, resolver, config, probe.trace)
    try:
        _reader, writer = await open_pinned(url, addresses, make_ssl_context(config, verify=True), probe.trace)
    except ssl.SSLCertVerificationError as exc:
        probe.facts["tls_verify_code"] = exc.verify_code
        probe.facts["tls_verify_message"] = exc.verify_message
        await _record_unverified_cert(probe, url, addresses, config)
        return tls.verify_error_reason(exc), f"{exc.verify_message} (code {exc.verify_code})"
    except ssl.SSLError as exc:
        return "tls_handshake_failed", str(exc)
    try:
        _record_cert(probe, tls.peer_cert_der(writer.get_extra_info("ssl_object")))
    finally:
        writer.transport.abort()
    return "ok", f"certificate valid for {url.host} until {probe.facts.get('cert_not_after')}"


def _record_cert(probe: _Probe, der: bytes | None) -> None:
    facts = tls.cert_facts_from_der(der)
    if facts is not None:
        probe.facts.update(cert_subject=facts.subject, cert_issuer=facts.issuer, cert_not_after=facts.not_after)


async def _record_unverified_cert(probe: _Probe, url: HttpsUrl, addresses: list[Any], config: ChecksConfig) -> None:
    """Second, non-verifying handshake to the same checked address, only to show the bad certificate."""
    try:
        _reader, writer = await open_pinned(url, addresses, make_ssl_context(config, verify=False), FetchTrace())
    except (OSError, FetchFailure):
        return
    try:
        _record_cert(probe, tls.peer_cert_der(writer.get_extra_info("ssl_object")))
    finally:
        writer.transport.abort()


async def _pub_readable(probe: _Probe, url: HttpsUrl, resolver: Resolver, config: ChecksConfig) -> _Verdict:
    answer = await guarded_get(_origin(url, config.pub_path), resolver=resolver, config=config, trace=probe.trace)
    probe.facts.update(status_code=answer.status, content_type=answer.content_type, bytes_read=len(answer.body))
    final_path = urlsplit(answer.url).path
    if not final_path.startswith(config.pub_path):
        return "pub_not_readable", f"redirected to {_redact(answer.url)} (a login page?)"
    if not 200 <= answer.status < 300:
        return "pub_not_readable", f"HTTP {answer.status}"
    return "ok", f"HTTP {answer.status} without authentication"


async def _json_answer(probe: _Probe, url: HttpsUrl, resolver: Resolver, config: ChecksConfig) -> _Verdict:
    probe_url = _origin(url, config.json_probe_path)
    answer = await guarded_get(probe_url, resolver=resolver, config=config, trace=probe.trace)
    probe.facts.update(status_code=answer.status, content_type=answer.content_type, bytes_read=len(answer.body))
    if answer.truncated:
        return "too_large", f"more than {config.max_body_bytes} bytes"
    try:
        json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return (
            "not_json",
            f"HTTP {answer.status}, {answer.content_type or 'no content type'}: {_snippet(answer.body)!r}",
        )
    return "ok", f"HTTP {answer.status} with a JSON body"


PortalAsk = Callable[[str], Awaitable[Any]]
"""Calls a REST method on the portal with its install's tokens (`ticketflow.bitrix24.PortalRest.call`)
and returns its `result`; raises `ticketflow.bitrix24` errors when the portal cannot be asked."""


@dataclass(frozen=True)
class StableFeed:
    """The latest stable module versions the updates check compares with, or why there are none."""

    versions: Mapping[str, str]
    problem: tuple[str, str] | None = None  # (reason, detail) when there is no usable copy


def _not_checked(name: CheckName, reason: str, detail: str, elapsed_ms: int = 0) -> CheckResult:
    evidence = Evidence(elapsed_ms=elapsed_ms, detail=_redact(detail))
    return CheckResult(name=name, outcome=Outcome.NOT_CHECKED, reason=reason, evidence=evidence)


async def _ask_portal_info(ask: PortalAsk, config: ChecksConfig) -> portal_info.PortalInfo | tuple[str, str]:
    """The portal's account of itself, or (reason, detail) of why it could not be had."""
    try:
        async with asyncio.timeout(config.timeout_s):
            return portal_info.parse_portal_info_result(await ask(config.portal_info_method))
    except Bitrix24Error as exc:
        return exc.reason, exc.detail
    except portal_info.PortalInfoError as exc:
        return exc.reason, exc.detail
    except TimeoutError:
        return "timeout", f"no answer within {config.timeout_s:g} s"
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:  # the install could not be read
        return "installs_unavailable", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the checks report, they never crash the run
        return "internal_error", f"{type(exc).__name__}: {exc}"


async def _license_and_updates(
    portal_url: str, ask: PortalAsk | None, config: ChecksConfig, feed: StableFeed, today: dt.date
) -> tuple[CheckResult, CheckResult]:
    """Both checks read one REST answer. When the portal cannot be asked, both are NOT_CHECKED with the
    reason (our side's gap, never the customer's fault); without a feed, updates is NOT_CHECKED."""
    started = time.perf_counter()
    if ask is None:
        detail = "the portal has no install of the application: nothing may ask it"
        return _not_checked(CheckName.LICENSE, "no_install", detail), _not_checked(
            CheckName.UPDATES, "no_install", detail
        )
    answer = await _ask_portal_info(ask, config)
    elapsed = round((time.perf_counter() - started) * 1000)
    if not isinstance(answer, portal_info.PortalInfo):
        reason, detail = answer
        return _not_checked(CheckName.LICENSE, reason, detail, elapsed), _not_checked(
            CheckName.UPDATES, reason, detail, elapsed
        )
    path = f"/rest/{config.portal_info_method}.json"
    reason, detail = portal_info.license_verdict(answer, today)
    evidence = Evidence(elapsed_ms=elapsed, detail=detail)
    license_result = _result(CheckName.LICENSE, reason, detail, evidence, portal_url=portal_url, path=path)
    if not feed.versions:
        reason, detail = feed.problem or ("no_stable_versions_feed", "the desk configures no stable-versions feed")
        return license_result, _not_checked(CheckName.UPDATES, reason, detail, elapsed)
    reason, detail = portal_info.updates_verdict(answer, feed.versions)
    evidence = Evidence(elapsed_ms=elapsed, detail=detail)
    return license_result, _result(CheckName.UPDATES, reason, detail, evidence, portal_url=portal_url, path=path)


_NETWORK_CHECKS = {
    CheckName.HTTPS_REACHABLE: _https_reachable,
    CheckName.TLS_CERTIFICATE: _tls_certificate,
    CheckName.PUB_READABLE: _pub_readable,
    CheckName.JSON_ANSWER: _json_answer,
}


def cache_key(portal: PortalTarget) -> str:
    try:
        url = parse_https_url(portal.url)
        where = f"{url.host}:{url.port}"
    except FetchFailure:
        where = portal.url.strip().lower()
    return f"{where}|{portal.member_id or 'no-install'}"


async def check_portal_uncached(
    portal: PortalTarget,
    config: ChecksConfig,
    resolver: Resolver,
    *,
    ask: PortalAsk | None = None,
    feed: StableFeed | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> PortalCheckReport:
    """Every prerequisite check for one portal. Nothing is fetched unless the address check passed.
    `ask`: the portal's REST through its install (None: license and updates are not checked); `feed`:
    the stable versions (default: the configuration's)."""
    checked_at = wall_clock()
    today = dt.datetime.fromtimestamp(checked_at, dt.UTC).date()

    async def address_body(probe: _Probe) -> _Verdict:
        return await _public_address(probe, parse_https_url(portal.url), resolver, config)

    address = await _run_check(CheckName.PUBLIC_ADDRESS, address_body, portal_url=portal.url, config=config)
    if not address.passed:
        skipped = [
            CheckResult(name=name, outcome=Outcome.SKIPPED, reason="blocked_by_public_address")
            for name in (*_NETWORK_CHECKS, CheckName.LICENSE, CheckName.UPDATES)
        ]
        return PortalCheckReport(portal=portal.url, results=(address, *skipped), checked_at=checked_at)
    url = parse_https_url(portal.url)

    def bind(check: Callable[[_Probe, HttpsUrl, Resolver, ChecksConfig], Awaitable[_Verdict]]) -> _Body:
        return lambda probe: check(probe, url, resolver, config)

    paths = {CheckName.PUB_READABLE: config.pub_path, CheckName.JSON_ANSWER: config.json_probe_path}
    network = [
        _run_check(name, bind(check), portal_url=portal.url, config=config, path=paths.get(name, "/"))
        for name, check in _NETWORK_CHECKS.items()
    ]
    stable = feed if feed is not None else StableFeed(config.stable_versions)
    results, (license_result, updates_result) = await asyncio.gather(
        asyncio.gather(*network), _license_and_updates(portal.url, ask, config, stable, today)
    )
    return PortalCheckReport(
        portal=portal.url,
        results=(address, *results, license_result, updates_result),
        checked_at=checked_at,
    )


async def run_portal_checks(
    portal: PortalTarget,
    config: ChecksConfig,
    resolver: Resolver,
    cache: CheckCache,
    *,
    ask: PortalAsk | None = None,
    feed: StableFeed | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> PortalCheckReport:
    """The portal's check report: cached per portal (TTL by outcome), one run shared by concurrent asks."""

    def ttl_for(report: PortalCheckReport) -> float:
        return config.cache_ttl_passed_s if report.passed else config.cache_ttl_failed_s

    return await cache.run_once(
        cache_key(portal),
        lambda: check_portal_uncached(portal, config, resolver, ask=ask, feed=feed, wall_clock=wall_clock),
        ttl_for,
    )
