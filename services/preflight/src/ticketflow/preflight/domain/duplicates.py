"""Is a new bug report or feature request a likely duplicate of an open ticket of the same tenant?

eXpress seed: "Возможно, ваш запрос уже находится в планах разработки". PostgreSQL's pg_trgm finds
candidates (duplicate_store.py); this pure score decides. It blends character trigrams (robust to
inflection and typos, like pg_trgm) with overlap of word stems (prefix stemming, stop words dropped),
which keeps short paraphrases of long tickets from being diluted.

Who may be merged into whom (`sort_duplicates`): a ticket is merged automatically, and its requester
told, only into a ticket of the same *merge scope*: the same requester, or the same organisation where
a tenant is one customer organisation (a Bitrix24 portal, an eXpress bot under contract). A look-alike
from anyone else (the public bot serves everybody) is only suggested to the agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[0-9a-zа-я]+")
_STEM_LENGTH = 5
_STOP_WORDS_TEXT = (
    "и в во на не но а о об от до по за из к с со у же ли бы что как это для при после или так уже его её "
    "их мы нам нас вы вам они он она оно все всё мне меня есть нет да "
    "the a an and or of to in on for at by with from is are was were be it this that as not no do does "
    "please we our us you your after before when than then"
)
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
DEFAULT_THRESHOLD = 0.25  # chosen on the dev queries; see docs/preflight.md


@dataclass(frozen=True)
class TicketText:
    ticket_id: str
    organisation_id: str  # the tenant: "<platform>:<tenant id>" (an eXpress bot, a Bitrix24 portal)
    kind: str  # "bug" or "feature"
    text: str
    merge_scope: str = ""  # who may absorb it as a duplicate ("" never matches: rows from before scopes)


@dataclass(frozen=True)
class DuplicateMatch:
    ticket_id: str
    score: float
    same_scope: bool = False  # the same requester (or organisation): a merge the customer may be told of


@dataclass(frozen=True)
class SortedDuplicates:
    merge: DuplicateMatch | None  # the best match of the same merge scope, if merging is allowed
    suggestions: tuple[DuplicateMatch, ...]  # for the agent only


MAX_SUGGESTIONS = 3


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("ё", "е"))


def trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigrams: each word padded with two spaces in front and one behind."""
    grams: set[str] = set()
    for word in _words(text):
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def trigram_similarity(a: str, b: str) -> float:
    ga, gb = trigrams(a), trigrams(b)
    return len(ga & gb) / len(ga | gb) if ga and gb else 0.0


def stems(text: str) -> frozenset[str]:
    return frozenset(w[:_STEM_LENGTH] for w in _words(text) if len(w) > 1 and w not in _STOP_WORDS)


def stem_overlap(a: str, b: str) -> float:
    """Overlap coefficient: shared stems over the shorter text's stems (a short report is not diluted)."""
    sa, sb = stems(a), stems(b)
    return len(sa & sb) / min(len(sa), len(sb)) if sa and sb else 0.0


def duplicate_score(new: str, existing: str) -> float:
    return 0.5 * trigram_similarity(new, existing) + 0.5 * stem_overlap(new, existing)


def likely_duplicates(
    new: TicketText, open_tickets: Iterable[TicketText], threshold: float = DEFAULT_THRESHOLD
) -> list[DuplicateMatch]:
    """Open tickets of the same organisation and kind scoring at least `threshold`, best first."""
    matches = [
        DuplicateMatch(
            ticket_id=t.ticket_id,
            score=round(duplicate_score(new.text, t.text), 4),
            same_scope=bool(new.merge_scope) and t.merge_scope == new.merge_scope,
        )
        for t in open_tickets
        if t.organisation_id == new.organisation_id and t.kind == new.kind and t.ticket_id != new.ticket_id
    ]
    return sorted((m for m in matches if m.score >= threshold), key=lambda m: -m.score)


def sort_duplicates(matches: Iterable[DuplicateMatch], *, may_merge: bool) -> SortedDuplicates:
    """The best same-scope match is merged into (when `may_merge`: an agent undid an earlier automatic
    merge of this ticket, so never again); every other match, best first, is a suggestion."""
    ranked = sorted(matches, key=lambda m: -m.score)
    merge = next((m for m in ranked if m.same_scope), None) if may_merge else None
    suggestions = tuple(m for m in ranked if m is not merge)[:MAX_SUGGESTIONS]
    return SortedDuplicates(merge, suggestions)
