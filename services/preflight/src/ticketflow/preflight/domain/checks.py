"""Value types of the portal prerequisite checks: what a handler passes in and gets back."""

from __future__ import annotations

import enum

import msgspec


class CheckName(enum.StrEnum):
    """The seed's prerequisites, one check each (Desk 1, Bitrix24 box)."""

    PUBLIC_ADDRESS = "public_address"
    HTTPS_REACHABLE = "https_reachable"
    TLS_CERTIFICATE = "tls_certificate"
    PUB_READABLE = "pub_readable"
    JSON_ANSWER = "json_answer"
    LICENSE = "license"
    UPDATES = "updates"


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # Not run because a check it depends on failed (e.g. nothing is fetched from a private address).
    SKIPPED = "skipped"
    # Could not be run on our side (the portal cannot be asked: no install, a token renewal refused, a
    # timeout; no stable-versions feed): the agent sees why; the customer is not refused for it.
    NOT_CHECKED = "not_checked"


class Remediation(msgspec.Struct, frozen=True, kw_only=True):
    """What is wrong and how to fix it, in the requester's language."""

    ru: str
    en: str

    def for_language(self, language: str) -> str:
        return self.ru if language.lower().startswith("ru") else self.en


class Evidence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a check saw, so a human can verify the verdict without re-running it."""

    elapsed_ms: int = 0
    resolved_addresses: tuple[str, ...] = ()
    connected_address: str | None = None
    status_code: int | None = None
    content_type: str | None = None
    bytes_read: int | None = None
    redirects: tuple[str, ...] = ()
    cert_subject: str | None = None
    cert_issuer: str | None = None
    cert_not_after: str | None = None
    tls_verify_code: int | None = None
    tls_verify_message: str | None = None
    detail: str | None = None


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    name: CheckName
    outcome: Outcome
    # Stable machine code of the verdict ("ok", "self_signed", "private_address", ...).
    reason: str
    evidence: Evidence = Evidence()
    remediation: Remediation | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


class PortalTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A portal to check: its public address, and the portal (`member_id`) whose install's REST access
    the license and updates checks use (None: they are not checked)."""

    url: str
    member_id: str | None = None


class PortalCheckReport(msgspec.Struct, frozen=True, kw_only=True):
    portal: str
    results: tuple[CheckResult, ...]
    # Seconds since the epoch when the checks ran (cached reports keep their original time).
    checked_at: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAILED)

    def result(self, name: CheckName) -> CheckResult:
        for r in self.results:
            if r.name is name:
                return r
        raise KeyError(name)
