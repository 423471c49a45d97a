"""What preflight reads from a desk's configuration (pure): the scope classifier, the portal address of a
Bitrix24 chat, and whose tickets may absorb a duplicate.

Scope rules: a desk's `[[preflight.scope]]` categories are its rules. For a desk whose categories are
the Desk 1 seed categories (Bitrix24 box), preflight uses its packaged, measured rule set
(`data/scope_rules.toml`, docs/preflight.md section 2) instead of the short keyword lists, and
reports the desk's own category ids, so routing rules written against the desk file still match.
Any other desk is classified by its keywords (each keyword a literal, weight 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import Desk
from ticketflow.deskconfig.model import Referral
from ticketflow.preflight.domain.scope import ScopeClassifier

# desk-file id -> category name in data/scope_rules.toml (the same seed category, spelt differently)
PACKAGED_ALIASES: Mapping[str, str] = {
    "software_installation": "install_software",
    "product_errors": "product_error",
    "business_tasks": "business_task",
}
# The packaged rules score in weights up to ~3 per pattern; a desk's keywords score 1 per keyword.
PACKAGED_REFER_MIN_SCORE = 2.0
KEYWORD_REFER_MIN_SCORE = 1.0


@dataclass(frozen=True)
class DeskScope:
    """A desk's classifier, the map from classifier names back to desk ids, and how strong an
    out-of-scope verdict must be to refer the ticket (domain.scope_verdict)."""

    classifier: ScopeClassifier
    desk_ids: Mapping[str, str]  # classifier category name -> desk category id
    refer_min_score: float
    referrals: Mapping[str, Referral]  # out-of-scope desk category id -> who the customer is referred to
    titles: Mapping[str, tuple[str, str]]  # desk category id -> its name for customers (ru, en)

    def desk_category(self, name: str) -> str:
        return self.desk_ids.get(name, name)

    def referral(self, category: str) -> Referral | None:
        return self.referrals.get(category)


def scope_for(desk: Desk, packaged: ScopeClassifier | None = None) -> DeskScope:
    categories = desk.preflight.scope
    known = {r.id: r for r in desk.referrals}
    referrals = {c.id: known[c.refer_to] for c in categories if not c.in_scope and c.refer_to in known}
    titles = {c.id: (c.title_ru or c.id, c.title_en or c.id) for c in categories}
    packaged = packaged or ScopeClassifier.default()
    packaged_names = {c.name for c in packaged.categories}
    aliased = {PACKAGED_ALIASES.get(c.id, c.id): c.id for c in categories}
    if categories and set(aliased) == packaged_names:
        return DeskScope(packaged, aliased, PACKAGED_REFER_MIN_SCORE, referrals, titles)
    rules: dict[str, Any] = {
        "min_score": 1.0,
        "category": [
            {
                "name": c.id,
                "in_scope": c.in_scope,
                "patterns": [
                    {"re": _keyword_pattern(k), "w": 1.0} for k in (*c.keywords_ru, *c.keywords_en) if k.strip()
                ],
            }
            for c in categories
        ],
    }
    classifier = ScopeClassifier.from_mapping(rules)
    return DeskScope(classifier, {c.id: c.id for c in categories}, KEYWORD_REFER_MIN_SCORE, referrals, titles)


def _keyword_pattern(keyword: str) -> str:
    """A keyword as a literal at a word start (the classifier lower-cases and folds ё to е)."""
    text = " ".join(keyword.lower().replace("ё", "е").split())
    return r"(?<!\w)" + re.escape(text)


def portal_url_for(desk: Desk, chat: ChatRef) -> str | None:
    """The address to check: the event's (intake reads `auth[domain]`), else the desk file's only
    `portal_domains` entry for this member_id. None when neither says."""
    if chat.portal_url:
        return chat.portal_url
    tenant = chat.tenant_id.lower()
    for portal in desk.platforms.bitrix24:
        if tenant in (m.lower() for m in portal.member_ids) and len(portal.portal_domains) == 1:
            domain = portal.portal_domains[0]
            return domain if domain.startswith(("https://", "http://")) else f"https://{domain}/"
    return None


def merge_scope(desk: Desk, chat: ChatRef, requester: Requester) -> str:
    """Whose open tickets may absorb this one as a duplicate (duplicates.py): the organisation where
    the tenant is one customer organisation (every Bitrix24 portal; an eXpress bot or generic tenant
    marked `one_organisation`), otherwise the requester alone (a public bot serves everybody)."""
    organisation = f"{chat.platform}:{chat.tenant_id}"
    tenant = chat.tenant_id.lower()
    if chat.platform == "bitrix24":
        one = True
    elif chat.platform == "express":
        one = any(str(bot.bot_id) == tenant and bot.one_organisation for bot in desk.platforms.express)
    else:
        one = any(g.tenant_id.lower() == tenant and g.one_organisation for g in desk.platforms.generic)
    return organisation if one else f"{organisation}:{requester.user_id}"
