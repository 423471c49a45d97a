"""Is a Desk 1 question in support's scope? Keyword rules, kept as data.

Rules come from a plain structure (the shape of data/scope_rules.toml), so desk configuration can point at
its own file or embed the table. Out-of-scope questions are referred to Bitrix24 partners and must not
count against SLA statistics; a message no rule recognises is "unclassified" and stays with a human.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

UNCLASSIFIED = "unclassified"


class ScopeRulesError(ValueError):
    pass


@dataclass(frozen=True)
class ScopeCategory:
    name: str
    in_scope: bool
    patterns: tuple[tuple[re.Pattern[str], float], ...]


@dataclass(frozen=True)
class ScopeDecision:
    category: str
    in_scope: bool
    score: float
    matched: tuple[str, ...]  # the patterns that fired for the winning category

    @property
    def referred(self) -> bool:
        """Out of scope: refer to a Bitrix24 partner; not counted in SLA statistics."""
        return not self.in_scope


def normalise(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


class ScopeClassifier:
    def __init__(self, categories: tuple[ScopeCategory, ...], min_score: float) -> None:
        self.categories = categories
        self.min_score = min_score

    @classmethod
    def from_mapping(cls, rules: Mapping[str, Any]) -> ScopeClassifier:
        try:
            categories = tuple(
                ScopeCategory(
                    name=str(c["name"]),
                    in_scope=bool(c["in_scope"]),
                    patterns=tuple((re.compile(str(p["re"])), float(p["w"])) for p in c["patterns"]),
                )
                for c in rules["category"]
            )
            min_score = float(rules.get("min_score", 1.0))
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise ScopeRulesError(f"bad scope rules: {exc!r}") from exc
        names = [c.name for c in categories]
        if len(set(names)) != len(names) or UNCLASSIFIED in names:
            raise ScopeRulesError(f"category names must be unique and not {UNCLASSIFIED!r}: {names}")
        return cls(categories, min_score)

    @classmethod
    def from_toml(cls, path: Path) -> ScopeClassifier:
        with path.open("rb") as f:
            return cls.from_mapping(tomllib.load(f))

    @classmethod
    def default(cls) -> ScopeClassifier:
        """The rules shipped with preflight (data/scope_rules.toml)."""
        text = resources.files("ticketflow.preflight").joinpath("data/scope_rules.toml").read_text("utf-8")
        return cls.from_mapping(tomllib.loads(text))

    def scores(self, text: str) -> dict[str, float]:
        normal = normalise(text)
        return {c.name: sum(w for p, w in c.patterns if p.search(normal)) for c in self.categories}

    def classify(self, text: str) -> ScopeDecision:
        normal = normalise(text)
        best: ScopeCategory | None = None
        best_score = 0.0
        for category in self.categories:  # strict ">" : ties go to the category listed first
            score = sum(w for p, w in category.patterns if p.search(normal))
            if score > best_score:
                best, best_score = category, score
        if best is None or best_score < self.min_score:
            return ScopeDecision(category=UNCLASSIFIED, in_scope=True, score=best_score, matched=())
        matched = tuple(p.pattern for p, w in best.patterns if w > 0 and p.search(normal))
        return ScopeDecision(category=best.name, in_scope=best.in_scope, score=best_score, matched=matched)
