"""Every template renders in every locale; a missing variable is an error, never a gap."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.notifications.adapters.rendering import RenderError, TemplateCatalog, locale_chain

CHECKS = [
    {"title": "SSL", "remediation": "install a valid certificate"},
    {"title": "/pub/", "remediation": "allow anonymous read access"},
]
SLA = {"ticket_number": "B24-1042", "ticket_title": "Portal is slow", "target": "first_response"}
WARNING = {**SLA, "due_at": "2026-11-23 12:00 MSK", "remaining": "30 min"}
BREACH = {**SLA, "due_at": "2026-11-23 12:00 MSK", "overdue": "15 min"}
SAMPLES: dict[str, dict[str, Any]] = {
    "ticket_opened": {
        "ticket_number": "B24-1042",
        "ticket_title": "Portal is slow",
        "outside_hours": True,
        "support_hours": "Mon-Fri 10:00-19:00 MSK",
        "clock_starts_at": "Mon 23 Nov 10:00 MSK",
    },
    "preflight_failed": {"portal_url": "https://b24.example.ru", "checks": CHECKS},
    "ticket_referred": {
        "ticket_number": "B24-1042",
        "reason": "custom development",
    },
    "duplicate_found": {"ticket_number": "B24-1043", "duplicate_of": "B24-1042", "duplicate_title": "Slow"},
    "duplicate_merged": {"ticket_number": "B24-1043"},
    "known_problem": {"ticket_number": "B24-1043"},
    "ticket_assigned": {"ticket_number": "B24-1042", "agent_name": "Anna"},
    "assigned_to_you": {
        "ticket_number": "B24-1042",
        "ticket_title": "Portal is slow",
        "priority": "high",
        "due_at": "12:00",
    },
    "agent_reply": {"ticket_number": "B24-1042", "agent_name": "Anna", "message": "Please clear the cache."},
    "waiting_on_you": {"ticket_number": "B24-1042", "question": "Which version is installed?"},
    "sla_warning_agent": WARNING,
    "sla_warning_lead": {**WARNING, "agent_name": "Anna"},
    "sla_warning_oncall": {**WARNING, "agent_name": "Anna"},
    "sla_breach_agent": BREACH,
    "sla_breach_lead": {**BREACH, "agent_name": "Anna"},
    "sla_breach_oncall": {**BREACH, "agent_name": "Anna"},
    "ticket_resolved": {"ticket_number": "B24-1042", "resolution": "cache cleared"},
    "ticket_reopened": {"ticket_number": "B24-1042", "reason": "the problem came back"},
    "feature_outcome": {
        "ticket_number": "TF-1A2B3C4D",
        "ticket_title": "Dark theme on desktop",
        "outcome": "declined",
        "reason": "not on this year's roadmap",
    },
    "chat_reply": {"body": "Ваше обращение TF-1 в работе."},
    "ticket_refused": {"reason": "Support chat is available to portal administrators only."},
    "ticket_unassigned": {
        "ticket_number": "B24-1042",
        "ticket_title": "Portal is slow",
        "agent_name": "Anna",
        "reason": "no answer within 30 min",
    },
}


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.from_directory()


def test_every_locale_has_the_same_templates_and_every_template_a_sample(catalog: TemplateCatalog) -> None:
    assert catalog.locales == {"en", "ru"}
    assert catalog.templates("ru") == catalog.templates("en") == set(SAMPLES)


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_every_template_renders_in_every_locale(catalog: TemplateCatalog, template: str, locale: str) -> None:
    rendered = catalog.render(template, locale, SAMPLES[template])
    assert rendered.locale == locale
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.body.strip()
    assert "{{" not in rendered.body and "{%" not in rendered.body
    for value in SAMPLES[template].values():
        if isinstance(value, str) and template.startswith(("agent_reply", "waiting_on_you")):
            assert value in rendered.body


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_every_variable_is_required(catalog: TemplateCatalog, template: str, locale: str) -> None:
    """Dropping any one variable fails loudly, except those only used in a branch not taken."""
    branch_only = {("ticket_opened", "support_hours"), ("ticket_opened", "clock_starts_at")}
    sample = SAMPLES[template]
    for name in sample:
        partial = {k: v for k, v in sample.items() if k != name}
        with pytest.raises(RenderError, match=f"'{name}' is undefined"):
            catalog.render(template, locale, partial)
        if (template, name) in branch_only:
            catalog.render(template, locale, {**partial, "outside_hours": False})


def test_missing_nested_variable_fails(catalog: TemplateCatalog) -> None:
    with pytest.raises(RenderError, match="remediation"):
        catalog.render("preflight_failed", "en", {"portal_url": "x", "checks": [{"title": "SSL"}]})


def test_wrong_shape_variable_fails_as_render_error(catalog: TemplateCatalog) -> None:
    with pytest.raises(RenderError):
        catalog.render("preflight_failed", "en", {"portal_url": "x", "checks": 5})


def test_unknown_template_fails(catalog: TemplateCatalog) -> None:
    with pytest.raises(RenderError, match="unknown template"):
        catalog.render("no_such_template", "ru", {})


@pytest.mark.parametrize(
    ("requested", "used"), [("ru-RU", "ru"), ("en_GB", "en"), ("EN", "en"), ("de", "ru"), (None, "ru"), ("", "ru")]
)
def test_locale_fallback(catalog: TemplateCatalog, requested: str | None, used: str) -> None:
    assert catalog.render("ticket_reopened", requested, SAMPLES["ticket_reopened"]).locale == used


def test_russian_text_is_russian(catalog: TemplateCatalog) -> None:
    body = catalog.render("ticket_opened", "ru", SAMPLES["ticket_opened"]).body
    assert "нерабочее время" in body and "Mon 23 Nov 10:00 MSK" in body
    inside = catalog.render("ticket_opened", "ru", {**SAMPLES["ticket_opened"], "outside_hours": False}).body
    assert "нерабочее" not in inside


@given(st.text(min_size=0, max_size=12))
def test_locale_chain_always_ends_with_the_default(tag: str) -> None:
    chain = locale_chain(tag)
    assert chain[-1] == "ru" and len(chain) == len(set(chain))


SHARED_CATALOG = TemplateCatalog.from_directory()


@given(st.text(max_size=200))
def test_user_text_is_inserted_verbatim_never_evaluated(text: str) -> None:
    body = SHARED_CATALOG.render("agent_reply", "en", {"ticket_number": "1", "agent_name": "A", "message": text}).body
    assert text.strip() in body


# -- SLA wording: the target by name, a sensible overdue text ------------------------------------

SLA_TEMPLATES = sorted(name for name in SAMPLES if name.startswith("sla_"))
TARGET_NAMES = {
    "en": {"first_response": "first response", "next_response": "next response", "resolution": "resolution"},
    "ru": {"first_response": "первого ответа", "next_response": "следующего ответа", "resolution": "решения"},
}


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("target", ["first_response", "next_response", "resolution"])
@pytest.mark.parametrize("template", SLA_TEMPLATES)
def test_sla_templates_name_their_own_target(catalog: TemplateCatalog, template: str, target: str, locale: str) -> None:
    body = catalog.render(template, locale, {**SAMPLES[template], "target": target}).body
    names = TARGET_NAMES[locale]
    assert names[target] in body
    assert [other for key, other in names.items() if key != target and other in body] == []


def test_an_unknown_sla_target_is_a_render_error_not_a_wrong_word(catalog: TemplateCatalog) -> None:
    with pytest.raises(RenderError):
        catalog.render("sla_breach_agent", "en", {**SAMPLES["sla_breach_agent"], "target": "lunch"})


OVERDUE_PHRASE = {"en": "overdue by 1 h 5 min", "ru": "просрочка 1 ч 5 мин"}


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("template", [name for name in SLA_TEMPLATES if "breach" in name])
def test_a_breach_says_how_late_and_nothing_when_under_a_minute(
    catalog: TemplateCatalog, template: str, locale: str
) -> None:
    late = {**SAMPLES[template], "overdue": "1 ч 5 мин" if locale == "ru" else "1 h 5 min"}
    assert OVERDUE_PHRASE[locale] in catalog.render(template, locale, late).body
    on_time = catalog.render(template, locale, {**SAMPLES[template], "overdue": ""}).body.strip()
    assert "overdue" not in on_time and "просрочка" not in on_time
    assert " 0 " not in on_time and not on_time.endswith((",", ";", "by.", " .")), on_time
    assert on_time.endswith(".")
