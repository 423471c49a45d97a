"""Parsing the portal's REST answer (the assumed shape lives in one module) and the messages."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ticketflow.preflight.adapters.checks import CheckName
from ticketflow.preflight.adapters.checks.portal_info import (
    PortalInfoError,
    license_verdict,
    parse_portal_info,
    parse_version,
    updates_verdict,
)
from ticketflow.preflight.domain.remediation import known_reasons, remediation_for

TODAY = dt.date(2026, 11, 21)


def answer(**result: object) -> bytes:
    base: dict[str, object] = {"LICENSE": "ru_corp", "MODULES": {"main": "25.100.300"}}
    return json.dumps({"result": {**base, **result}}).encode()


def test_versions_compare_numerically_not_as_text() -> None:
    assert parse_version("25.100.300") > parse_version("25.99.999")
    assert parse_version("25.0") < parse_version("25.0.1")
    with pytest.raises(ValueError):
        parse_version("25.x")


@pytest.mark.parametrize("fields", [{"LICENSE_DEMO": True}, {"LICENSE_TYPE": "DEMO"}, {"LICENSE": "ru_demo"}])
def test_a_demo_license_is_recognised_however_the_portal_says_it(fields: dict[str, object]) -> None:
    assert license_verdict(parse_portal_info(answer(**fields)), TODAY)[0] == "demo_license"


def test_license_activity_is_judged_against_today() -> None:
    assert license_verdict(parse_portal_info(answer(LICENSE_ACTIVE_UNTIL="2026-11-20")), TODAY)[0] == (
        "license_expired"
    )
    assert license_verdict(parse_portal_info(answer(LICENSE_ACTIVE_UNTIL="2026-11-21")), TODAY)[0] == "ok"
    assert license_verdict(parse_portal_info(answer()), TODAY)[0] == "ok"


def test_updates_name_each_module_behind_the_stable_feed() -> None:
    info = parse_portal_info(answer(MODULES={"main": "25.100.0", "im": "25.0.100", "crm": "bad"}))
    reason, detail = updates_verdict(info, {"main": "25.100.300", "im": "25.0.100", "crm": "25.0", "voximplant": "1"})
    assert reason == "updates_missing"
    assert "main 25.100.0 < 25.100.300" in detail and "crm 'bad'" in detail
    assert "im" not in detail.replace("main", "") and "voximplant" not in detail  # absent module: not an update


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>login</html>", "not_json"),
        (b"[1, 2]", "bad_portal_info"),
        (b'{"result": {"LICENSE": "ru_corp"}}', "bad_portal_info"),
        (b'{"result": {"LICENSE": "x", "MODULES": {}, "LICENSE_ACTIVE_UNTIL": "soon"}}', "bad_portal_info"),
        (b'{"error": "insufficient_scope", "error_description": "no scope"}', "rest_error"),
    ],
)
def test_unusable_answers_fail_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PortalInfoError) as caught:
        parse_portal_info(body)
    assert caught.value.reason == reason


# Every failure reason the checks can produce, by module: a new reason without a message fails here. (The
# portal information's own problems, `rest_error`, `bad_portal_info`, make license and updates NOT_CHECKED,
# which the customer is not told about: test_portal_checks.py.)
PRODUCED_REASONS = {
    "malformed_url", "not_https", "not_resolved", "forbidden_address", "connection_failed", "timeout",
    "tls_handshake_failed", "not_http", "redirect_loop", "too_many_redirects", "redirect_not_https",
    "self_signed", "expired", "not_yet_valid", "hostname_mismatch", "untrusted_issuer", "revoked",
    "invalid_certificate", "pub_not_readable", "not_json", "too_large", "demo_license", "license_expired",
    "updates_missing",
}  # fmt: skip


def test_every_failure_reason_has_a_message_in_both_languages() -> None:
    assert known_reasons() >= PRODUCED_REASONS
    for reason in PRODUCED_REASONS:
        message = remediation_for(CheckName.TLS_CERTIFICATE, reason, url="https://p.example", detail="d", path="/pub/")
        assert message.ru and message.en and message.ru != message.en
        assert "{" not in message.ru + message.en  # every placeholder filled


def test_an_unexpected_reason_still_gets_a_message() -> None:
    message = remediation_for(CheckName.JSON_ANSWER, "internal_error", url="u", detail="boom")
    assert "json_answer" in message.en and "boom" in message.ru
    assert message.for_language("ru-RU") == message.ru and message.for_language("en") == message.en
