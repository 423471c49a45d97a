"""What the bot says to a requester: the self-help steps and the words for a ticket's status. Pure."""

from __future__ import annotations

from ticketflow.contracts.ids import ticket_number
from ticketflow.lifecycle import Status, TicketState

# The eXpress seed's self-help steps, offered before filing (the ticket is filed anyway).
SELF_HELP_HINTS: dict[str, tuple[str, ...]] = {
    "ru": (
        "Обновите приложение eXpress до последней версии",
        "Проверьте подключение к сети",
        "Отключите VPN и прокси",
        "Перезапустите (перезагрузите) приложение",
        "Выйдите из учётной записи и войдите снова",
        "Очистите кэш приложения",
    ),
    "en": (
        "Update the eXpress app to the latest version",
        "Check your network connection",
        "Disable VPN and proxy",
        "Restart (reload) the app",
        "Log out and log in again",
        "Clear the app cache",
    ),
}
_HINTS_INTRO = {
    "ru": "Пока мы регистрируем обращение, попробуйте, пожалуйста:",
    "en": "While we file your request, please try:",
}

# What `/status` says about each status, (ru, en): words for the requester, not the enum's values.
STATUS_WORDS: dict[Status, tuple[str, str]] = {
    Status.NEW: ("регистрируется", "being registered"),
    Status.OPENED: ("зарегистрировано, идёт проверка", "registered, being checked"),
    Status.AWAITING_CUSTOMER: ("ждёт от вас исправлений (см. инструкцию выше)", "waiting for your fixes (see above)"),
    Status.REFUSED: ("отклонено", "declined"),
    Status.REFERRED: ("передано партнёрам", "referred to partners"),
    Status.READY: ("ждёт распределения", "waiting to be routed"),
    Status.ROUTED: ("в очереди, ждёт специалиста", "in the queue, waiting for an agent"),
    Status.ASSIGNED: ("назначено специалисту", "assigned to an agent"),
    Status.IN_PROGRESS: ("в работе у специалиста", "being worked on by an agent"),
    Status.WAITING_ON_CUSTOMER: ("ждёт вашего ответа", "waiting for your answer"),
    Status.RESOLVED: ("решено", "resolved"),
    Status.CLOSED: ("закрыто", "closed"),
    Status.MERGED: ("объединено с другим обращением", "merged into another ticket"),
}


def self_help_text(locale: str) -> str:
    lang = "ru" if locale.lower().startswith("ru") else "en"
    steps = "\n".join(f"{n}. {step}" for n, step in enumerate(SELF_HELP_HINTS[lang], start=1))
    return f"{_HINTS_INTRO[lang]}\n{steps}"


def status_text(state: TicketState | None, locale: str) -> str:
    ru = locale.lower().startswith("ru")
    if state is None or state.ticket_id is None:
        return "Открытых обращений нет." if ru else "You have no open ticket."
    number, words = ticket_number(state.ticket_id), STATUS_WORDS[state.status]
    return f"Обращение {number}: {words[0]}." if ru else f"Ticket {number}: {words[1]}."
