"""What the pages say, in Russian and English, as the desks do (pure). A key missing in one language is a
test failure (tests/dashboard/test_domain.py), never an English word on a Russian page."""

from __future__ import annotations

from collections.abc import Iterable

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "ticketflow",
        "lead_title": "Support desks",
        "signed_in_as": "Signed in as {name}",
        "agent": "agent {agent}",
        "sign_out": "Sign out",
        "sign_in": "Sign in",
        "token": "Access token",
        "token_hint": "The token you were given (tfq_...). It is kept in a cookie of this browser only.",
        "language": "Language",
        "desk": "Desk {desk}",
        "backlog": "Queues: backlog and age",
        "queue": "Queue",
        "priority": "Priority",
        "waiting": "Waiting",
        "unassigned": "Unassigned",
        "oldest": "Oldest",
        "age_buckets": "Under 1 h / 1-4 h / 4-24 h / 1-3 d / 3-7 d / over 7 d",
        "sla_board": "SLA: at risk and breached",
        "at_risk": "At risk (within {minutes} business minutes)",
        "breached": "Breached",
        "paused": "Paused",
        "ticket": "Ticket",
        "target": "Target",
        "assignee": "Assignee",
        "deadline": "Deadline",
        "time_left": "Time left",
        "overdue_by": "overdue by {duration}",
        "units": "d h min s",
        "agents": "Agent load",
        "status": "Status",
        "load": "Tickets / capacity",
        "recent": "Latest tickets",
        "trends": "The last 30 days",
        "chart_attainment": "SLA attainment, % of targets met without a breach, per day",
        "chart_first_response": "First response, 90th percentile, business minutes, per day",
        "chart_opened": "Tickets opened per day (referred, duplicate and refused ones not counted)",
        "day": "Day",
        "hour": "Hour",
        "backlog_per_queue": "Per queue",
        "queue_backlog_by_hour": "Queue {queue}: tickets waiting at the end of each hour",
        "not_routed": "not routed yet",
        "backlog_by_hour": "Backlog by hour (the last 48 hours)",
        "chart_backlog_by_hour": "Tickets waiting in the desk queues at the end of each hour (desk time)",
        "first_responses": "First response: distribution over the last {days} days",
        "chart_first_responses": "Tickets by time to the first reply, in business time (opened in the period)",
        "business_time": "Business time",
        "period": "Period",
        "days": "{days} days",
        "responses_counted": "Answered: {responded}; without a first reply yet: {waiting} (referred, duplicate and "
        "refused tickets not counted).",
        "value": "Value",
        "subject": "Subject",
        "opened": "Opened",
        "updated": "Updated",
        "none": "none",
        "nothing": "Nothing here.",
        "live": "Live: the page updates by itself.",
        "position": "Read models at position {position}",
        "conversation": "Conversation",
        "customer": "Customer",
        "agent_said": "Agent {agent}",
        "timeline": "Timeline",
        "event": "Event",
        "when": "When",
        "sla_clocks": "SLA clocks",
        "state": "State",
        "used": "Business time used",
        "deliveries": "Notifications to the customer",
        "channel": "Channel",
        "template": "Message",
        "attempts": "Attempts",
        "reason": "Reason",
        "preflight": "Preflight checks",
        "check": "Check",
        "result": "Result",
        "remediation": "What to do",
        "passed": "passed",
        "failed": "failed",
        "feature_request": "Feature request",
        "actions": "Actions",
        "act_reply": "Reply to the customer",
        "act_request_info": "Ask the customer for information (the SLA clock pauses)",
        "act_priority": "Change priority",
        "act_resolve": "Resolve",
        "act_reopen": "Reopen",
        "act_refer": "Refer to partners",
        "act_undo_merge": "Undo the automatic merge",
        "act_feature_outcome": "Feature request outcome",
        "send": "Send",
        "text": "Text",
        "outcome": "Outcome",
        "outcome_in_sprint": "taken into a sprint",
        "outcome_planned": "planned",
        "outcome_declined": "declined (give a reason)",
        "read_only": "This token reads this desk but does not act on it.",
        "back": "Back to the desks",
        "done": "Done: {action} (position {position}).",
        "pending": "Sent: {action}. Not applied yet after {seconds} s; the page will show it when it is.",
        "refused_by_ticket": "Not possible now: {reason}",
        "text_required": "Write the text first.",
        "text_too_long": "The text is too long (at most {limit} characters).",
        "bad_priority": "Choose a priority: {allowed}.",
        "bad_outcome": "Choose an outcome: {allowed}.",
        "bad_command_id": "The form is out of date: reload the page.",
        "not_from_page": "Actions are sent from the ticket page.",
        "unknown_action": "No such action: {action}.",
        "cannot_act": "This token does not act on desk {desk}: ask for an agent token.",
        "no_agent": "This token acts as no agent.",
        "token_missing": "Sign in with your access token.",
        "token_refused": "The token was refused: {reason}. Sign in again.",
        "not_found": "No such ticket in the desks this token reads.",
        "unavailable": "The data is unreachable right now ({reason}); try again in a moment.",
        "busy": "Could not send now ({reason}); nothing was sent, try again.",
    },
    "ru": {
        "title": "ticketflow",
        "lead_title": "Линии поддержки",
        "signed_in_as": "Вы вошли как {name}",
        "agent": "агент {agent}",
        "sign_out": "Выйти",
        "sign_in": "Войти",
        "token": "Токен доступа",
        "token_hint": "Выданный вам токен (tfq_...). Хранится только в cookie этого браузера.",
        "language": "Язык",
        "desk": "Линия {desk}",
        "backlog": "Очереди: ожидают и как долго",
        "queue": "Очередь",
        "priority": "Приоритет",
        "waiting": "Ожидают",
        "unassigned": "Без исполнителя",
        "oldest": "Самое старое",
        "age_buckets": "До 1 ч / 1-4 ч / 4-24 ч / 1-3 дн / 3-7 дн / более 7 дн",
        "sla_board": "SLA: под угрозой и нарушены",
        "at_risk": "Под угрозой (в ближайшие {minutes} рабочих минут)",
        "breached": "Нарушены",
        "paused": "На паузе",
        "ticket": "Обращение",
        "target": "Цель",
        "assignee": "Исполнитель",
        "deadline": "Срок",
        "time_left": "Осталось",
        "overdue_by": "просрочено на {duration}",
        "units": "дн ч мин с",
        "agents": "Загрузка агентов",
        "status": "Статус",
        "load": "Обращений / ёмкость",
        "recent": "Последние обращения",
        "trends": "Последние 30 дней",
        "chart_attainment": "Соблюдение SLA, % целей без нарушения, по дням",
        "chart_first_response": "Первый ответ, 90-й процентиль, рабочих минут, по дням",
        "chart_opened": "Открыто обращений в день (без переданных, дубликатов и отказов)",
        "day": "День",
        "hour": "Час",
        "backlog_per_queue": "По очередям",
        "queue_backlog_by_hour": "Очередь {queue}: ожидают на конец каждого часа",
        "not_routed": "ещё не распределены",
        "backlog_by_hour": "Очередь по часам (последние 48 часов)",
        "chart_backlog_by_hour": "Обращений в очередях линии на конец каждого часа (время линии)",
        "first_responses": "Первый ответ: распределение за последние {days} дн.",
        "chart_first_responses": "Обращения по времени до первого ответа, в рабочем времени (открытые за период)",
        "business_time": "Рабочее время",
        "period": "Период",
        "days": "{days} дн.",
        "responses_counted": "С ответом: {responded}; ещё без первого ответа: {waiting} (без переданных, дубликатов "
        "и отказов).",
        "value": "Значение",
        "subject": "Тема",
        "opened": "Открыто",
        "updated": "Изменено",
        "none": "нет",
        "nothing": "Пусто.",
        "live": "Страница обновляется сама.",
        "position": "Модели чтения на позиции {position}",
        "conversation": "Переписка",
        "customer": "Клиент",
        "agent_said": "Агент {agent}",
        "timeline": "История событий",
        "event": "Событие",
        "when": "Когда",
        "sla_clocks": "Часы SLA",
        "state": "Состояние",
        "used": "Израсходовано рабочего времени",
        "deliveries": "Уведомления клиенту",
        "channel": "Канал",
        "template": "Сообщение",
        "attempts": "Попыток",
        "reason": "Причина",
        "preflight": "Предварительные проверки",
        "check": "Проверка",
        "result": "Результат",
        "remediation": "Что сделать",
        "passed": "пройдена",
        "failed": "не пройдена",
        "feature_request": "Запрос на доработку",
        "actions": "Действия",
        "act_reply": "Ответить клиенту",
        "act_request_info": "Запросить информацию у клиента (часы SLA на паузе)",
        "act_priority": "Изменить приоритет",
        "act_resolve": "Решено",
        "act_reopen": "Открыть снова",
        "act_refer": "Передать партнёрам",
        "act_undo_merge": "Отменить автоматическое объединение",
        "act_feature_outcome": "Решение по запросу на доработку",
        "send": "Отправить",
        "text": "Текст",
        "outcome": "Решение",
        "outcome_in_sprint": "взято в спринт",
        "outcome_planned": "запланировано",
        "outcome_declined": "отклонено (укажите причину)",
        "read_only": "Этот токен видит линию, но не действует на ней.",
        "back": "К линиям",
        "done": "Готово: {action} (позиция {position}).",
        "pending": "Отправлено: {action}. За {seconds} с ещё не применено; страница покажет, когда применится.",
        "refused_by_ticket": "Сейчас нельзя: {reason}",
        "text_required": "Сначала напишите текст.",
        "text_too_long": "Текст слишком длинный (не более {limit} символов).",
        "bad_priority": "Выберите приоритет: {allowed}.",
        "bad_outcome": "Выберите решение: {allowed}.",
        "bad_command_id": "Форма устарела: обновите страницу.",
        "not_from_page": "Действия отправляются со страницы обращения.",
        "unknown_action": "Нет такого действия: {action}.",
        "cannot_act": "Этот токен не действует на линии {desk}: нужен токен агента.",
        "no_agent": "Этот токен не принадлежит агенту.",
        "token_missing": "Войдите со своим токеном доступа.",
        "token_refused": "Токен отклонён: {reason}. Войдите снова.",
        "not_found": "Нет такого обращения на линиях этого токена.",
        "unavailable": "Данные сейчас недоступны ({reason}); попробуйте чуть позже.",
        "busy": "Не удалось отправить ({reason}); ничего не отправлено, попробуйте снова.",
    },
}


