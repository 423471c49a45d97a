"""Scope classifier (Desk 1): floors are the figures measured; see docs/preflight.md for the rounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scope_report import evaluate, load_examples, referral_figures

from ticketflow.preflight.domain.scope import UNCLASSIFIED, ScopeClassifier, ScopeRulesError

SEED_IN_SCOPE = {"installation", "configuration", "performance", "updates", "product_error", "how_to"}
SEED_OUT_OF_SCOPE = {
    "install_software",
    "server_diagnostics",
    "code_optimisation",
    "custom_development",
    "business_task",
}


@pytest.fixture(scope="module")
def classifier() -> ScopeClassifier:
    return ScopeClassifier.default()


def test_the_shipped_rules_cover_exactly_the_seeds_categories(classifier: ScopeClassifier) -> None:
    assert {c.name for c in classifier.categories if c.in_scope} == SEED_IN_SCOPE
    assert {c.name for c in classifier.categories if not c.in_scope} == SEED_OUT_OF_SCOPE


def test_the_labelled_set_is_big_enough_and_bilingual() -> None:
    examples = load_examples()
    assert len(examples) >= 100
    by_lang = {lang: sum(e.lang == lang for e in examples) for lang in ("ru", "en")}
    assert min(by_lang.values()) >= 0.4 * len(examples)
    assert {e.label for e in examples} == SEED_IN_SCOPE | SEED_OUT_OF_SCOPE
    assert sum(e.split == "heldout" for e in examples) >= 50


def test_dev_set_floors(classifier: ScopeClassifier) -> None:
    figures, accuracy, scope_accuracy, _ = evaluate(classifier, [e for e in load_examples() if e.split == "dev"])
    assert accuracy >= 0.98 and scope_accuracy >= 0.99
    assert min(f.recall for f in figures.values()) >= 0.9


def test_held_out_floors(classifier: ScopeClassifier) -> None:
    """Round 3, written after rules v3 were frozen: 0.49 accuracy, 0.76 in/out accuracy as frozen;
    0.51 / 0.80 after two rule bugs it exposed were fixed (docs/preflight.md has every round)."""
    heldout = [e for e in load_examples() if e.split == "heldout"]
    _figures, accuracy, scope_accuracy, _ = evaluate(classifier, heldout)
    assert accuracy >= 0.49 and scope_accuracy >= 0.76
    referral = referral_figures(classifier, heldout)
    # The harmful error is refusing an in-scope question; misses only go to a human as unclassified.
    assert referral.wrongly_referred <= 1 / 30
    assert referral.referral_recall >= 0.55


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Ошибка при установке обновления 24.0.100", "updates"),
        ("Установите нам Битрикс24 на сервер", "install_software"),
        ("Как установить Битрикс24 на сервер? Мастер установки падает", "installation"),
        ("Портал тормозит", "performance"),
        ("Оптимизируйте наш компонент, он тормозит", "code_optimisation"),
        ("MySQL eats all the CPU, tune my.cnf for us", "server_diagnostics"),
        ("ЁЛКИ, всё медленно", "performance"),
    ],
)
def test_hard_cases(classifier: ScopeClassifier, text: str, category: str) -> None:
    assert classifier.classify(text).category == category


def test_a_message_without_evidence_stays_with_a_human(classifier: ScopeClassifier) -> None:
    decision = classifier.classify("Добрый день!")
    assert (decision.category, decision.in_scope, decision.referred) == (UNCLASSIFIED, True, False)


def test_rules_are_plain_data_a_desk_can_supply() -> None:
    rules = {
        "min_score": 1,
        "category": [
            {"name": "custom_development", "in_scope": False, "patterns": [{"re": r"\bнапишите", "w": 2}]},
            {"name": "how_to", "in_scope": True, "patterns": [{"re": r"\bкак\b", "w": 1}]},
        ],
    }
    classifier = ScopeClassifier.from_mapping(rules)
    decision = classifier.classify("Напишите, как это сделать")
    assert (decision.category, decision.referred, decision.matched) == (
        "custom_development",
        True,
        (r"\bнапишите",),
    )
    with pytest.raises(ScopeRulesError):
        ScopeClassifier.from_mapping({"category": [{"name": "x", "in_scope": True, "patterns": [{"re": "("}]}]})
    with pytest.raises(ScopeRulesError):
        ScopeClassifier.from_mapping({"category": [{"name": UNCLASSIFIED, "in_scope": True, "patterns": []}]})


@given(st.text(max_size=300))
def test_any_text_gets_a_decision(text: str) -> None:
    decision = ScopeClassifier.default().classify(text)
    assert decision.category == UNCLASSIFIED or decision.score >= 1.0
