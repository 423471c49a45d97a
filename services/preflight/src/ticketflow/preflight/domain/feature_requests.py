"""Is an eXpress feature request complete enough to forward? (seed: express-support-faq.txt, "Что указать
в запросе"): what to change and where, the client platform, how often users ask, and the importance.

`assess_feature_request` finds which parts a message (ru/en) already gives; `follow_up_questions` asks for
the rest in the requester's language. Pure functions; the patterns are plain data below.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Part(enum.StrEnum):
    WHAT = "what"  # what to change or add
    WHERE = "where"  # in which part of the app
    PLATFORM = "platform"  # web, mobile, desktop
    FREQUENCY = "frequency"  # how often users ask for it
    IMPORTANCE = "importance"  # the requester's estimate of importance or priority


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives))


_PART_PATTERNS: dict[Part, re.Pattern[str]] = {
    Part.WHAT: _rx(
        r"\bдобав",
        r"\bизмен",
        r"\bсдела(ть|йте)",
        r"\bнуж(ен|на|но|ны)\b",
        r"\bхоти?м\b",
        r"хотелось бы",
        r"\bпредлага",
        r"\bвозможност",
        r"чтобы (можно|было|был|была)",
        r"\bпоказыва",
        r"\bразреш",
        r"\bубра",
        r"\badd\b",
        r"\bchange\b",
        r"\ballow",
        r"would like",
        r"\bwant\b",
        r"\bneed\b",
        r"\bplease make\b",
        r"support for",
        r"ability to",
        r"\boption to\b",
        r"\bshow\b",
        r"\bremove\b",
        r"\blet users\b",
    ),
    Part.WHERE: _rx(
        r"\bв (разделе|чате|чатах|канале|каналах|настройках|профиле|списке|окне|меню|карточке|ленте|поиске"
        r"|звонк\w*|конференци\w*|календаре|контактах|уведомлени\w*|смартапп\w*|боте|сообщени\w*)",
        r"\bна (экране|вкладке|панели|странице)",
        r"\bэкран",
        r"\bвкладк",
        r"\bкнопк",
        r"\bin (the )?(chat|chats|channel|channels|settings|profile|contact list|contacts|menu|call|calls|"
        r"conference|feed|search|notifications?|section|tab|message|messages|smartapps?|calendar|sidebar)\b",
        r"\bраздел",
        r"\b(чат|канал|звонк|контакт|настройк|профил|смартапп|календар|конференц|уведомлен)",
        r"\b(chats?|channels?|calls?|contacts?|settings|profile|smartapps?|calendar|conferences?|notifications?)\b",
        r"\bscreen\b",
        r"\btab\b",
        r"\bbutton\b",
        r"\bsection\b",
    ),
    Part.PLATFORM: _rx(
        r"\bweb\b",
        r"\bвеб",
        r"браузер",
        r"browser",
        r"mobile",
        r"мобильн",
        r"\bios\b",
        r"android",
        r"iphone",
        r"ipad",
        r"desktop",
        r"десктоп",
        r"windows",
        r"macos",
        r"\bmac\b",
        r"linux",
        r"телефон",
        r"\bphone",
        r"компьютер",
        r"\bпк\b",
        r"\bpc\b",
        r"все(х)? платформ",
        r"all platforms",
        r"везде",
        r"everywhere",
    ),
    Part.FREQUENCY: _rx(
        r"\bчасто",
        r"постоянно",
        r"регулярно",
        r"кажд\w* (день|неделю|раз)",
        r"ежедневно",
        r"еженедельно",
        r"\bмноги[ех]",
        r"большинств",
        r"\bвсе пользовател",
        r"\d+\s*(пользовател|сотрудник|обращени|запрос|"
        r"человек|раз)",
        r"несколько (раз|пользовател|обращени)",
        r"\bредко",
        r"раз в (день|неделю|месяц)",
        r"\boften\b",
        r"frequently",
        r"every (day|week|month)",
        r"\bdaily\b",
        r"\bweekly\b",
        r"many (users|people)",
        r"most (users|of our)",
        r"\d+\s*(users|people|requests|times|employees|tickets)",
        r"\brarely\b",
        r"once a (day|week|month)",
        r"all (our )?users",
        r"keep asking",
        r"постоянно (спрашивают|просят)",
    ),
    Part.IMPORTANCE: _rx(
        r"\bважн",
        r"критичн",
        r"приоритет",
        r"срочн",
        r"блокир",
        r"желательно",
        r"не горит",
        r"\bimportant",
        r"critical",
        r"priority",
        r"urgent",
        r"blocker",
        r"blocking",
        r"nice to have",
        r"must have",
        r"can wait",
        r"could wait",
    ),
}

_IMPORTANCE_LEVELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "low",
        _rx(
            r"не (очень |особо )?(важн|срочн|критичн)",
            r"низк\w* приоритет",
            r"не горит",
            r"желательно",
            r"nice to have",
            r"can wait",
            r"could wait",
            r"low priority",
            r"not (very )?(urgent|important)",
        ),
    ),
    (
        "high",
        _rx(
            r"критичн",
            r"срочн",
            r"блокир",
            r"очень важн",
            r"высок\w* приоритет",
            r"critical",
            r"urgent",
            r"blocker",
            r"blocking",
            r"very important",
            r"high priority",
            r"must have",
        ),
    ),
    ("medium", _rx(r"\bважн", r"средн\w* приоритет", r"important", r"medium priority", r"normal priority")),
)

_PLATFORMS: dict[str, re.Pattern[str]] = {
    "web": _rx(r"\bweb\b", r"\bвеб", r"браузер", r"browser"),
    "mobile": _rx(r"mobile", r"мобильн", r"\bios\b", r"android", r"iphone", r"ipad", r"телефон", r"\bphone"),
    "desktop": _rx(
        r"desktop", r"десктоп", r"windows", r"macos", r"\bmac\b", r"linux", r"компьютер", r"\bпк\b", r"\bpc\b"
    ),
}
_ALL_PLATFORMS = _rx(r"все(х)? платформ", r"all platforms", r"везде", r"everywhere")

_QUESTIONS: dict[Part, tuple[str, str]] = {
    Part.WHAT: (
        "Что именно нужно изменить или добавить и в каких условиях это будет использоваться?",
        "What exactly should be changed or added, and in what situation will it be used?",
    ),
    Part.WHERE: (
        "В каком разделе приложения нужно изменение (чаты, каналы, звонки, контакты, настройки, SmartApps...)?",
        "In which part of the app is the change needed (chats, channels, calls, contacts, settings, SmartApps...)?",
    ),
    Part.PLATFORM: (
        "К какой клиентской платформе относится запрос: веб, мобильное приложение (iOS/Android) или десктоп?",
        "Which client platform is this for: web, the mobile app (iOS/Android) or desktop?",
    ),
    Part.FREQUENCY: (
        "Насколько часто пользователи просят эту функцию (например, сколько обращений или пользователей)?",
        "How often do users ask for this feature (for example, how many requests or users)?",
    ),
    Part.IMPORTANCE: (
        "Насколько функция важна для вас: критично, важно или желательно?",
        "How important is the feature to you: critical, important, or nice to have?",
    ),
}


@dataclass(frozen=True)
class FeatureRequestAssessment:
    present: frozenset[Part]
    missing: tuple[Part, ...]  # in the seed's order
    platforms: frozenset[str]  # subset of {"web", "mobile", "desktop"}
    importance: str | None  # "high", "medium", "low" when the message says

    @property
    def complete(self) -> bool:
        return not self.missing


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def assess_feature_request(text: str) -> FeatureRequestAssessment:
    normal = _normalise(text)
    present = frozenset(part for part, pattern in _PART_PATTERNS.items() if pattern.search(normal))
    if _ALL_PLATFORMS.search(normal):
        platforms = frozenset(_PLATFORMS)
    else:
        platforms = frozenset(name for name, pattern in _PLATFORMS.items() if pattern.search(normal))
    importance = next((level for level, pattern in _IMPORTANCE_LEVELS if pattern.search(normal)), None)
    return FeatureRequestAssessment(
        present=present,
        missing=tuple(part for part in Part if part not in present),
        platforms=platforms,
        importance=importance,
    )


def follow_up_questions(assessment: FeatureRequestAssessment, language: str) -> list[str]:
    """One question per missing part, in Russian for "ru*" and English otherwise."""
    index = 0 if language.lower().startswith("ru") else 1
    return [_QUESTIONS[part][index] for part in assessment.missing]
