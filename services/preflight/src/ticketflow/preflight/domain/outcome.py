"""Preflight's decisions, pure: from what the checks, the classifier and the duplicate search found
to exactly one lifecycle command. No I/O here; service.py gathers the inputs.

Order (issue 5): eligibility, portal checks, scope, duplicates, feature-request completeness. The
first that holds the ticket decides: RefuseTicket, RecordPreflightFailed, ReferTicket,
MarkDuplicate, RecordPreflightFailed (feature request incomplete); otherwise RecordPreflightPassed.
MarkDuplicate only merges into the same requester's (or organisation's) ticket; look-alikes of other
requesters ride along on the outcome as suggestions for the agent (issue 14, duplicates.py).

`CheckEvidence.passed` means "does not hold the ticket". A check that did not run is `passed=True`
with `evidence["outcome"]` `"skipped"` (a check it depends on failed) or `"not_checked"` (our side could
not run it: the portal cannot be asked, no stable-versions feed) and the cause in `reason`
(`not_checked_<why>`) and `evidence["detail"]`, so a reader (the agent) never mistakes it for a verified
prerequisite, and it never blocks the customer for our gap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

from ticketflow.contracts import commands as c
from ticketflow.contracts.text import with_nul_replaced
from ticketflow.contracts.ticket_events import CustomerMessageAdded, PreflightFailed, TicketOpened
from ticketflow.contracts.values import CheckEvidence
from ticketflow.deskconfig.model import Referral
from ticketflow.preflight.domain.checks import CheckResult, Outcome
from ticketflow.preflight.domain.duplicates import DuplicateMatch
from ticketflow.preflight.domain.eligibility import Eligibility
from ticketflow.preflight.domain.feature_requests import FeatureRequestAssessment, follow_up_questions
from ticketflow.preflight.domain.scope import UNCLASSIFIED, ScopeDecision

RECHECK = "/recheck"
FEATURE_CHECK = "feature_request_incomplete"
SCOPE_CHECK = "scope"
NO_PORTAL_URL = "skipped_no_portal_url"  # neither the event nor the desk names the portal's address
DUPLICATE_KINDS = {"bug_report": "bug", "product_errors": "bug", "feature_request": "feature"}


@dataclass(frozen=True)
class ScopeVerdict:
    category: str  # what PreflightPassed carries (a desk category id or "unclassified")
    refer: bool
    suggestion: CheckEvidence  # the classifier's verdict, kept as evidence either way
    referral: Referral | None = None  # who the customer is referred to, when `refer`
    title: tuple[str, str] = ("", "")  # the category's name for the customer (ru, en)


def scope_verdict(
    decision: ScopeDecision,
    desk_category: str,
    *,
    refer_min_score: float,
    referral: Referral | None,
    title: tuple[str, str] = ("", ""),
) -> ScopeVerdict:
    """Out of scope refers only with a strong verdict (score >= `refer_min_score` and an out-of-scope
    rule matched): the classifier is weak on unseen text (docs/preflight.md), and a wrong referral
    sends a paying customer away. A weaker out-of-scope verdict passes as "unclassified" with the
    suggestion in the evidence, for the agent to confirm with one click."""
    evidence = {
        "classifier_category": desk_category,
        "score": f"{decision.score:g}",
        "matched": " | ".join(decision.matched),
        "in_scope": str(decision.in_scope).lower(),
    }
    if decision.in_scope:
        return ScopeVerdict(desk_category, False, CheckEvidence(SCOPE_CHECK, True, "in_scope", evidence=evidence))
    strong = decision.score >= refer_min_score and bool(decision.matched)
    if strong and referral is not None:  # (a desk file names a referral for every out-of-scope category)
        evidence["refer_to"] = referral.id
        out = CheckEvidence(SCOPE_CHECK, True, "out_of_scope", evidence=evidence)
        return ScopeVerdict(desk_category, True, out, referral, title)
    weak = CheckEvidence(SCOPE_CHECK, True, "out_of_scope_suggested", evidence=evidence)
    return ScopeVerdict(UNCLASSIFIED, False, weak)


def portal_evidence(results: Iterable[CheckResult], enabled: Iterable[str]) -> tuple[CheckEvidence, ...]:
    """The enabled checks' results as event evidence; our own gaps are not checked, never failed."""
    wanted = set(enabled)
    return tuple(_evidence(r) for r in results if r.name in wanted)


def _evidence(result: CheckResult) -> CheckEvidence:
    facts = {k: _text(v) for k, v in _present_fields(result.evidence).items()}
    name = str(result.name)
    if result.outcome is Outcome.NOT_CHECKED:
        return CheckEvidence(name, True, f"not_checked_{result.reason}", evidence={**facts, "outcome": "not_checked"})
    if result.outcome is Outcome.SKIPPED:
        return _skipped(name, f"skipped_{result.reason}", facts)
    remediation = {"ru": result.remediation.ru, "en": result.remediation.en} if result.remediation else {}
    facts["outcome"] = str(result.outcome)
    return CheckEvidence(name, result.passed, result.reason, remediation, facts)


def _skipped(name: str, reason: str, facts: dict[str, str]) -> CheckEvidence:
    return CheckEvidence(name, True, reason, evidence={**facts, "outcome": "skipped"})


def no_portal_url_evidence() -> CheckEvidence:
    return CheckEvidence("public_address", True, NO_PORTAL_URL, evidence={"outcome": "skipped"})