# What the system calls a status, a priority, an SLA target: shown in the page's language (the name stays
# in a data- attribute for scripts and tests).
NAMES: dict[str, dict[str, str]] = {
    "en": {
        "opened": "opened", "awaiting_customer": "waiting for the customer's fix", "refused": "refused",
        "referred": "referred to partners", "ready": "ready", "routed": "in a queue", "assigned": "assigned",
        "in_progress": "in progress", "waiting_on_customer": "waiting on the customer", "resolved": "resolved",
        "closed": "closed", "merged": "merged", "urgent": "urgent", "high": "high", "normal": "normal", "low": "low",
        "first_response": "first response", "next_response": "next response", "resolution": "resolution",
        "running": "running", "paused": "paused", "met": "met", "cancelled": "cancelled",
        "in_sprint": "taken into a sprint", "planned": "planned", "declined": "declined",
        "delivered": "delivered", "failed": "failed", "unknown": "unknown: check the chat",
    },
    "ru": {
        "opened": "открыто", "awaiting_customer": "ждёт исправления у клиента", "refused": "отказано",
        "referred": "передано партнёрам", "ready": "готово", "routed": "в очереди", "assigned": "назначено",
        "in_progress": "в работе", "waiting_on_customer": "ждёт ответа клиента", "resolved": "решено",
        "closed": "закрыто", "merged": "объединено", "urgent": "срочный", "high": "высокий", "normal": "обычный",
        "low": "низкий", "first_response": "первый ответ", "next_response": "следующий ответ",
        "resolution": "решение", "running": "идут", "paused": "на паузе", "met": "выполнено",
        "cancelled": "отменено", "in_sprint": "взято в спринт", "planned": "запланировано", "declined": "отклонено",
        "delivered": "доставлено", "failed": "не доставлено", "unknown": "неизвестно: проверьте чат",
    },
}  # fmt: skip


