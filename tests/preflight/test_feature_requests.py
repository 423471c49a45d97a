"""eXpress feature requests: what and where, platform, how often asked, importance (seed: "Что указать в запросе")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketflow.preflight.domain.feature_requests import Part, assess_feature_request, follow_up_questions

COMPLETE_RU = (
    "Хотим добавить возможность закреплять сообщения в разделе «Каналы» в мобильном приложении на Android и iOS. "
    "Об этом просят постоянно, уже 40 обращений за месяц. Для нас это важно."
)
COMPLETE_EN = (
    "Please add an option to pin messages in the channels section of the desktop app for Windows. "
    "Users ask for it every week, about 30 requests so far. High priority for us."
)


@pytest.mark.parametrize("text", [COMPLETE_RU, COMPLETE_EN])
def test_a_complete_request_needs_no_follow_up(text: str) -> None:
    assessment = assess_feature_request(text)
    assert assessment.complete, assessment.missing
    assert follow_up_questions(assessment, "ru") == [] == follow_up_questions(assessment, "en")


def test_platforms_and_importance_are_read_out() -> None:
    ru, en = assess_feature_request(COMPLETE_RU), assess_feature_request(COMPLETE_EN)
    assert (ru.platforms, ru.importance) == (frozenset({"mobile"}), "medium")
    assert (en.platforms, en.importance) == (frozenset({"desktop"}), "high")
    assert assess_feature_request("Нужно во всех платформах, не срочно").platforms == {"web", "mobile", "desktop"}
    assert assess_feature_request("Нужно во всех платформах, не срочно").importance == "low"
    assert assess_feature_request("critical: the web client needs it").platforms == {"web"}


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        # Russian
        ("Добавьте тёмную тему", [Part.WHERE, Part.PLATFORM, Part.FREQUENCY, Part.IMPORTANCE]),
        (
            "Хотим добавить кнопку «ответить всем» в чатах. Просят многие пользователи, это важно.",
            [Part.PLATFORM],
        ),
        ("В веб-версии в настройках нужна возможность менять шрифт. Критично.", [Part.FREQUENCY]),
        (
            "Нужна возможность сортировать контакты в разделе «Контакты» на десктопе, спрашивают часто.",
            [Part.IMPORTANCE],
        ),
        ("Мобильное приложение, раздел звонков, часто спрашивают, очень важно", [Part.WHAT]),
        # English
        ("Add a dark theme", [Part.WHERE, Part.PLATFORM, Part.FREQUENCY, Part.IMPORTANCE]),
        ("We need read receipts in the chat on iOS. Many users want it.", [Part.IMPORTANCE]),
        ("Please allow editing sent messages in channels. Urgent, 50 users asked.", [Part.PLATFORM]),
        ("Mobile app, calls screen, users ask daily, nice to have", [Part.WHAT]),
        ("Hello, I have a question", list(Part)),
    ],
)
def test_missing_parts_are_found(text: str, missing: list[Part]) -> None:
    assert list(assess_feature_request(text).missing) == missing


def test_follow_up_questions_ask_for_each_missing_part_in_the_users_language() -> None:
    assessment = assess_feature_request("Добавьте тёмную тему")
    ru, en = follow_up_questions(assessment, "ru-RU"), follow_up_questions(assessment, "en")
    assert len(ru) == len(en) == 4
    assert any("платформ" in q for q in ru) and any("platform" in q for q in en)
    assert any("часто" in q for q in ru) and any("often" in q for q in en)
    assert any("важна" in q for q in ru) and any("important" in q for q in en)
    assert any("раздел" in q for q in ru) and any("part of the app" in q for q in en)


@given(st.text(max_size=400))
def test_any_text_is_assessed_consistently(text: str) -> None:
    assessment = assess_feature_request(text)
    assert set(assessment.missing) | assessment.present == set(Part)
    assert not set(assessment.missing) & assessment.present
    assert len(follow_up_questions(assessment, "en")) == len(assessment.missing)
    assert assessment.platforms <= {"web", "mobile", "desktop"}
