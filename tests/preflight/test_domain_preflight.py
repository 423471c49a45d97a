"""Preflight's pure outcome selection: one command per ticket, in the issue's order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.contracts import commands as c
from ticketflow.contracts.ticket_events import CustomerMessageAdded, PreflightFailed, TicketOpened
from ticketflow.contracts.values import ChatRef, CheckEvidence, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.deskconfig.model import Referral
from ticketflow.lifecycle import decide, fold
from ticketflow.preflight.adapters.checks import CheckName, CheckResult, Evidence, Outcome, Remediation
from ticketflow.preflight.domain import outcome as domain
from ticketflow.preflight.domain.desk_rules import merge_scope, scope_for
from ticketflow.preflight.domain.duplicates import DuplicateMatch
from ticketflow.preflight.domain.eligibility import ELIGIBLE, NOT_PORTAL_ADMIN, Eligibility
from ticketflow.preflight.domain.feature_requests import assess_feature_request
from ticketflow.preflight.domain.scope import ScopeDecision

T = uuid.uuid4()
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
REFUSED = Eligibility(False, NOT_PORTAL_ADMIN, ("только администраторам", "administrators only"))
OK_CHECK = CheckEvidence("tls_certificate", True, "ok")
BAD_CHECK = CheckEvidence("tls_certificate", False, "self_signed", {"ru": "исправьте", "en": "fix it"})
PARTNERS = Referral(id="bitrix24_partners", name_ru="партнёры Битрикс24", name_en="Bitrix24 partners",
                    url="https://www.bitrix24.ru/partners/")  # fmt: skip
IN_SCOPE = domain.scope_verdict(
    ScopeDecision("updates", True, 1.5, ("upd",)), "updates", refer_min_score=2, referral=None
)
STRONG_OUT = domain.scope_verdict(
    ScopeDecision("custom_development", False, 3.3, ("разработа",)),
    "custom_development",
    refer_min_score=2,
    referral=PARTNERS,
    title=("разработка под заказ", "custom development"),
)
COMPLETE_FR = assess_feature_request(
    "Добавьте возможность закреплять сообщения в чатах. Платформа: мобильное приложение и web. "
    "Просят часто, около 40 обращений в месяц. Важность: высокая"
)
INCOMPLETE_FR = assess_feature_request("Предложение: добавьте возможность закреплять сообщения")
DUPLICATE = DuplicateMatch(str(uuid.uuid4()), 0.61)


def findings(**overrides: object) -> domain.Findings:
    base: dict[str, object] = {"ticket_id": T, "eligibility": ELIGIBLE, "locale": "ru"}
    return domain.Findings(**{**base, **overrides})  # type: ignore[arg-type]


def test_an_ineligible_requester_is_refused_before_anything_else() -> None:
    command = domain.decide_outcome(findings(eligibility=REFUSED, portal_checks=(BAD_CHECK,), scope=STRONG_OUT))
    assert command == c.RefuseTicket(T, NOT_PORTAL_ADMIN, "только администраторам")
    english = domain.decide_outcome(findings(eligibility=REFUSED, locale="en"))
    assert isinstance(english, c.RefuseTicket) and english.reason == "administrators only"


def test_a_failed_check_holds_the_ticket_with_every_checks_evidence() -> None:
    command = domain.decide_outcome(findings(portal_checks=(OK_CHECK, BAD_CHECK), scope=STRONG_OUT))
    assert command == c.RecordPreflightFailed(T, (OK_CHECK, BAD_CHECK))


def test_a_strong_out_of_scope_verdict_refers_to_partners_in_words_with_their_address() -> None:
    command = domain.decide_outcome(findings(portal_checks=(OK_CHECK,), scope=STRONG_OUT, duplicate=DUPLICATE))
    assert isinstance(command, c.ReferTicket) and command.category == "custom_development"
    assert command.reason == (
        "вопросы темы «разработка под заказ» не входят в техническую поддержку. "
        "Куда обратиться: партнёры Битрикс24 — https://www.bitrix24.ru/partners/"
    )
    english = domain.decide_outcome(findings(scope=STRONG_OUT, locale="en"))
    assert isinstance(english, c.ReferTicket) and "Bitrix24 partners — https://" in english.reason
    assert "custom_development" not in english.reason and "bitrix24_partners" not in english.reason


def test_express_referrals_go_to_the_organisations_support_never_to_bitrix24_partners() -> None:
    express = load_desks().desks["express"]
    scope = scope_for(express)
    verdict = domain.scope_verdict(
        ScopeDecision("corporate_app", False, 3.0, ("корпоративное приложение",)), "corporate_app",
        refer_min_score=1.0, referral=scope.referral("corporate_app"), title=scope.titles["corporate_app"],
    )  # fmt: skip
    command = domain.decide_outcome(findings(scope=verdict))
    assert isinstance(command, c.ReferTicket)
    assert "служба поддержки вашей организации" in command.reason and "Битрикс24" not in command.reason
    for category in express.preflight.scope:
        referral = scope.referral(category.id)
        assert referral is None or "bitrix24" not in (referral.id + str(referral.url)).lower()


@pytest.mark.parametrize(("score", "matched"), [(1.3, ("перезагруз",)), (1.99, ("x", "y")), (5.0, ())])
def test_a_weak_out_of_scope_verdict_passes_as_unclassified_with_the_suggestion(
    score: float, matched: tuple[str, ...]
) -> None:
    weak = domain.scope_verdict(
        ScopeDecision("server_diagnostics", False, score, matched),
        "server_diagnostics",
        refer_min_score=2.0,
        referral=PARTNERS,
    )
    command = domain.decide_outcome(findings(scope=weak))
    assert isinstance(command, c.RecordPreflightPassed)
    assert command.category == "unclassified"
    [scope] = command.checks
    assert scope.reason == "out_of_scope_suggested" and scope.passed
    assert scope.evidence["classifier_category"] == "server_diagnostics"


def test_a_duplicate_is_marked_before_feature_completeness_is_asked() -> None:
    command = domain.decide_outcome(findings(scope=IN_SCOPE, duplicate=DUPLICATE, feature_request=INCOMPLETE_FR))
    assert command == c.MarkDuplicate(T, uuid.UUID(DUPLICATE.ticket_id), 0.61)


def test_another_requesters_look_alikes_ride_along_as_suggestions_for_the_agent() -> None:
    other = DuplicateMatch(str(uuid.uuid4()), 0.7)
    passed = domain.decide_outcome(findings(scope=IN_SCOPE, suggestions=(other,)))
    assert isinstance(passed, c.RecordPreflightPassed)
    assert passed.suggested_duplicates == (c.DuplicateCandidate(uuid.UUID(other.ticket_id), 0.7),)
    waiting = domain.decide_outcome(findings(scope=IN_SCOPE, suggestions=(other,), feature_request=INCOMPLETE_FR))
    assert isinstance(waiting, c.RecordPreflightFailed) and len(waiting.suggested_duplicates) == 1


def test_an_incomplete_feature_request_waits_for_answers_to_follow_up_questions() -> None:
    command = domain.decide_outcome(findings(scope=IN_SCOPE, feature_request=INCOMPLETE_FR))
    assert isinstance(command, c.RecordPreflightFailed)
    feature = command.checks[-1]
    assert feature.name == domain.FEATURE_CHECK and not feature.passed
    assert "платформ" in feature.remediation["ru"].lower() and "platform" in feature.remediation["en"].lower()
    assert feature.evidence["missing"] == "where, platform, frequency, importance"


def test_a_nul_in_what_a_portal_answered_is_replaced_so_the_ticket_still_gets_its_result() -> None:
    quoted = CheckEvidence("public_address", False, "unreachable", {}, {"title": "Bitrix24\x00portal"})
    command = domain.decide_outcome(findings(portal_checks=(OK_CHECK, quoted)))
    assert isinstance(command, c.RecordPreflightFailed)
    assert command.checks[1].evidence == {"title": "Bitrix24\ufffdportal"}
    assert domain.decide_outcome(findings(portal_checks=(OK_CHECK, BAD_CHECK))).checks == (OK_CHECK, BAD_CHECK)  # type: ignore[union-attr]


def test_everything_fine_passes_with_the_category_and_evidence() -> None:
    command = domain.decide_outcome(findings(portal_checks=(OK_CHECK,), scope=IN_SCOPE, feature_request=COMPLETE_FR))
    assert isinstance(command, c.RecordPreflightPassed)
    assert command.category == "updates"
    assert [check.name for check in command.checks] == ["tls_certificate", "scope", domain.FEATURE_CHECK]
    assert domain.decide_outcome(findings()) == c.RecordPreflightPassed(T, "unclassified", ())


def result(name: CheckName, outcome: Outcome, reason: str) -> CheckResult:
    remediation = Remediation(ru="ру", en="en") if outcome is Outcome.FAILED else None
    return CheckResult(
        name=name, outcome=outcome, reason=reason, evidence=Evidence(elapsed_ms=3), remediation=remediation
    )


def test_checks_we_could_not_run_are_not_checked_with_the_reason_never_failed() -> None:
    """Issue 16: when the portal cannot be asked (no install, renewal refused, a timeout) or there is no
    stable-versions feed, the agent reads "not checked" and why; the customer is not refused for it."""
    results = [
        result(CheckName.TLS_CERTIFICATE, Outcome.PASSED, "ok"),
        CheckResult(name=CheckName.LICENSE, outcome=Outcome.NOT_CHECKED, reason="refresh_refused",
                    evidence=Evidence(detail="invalid_grant: the portal must install the application again")),
        CheckResult(name=CheckName.UPDATES, outcome=Outcome.NOT_CHECKED, reason="feed_unavailable",
                    evidence=Evidence(detail="HTTP 503")),
        result(CheckName.PUB_READABLE, Outcome.FAILED, "pub_not_readable"),
    ]  # fmt: skip
    evidence = domain.portal_evidence(results, ["tls_certificate", "license", "updates", "pub_readable"])
    by_name = {e.name: e for e in evidence}
    assert by_name["license"].passed and by_name["license"].reason == "not_checked_refresh_refused"
    assert by_name["license"].evidence == {
        "detail": "invalid_grant: the portal must install the application again",
        "elapsed_ms": "0",
        "outcome": "not_checked",
    }
    assert by_name["license"].remediation == {}  # nothing for the customer to fix
    assert by_name["updates"].reason == "not_checked_feed_unavailable" and by_name["updates"].passed
    assert not by_name["pub_readable"].passed and by_name["pub_readable"].remediation == {"ru": "ру", "en": "en"}
    assert by_name["tls_certificate"].evidence == {"elapsed_ms": "3", "outcome": "passed"}
    command = domain.decide_outcome(findings(portal_checks=(by_name["license"], by_name["updates"])))
    assert isinstance(command, c.RecordPreflightPassed)  # not refused for our gap


def test_only_the_desks_enabled_checks_are_reported() -> None:
    results = [
        result(CheckName.JSON_ANSWER, Outcome.FAILED, "not_json"),
        result(CheckName.PUBLIC_ADDRESS, Outcome.PASSED, "ok"),
    ]
    evidence = domain.portal_evidence(results, ["public_address"])
    assert [e.name for e in evidence] == ["public_address"]


def opened(text: str = "Портал не открывается") -> TicketOpened:
    chat = ChatRef("bitrix24", "member", "chat1")
    return TicketOpened(T, "bitrix24-box", "box", chat, Requester("u1", roles=("portal_admin",)), text, "m0", NOW)


def message(text: str, message_id: str = "m1") -> CustomerMessageAdded:
    return CustomerMessageAdded(T, message_id, text, NOW)


FAILED_CHECKS = PreflightFailed(T, (BAD_CHECK,))
FAILED_FEATURE = PreflightFailed(T, (CheckEvidence(domain.FEATURE_CHECK, False, "missing_platform"),))


@pytest.mark.parametrize(
    ("text", "awaiting", "failure", "reaction"),
    [
        ("/recheck", True, FAILED_CHECKS, domain.Reaction.RECHECK),
        ("  /RECHECK please ", True, FAILED_CHECKS, domain.Reaction.RECHECK),
        ("/recheck", False, FAILED_CHECKS, domain.Reaction.IGNORE),  # not held by preflight (any more)
        ("/recheck", True, None, domain.Reaction.IGNORE),
        ("I fixed the certificate", True, FAILED_CHECKS, domain.Reaction.IGNORE),  # only /recheck re-runs checks
        ("Платформа: web", True, FAILED_FEATURE, domain.Reaction.REASSESS),
        ("/recheck", True, FAILED_FEATURE, domain.Reaction.RECHECK),
    ],
)
def test_reaction_to_customer_messages(
    text: str, awaiting: bool, failure: PreflightFailed | None, reaction: domain.Reaction
) -> None:
    assert domain.reaction_to(message(text), awaiting, failure) is reaction


def test_the_request_text_gathers_replies_but_not_recheck_commands() -> None:
    text = domain.ticket_text(opened("Добавьте реакции"), [message("/recheck"), message("Платформа: web", "m2")])
    assert text == "Добавьте реакции\nПлатформа: web"


checks = st.builds(
    CheckEvidence,
    st.sampled_from(["public_address", "tls_certificate", "license"]),
    st.booleans(),
    st.just("r"),
    st.just({"ru": "р", "en": "e"}),
)
verdicts = st.sampled_from([None, IN_SCOPE, STRONG_OUT])


@given(
    eligible=st.booleans(),
    portal=st.lists(checks, max_size=4),
    scope=verdicts,
    duplicate=st.sampled_from([None, DUPLICATE]),
    feature=st.sampled_from([None, COMPLETE_FR, INCOMPLETE_FR]),
)
def test_every_outcome_is_a_command_the_lifecycle_accepts_for_a_new_ticket(
    eligible: bool, portal: list[CheckEvidence], scope: domain.ScopeVerdict | None, duplicate: DuplicateMatch | None,
    feature: object,
) -> None:  # fmt: skip
    found = findings(
        eligibility=ELIGIBLE if eligible else REFUSED,
        portal_checks=tuple(portal),
        scope=scope,
        duplicate=duplicate,
        feature_request=feature,
    )
    command = domain.decide_outcome(found)
    events = decide(command, fold([opened()]))  # raises IllegalTransition if preflight chose badly
    assert len(events) == 1
    assert isinstance(command, c.RefuseTicket) == (not eligible)


def test_the_merge_scope_is_the_requester_on_a_public_bot_and_the_organisation_under_contract() -> None:
    desks = load_desks()
    public, contract = "8dada2c8-67a6-4434-9dec-570d244e78ee", "3f0c6a8e-2b1d-4c5e-9a7f-1e2d3c4b5a69"
    ann = Requester("ann")
    express = desks.desks["express"]
    assert merge_scope(express, ChatRef("express", public, "c1"), ann) == f"express:{public}:ann"
    assert merge_scope(express, ChatRef("express", contract, "c1"), ann) == f"express:{contract}"
    assert merge_scope(express, ChatRef("express", "unknown-bot", "c1"), ann) == "express:unknown-bot:ann"
    box = desks.desks["bitrix24-box"]
    assert merge_scope(box, ChatRef("bitrix24", "member-1", "7"), ann) == "bitrix24:member-1"