# The timeline's events (their names in the contracts: `ticketflow.contracts.*_events`).
EVENTS: dict[str, dict[str, str]] = {
    "en": {
        "TicketOpened": "Ticket opened", "CustomerMessageAdded": "Customer wrote",
        "PreflightPassed": "Preflight checks passed", "PreflightFailed": "Preflight checks failed",
        "TicketRefused": "Request refused", "TicketReferred": "Referred to partners",
        "DuplicateSuspected": "Merged automatically as a duplicate", "DuplicateSuggested": "Possible duplicate found",
        "KnownProblemLinked": "Linked to a known problem", "MergeUndone": "Merge undone",
        "TicketRouted": "Put in a queue", "TicketAssigned": "Assigned", "TicketUnassigned": "Unassigned",
        "WorkStarted": "Work started", "AgentReplied": "Agent replied", "WaitingOnCustomer": "Waiting on the customer",
        "TicketResolved": "Resolved", "TicketReopened": "Reopened", "TicketClosed": "Closed",
        "TicketMerged": "Merged into another ticket", "PriorityChanged": "Priority changed",
        "FeatureRequestOutcomeSet": "Feature request outcome set",
        "SlaClockStarted": "SLA clock started", "SlaClockPaused": "SLA clock paused",
        "SlaClockResumed": "SLA clock resumed", "SlaClockCancelled": "SLA clock cancelled",
        "SlaRecalculated": "SLA deadline recalculated", "SlaWarning": "SLA warning", "SlaBreached": "SLA breached",
        "SlaMet": "SLA met",
        "NotificationDelivered": "Notification delivered", "NotificationFailed": "Notification failed",
        "NotificationOutcomeUnknown": "Notification outcome unknown",
    },
    "ru": {
        "TicketOpened": "Обращение открыто", "CustomerMessageAdded": "Клиент написал",
        "PreflightPassed": "Предварительные проверки пройдены",
        "PreflightFailed": "Предварительные проверки не пройдены", "TicketRefused": "В обращении отказано",
        "TicketReferred": "Передано партнёрам", "DuplicateSuspected": "Объединено автоматически как дубликат",
        "DuplicateSuggested": "Найден возможный дубликат", "KnownProblemLinked": "Связано с известной проблемой",
        "MergeUndone": "Объединение отменено", "TicketRouted": "Поставлено в очередь", "TicketAssigned": "Назначено",
        "TicketUnassigned": "Снято с исполнителя", "WorkStarted": "Работа начата", "AgentReplied": "Агент ответил",
        "WaitingOnCustomer": "Ждёт ответа клиента", "TicketResolved": "Решено", "TicketReopened": "Открыто снова",
        "TicketClosed": "Закрыто", "TicketMerged": "Объединено с другим обращением",
        "PriorityChanged": "Приоритет изменён", "FeatureRequestOutcomeSet": "Принято решение по запросу на доработку",
        "SlaClockStarted": "Часы SLA запущены", "SlaClockPaused": "Часы SLA на паузе",
        "SlaClockResumed": "Часы SLA снова идут", "SlaClockCancelled": "Часы SLA отменены",
        "SlaRecalculated": "Срок SLA пересчитан", "SlaWarning": "Предупреждение SLA", "SlaBreached": "SLA нарушен",
        "SlaMet": "SLA соблюдён",
        "NotificationDelivered": "Уведомление доставлено", "NotificationFailed": "Уведомление не доставлено",
        "NotificationOutcomeUnknown": "Неизвестно, доставлено ли уведомление",
    },
}  # fmt: skip

