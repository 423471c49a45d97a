"""Precision and recall of the scope classifier on the labelled set, dev and held-out parts.

Run: .venv/bin/python tests/preflight/scope_report.py [--show-errors]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ticketflow.preflight.domain.scope import ScopeClassifier

LABELLED = Path(__file__).parent / "data" / "scope_labelled.jsonl"


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    lang: str
    split: str
    round: int = 0


@dataclass(frozen=True)
class ClassFigures:
    precision: float
    recall: float
    support: int


def load_examples() -> list[Example]:
    with LABELLED.open(encoding="utf-8") as f:
        return [Example(**json.loads(line)) for line in f if line.strip()]


def evaluate(
    classifier: ScopeClassifier, examples: Iterable[Example]
) -> tuple[dict[str, ClassFigures], float, float, list[tuple[Example, str]]]:
    """Per-class figures, overall accuracy, in/out-of-scope accuracy, and the misclassified examples."""
    pairs = [(e, classifier.classify(e.text)) for e in examples]
    in_scope = {c.name: c.in_scope for c in classifier.categories}
    labels = sorted({e.label for e, _ in pairs})
    figures: dict[str, ClassFigures] = {}
    for label in labels:
        predicted = [e for e, d in pairs if d.category == label]
        actual = [e for e, _ in pairs if e.label == label]
        hits = sum(1 for e in predicted if e.label == label)
        figures[label] = ClassFigures(
            precision=hits / len(predicted) if predicted else 0.0,
            recall=hits / len(actual) if actual else 0.0,
            support=len(actual),
        )
    accuracy = sum(1 for e, d in pairs if d.category == e.label) / len(pairs)
    scope_accuracy = sum(1 for e, d in pairs if d.in_scope == in_scope[e.label]) / len(pairs)
    errors = [(e, d.category) for e, d in pairs if d.category != e.label]
    return figures, accuracy, scope_accuracy, errors


@dataclass(frozen=True)
class ReferralFigures:
    """The decision that matters to the requester: refer to a partner or not."""

    wrongly_referred: float  # share of in-scope messages sent to partners (the harmful error)
    referral_recall: float  # share of out-of-scope messages caught
    unclassified: float  # share left to a human


def referral_figures(classifier: ScopeClassifier, examples: Iterable[Example]) -> ReferralFigures:
    in_scope = {c.name: c.in_scope for c in classifier.categories}
    pairs = [(e, classifier.classify(e.text)) for e in examples]
    inside = [d for e, d in pairs if in_scope[e.label]]
    outside = [d for e, d in pairs if not in_scope[e.label]]
    return ReferralFigures(
        wrongly_referred=sum(d.referred for d in inside) / max(len(inside), 1),
        referral_recall=sum(d.referred for d in outside) / max(len(outside), 1),
        unclassified=sum(d.category == "unclassified" for _, d in pairs) / max(len(pairs), 1),
    )


def macro(figures: dict[str, ClassFigures]) -> tuple[float, float]:
    n = len(figures)
    return sum(f.precision for f in figures.values()) / n, sum(f.recall for f in figures.values()) / n


def main(argv: list[str]) -> None:
    classifier = ScopeClassifier.default()
    examples = load_examples()
    for split in ("dev", "heldout", "all"):
        part = [e for e in examples if split in ("all", e.split)]
        figures, accuracy, scope_accuracy, errors = evaluate(classifier, part)
        macro_p, macro_r = macro(figures)
        print(f"\n== {split}: {len(part)} messages ==")
        print(f"{'class':<20}{'precision':>10}{'recall':>8}{'n':>5}")
        for label, f in figures.items():
            print(f"{label:<20}{f.precision:>10.2f}{f.recall:>8.2f}{f.support:>5}")
        print(f"{'macro':<20}{macro_p:>10.2f}{macro_r:>8.2f}")
        print(f"accuracy {accuracy:.2f}; in/out-of-scope accuracy {scope_accuracy:.2f}")
        r = referral_figures(classifier, part)
        print(
            f"wrongly referred {r.wrongly_referred:.2f}; referral recall {r.referral_recall:.2f}; "
            f"unclassified {r.unclassified:.2f}"
        )
        if "--show-errors" in argv and split != "all":
            for e, got in errors:
                print(f"  [{e.label} -> {got}] {e.text}")


if __name__ == "__main__":
    main(sys.argv[1:])