def _present_fields(value: msgspec.Struct) -> dict[str, object]:
    return {k: v for k, v in msgspec.structs.asdict(value).items() if v not in (None, (), "")}


def _text(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def feature_request_evidence(assessment: FeatureRequestAssessment) -> CheckEvidence:
    """The follow-up questions as remediation: the ticket waits for the customer's answers."""
    missing = [str(p) for p in assessment.missing]
    evidence = {
        "outcome": "failed" if missing else "passed",
        "missing": ", ".join(missing),
        "present": ", ".join(sorted(str(p) for p in assessment.present)),
        "platforms": ", ".join(sorted(assessment.platforms)),
        "importance": assessment.importance or "",
    }
    if not missing:
        return CheckEvidence(FEATURE_CHECK, True, "complete", evidence=evidence)
    remediation = {lang: "\n".join(follow_up_questions(assessment, lang)) for lang in ("ru", "en")}
    return CheckEvidence(FEATURE_CHECK, False, "missing_" + "_".join(missing), remediation, evidence)


@dataclass(frozen=True)
class Findings:
    """Everything preflight found about one ticket; `None` means the step did not apply."""

    ticket_id: uuid.UUID
    eligibility: Eligibility
    locale: str
    portal_checks: tuple[CheckEvidence, ...] = ()
    scope: ScopeVerdict | None = None
    duplicate: DuplicateMatch | None = None  # merge into it (same requester or organisation)
    suggestions: tuple[DuplicateMatch, ...] = ()  # other requesters' look-alikes: for the agent only
    feature_request: FeatureRequestAssessment | None = None
    examined_at: datetime | None = None


def decide_outcome(found: Findings) -> c.TicketCommand:
    """The command preflight's findings lead to. Evidence quotes what a portal answered (page titles,
    headers, versions): a NUL in it becomes U+FFFD, as in chat text, since the store cannot keep a
    NUL (`contracts.text`) and the ticket must still get its preflight result."""
    return with_nul_replaced(_decide_outcome(found), _command_decoder)


_command_decoder: msgspec.json.Decoder[c.TicketCommand] = msgspec.json.Decoder(c.TicketCommand)  # type: ignore[arg-type]


def _decide_outcome(found: Findings) -> c.TicketCommand:
    t = found.ticket_id
    if not found.eligibility.eligible:
        return c.RefuseTicket(t, found.eligibility.code, found.eligibility.message(found.locale))
    checks = list(found.portal_checks)
    if not all(check.passed for check in checks):
        return c.RecordPreflightFailed(t, tuple(checks))
    if found.scope is not None:
        checks.append(found.scope.suggestion)
        if found.scope.refer:
            return c.ReferTicket(t, found.scope.category, _referral_reason(found.scope, found.locale))
    if found.duplicate is not None:
        return c.MarkDuplicate(t, uuid.UUID(found.duplicate.ticket_id), found.duplicate.score, found.examined_at)
    suggested = tuple(c.DuplicateCandidate(uuid.UUID(m.ticket_id), m.score) for m in found.suggestions)
    if found.feature_request is not None:
        feature = feature_request_evidence(found.feature_request)
        checks.append(feature)
        if not feature.passed:
            return c.RecordPreflightFailed(t, tuple(checks), suggested)
    category = found.scope.category if found.scope is not None else UNCLASSIFIED
    return c.RecordPreflightPassed(t, category, tuple(checks), suggested)


def _referral_reason(scope: ScopeVerdict, locale: str) -> str:
    """Where to go instead, in words (the category's and the referral's names, and the referral's
    address), never ids: the customer reads this as it is (notifications' `ticket_referred`)."""
    assert scope.referral is not None
    referral, (title_ru, title_en) = scope.referral, scope.title
    if locale.lower().startswith("ru"):
        where = referral.name_ru + (f" — {referral.url}" if referral.url else "")
        return f"вопросы темы «{title_ru}» не входят в техническую поддержку. Куда обратиться: {where}"
    where = referral.name_en + (f" — {referral.url}" if referral.url else "")
    return f"questions about {title_en} are outside technical support. Where to go: {where}"


def duplicate_kind(category: str) -> str | None:
    """Bug reports and feature requests are matched against open tickets (eXpress seed)."""
    return DUPLICATE_KINDS.get(category)


class Reaction(StrEnum):
    RECHECK = "recheck"  # the customer asked: run everything again, fresh checks
    REASSESS = "reassess"  # an answer to follow-up questions: assess again with the new text
    IGNORE = "ignore"


def reaction_to(
    message: CustomerMessageAdded, awaiting_customer: bool, last_failure: PreflightFailed | None
) -> Reaction:
    """What a customer message means to preflight; only a ticket preflight holds is re-examined."""
    if not awaiting_customer or last_failure is None:
        return Reaction.IGNORE
    if is_recheck(message.text):
        return Reaction.RECHECK
    if any(check.name == FEATURE_CHECK and not check.passed for check in last_failure.checks):
        return Reaction.REASSESS
    return Reaction.IGNORE


def is_recheck(text: str) -> bool:
    words = text.strip().split()
    return bool(words) and words[0].lower() == RECHECK


def ticket_text(opened: TicketOpened, messages: Sequence[CustomerMessageAdded]) -> str:
    """The request as the customer has told it so far: the first message plus every reply (not the
    /recheck commands), so answers to follow-up questions complete the original request."""
    parts = [opened.text, *(m.text for m in messages if not is_recheck(m.text))]
    return "\n".join(part for part in parts if part.strip())