# Preflight's checks (their names in PreflightPassed/PreflightFailed: the portal's prerequisites, scope,
# a feature request's completeness).
CHECKS: dict[str, dict[str, str]] = {
    "en": {
        "public_address": "The portal's public address", "https_reachable": "Reachable over HTTPS from outside",
        "tls_certificate": "A valid SSL certificate, not self-signed", "pub_readable": "/pub/ readable by anyone",
        "json_answer": "The server answers in JSON", "license": "An active license, not a demo",
        "updates": "Every stable update installed", "scope": "In support's scope",
        "feature_request_incomplete": "The feature request says what, where, how often and how important",
    },
    "ru": {
        "public_address": "Публичный адрес портала", "https_reachable": "Доступен снаружи по HTTPS",
        "tls_certificate": "Действующий SSL-сертификат, не самоподписанный",
        "pub_readable": "/pub/ доступна анонимным пользователям", "json_answer": "Сервер отвечает в JSON",
        "license": "Лицензия активна, не демо", "updates": "Установлены все стабильные обновления",
        "scope": "Входит в зону поддержки",
        "feature_request_incomplete": "В запросе на доработку указано что, где, как часто и насколько важно",
    },
}  # fmt: skip


def event_name(lang: str, event_type: str) -> str:
    """A timeline event in the page's language (an unknown one as the system names it)."""
    return EVENTS.get(lang, EVENTS["en"]).get(event_type, event_type)


def check_name(lang: str, check: str) -> str:
    """A preflight check in the page's language (an unknown one as the system names it)."""
    return CHECKS.get(lang, CHECKS["en"]).get(check, check)


def name(lang: str, value: str | None) -> str:
    """A status, priority, target or outcome in the page's language (an unknown one as it is)."""
    if value is None:
        return "—"
    return NAMES.get(lang, NAMES["en"]).get(value, value)


def language(asked: str | None, accept_language: str | None = None) -> str:
    """The page's language: the one asked for (a link, the cookie), else the browser's first known one."""
    if asked in LANGUAGES:
        return asked  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def text(lang: str, key: str, **values: object) -> str:
    template = TEXTS[lang].get(key) or TEXTS["en"][key]
    return template.format(**values) if values else template


def missing(languages: Iterable[str] = LANGUAGES) -> dict[str, set[str]]:
    """Keys some language lacks, per language."""
    tables = (TEXTS, NAMES, EVENTS, CHECKS)
    every = set().union(*(table[lang] for table in tables for lang in languages))
    known = {lang: set().union(*(table[lang] for table in tables)) for lang in languages}
    return {lang: every - known[lang] for lang in languages if every - known[lang]}
