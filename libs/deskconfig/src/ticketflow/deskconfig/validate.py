"""Checks a decoded desk for what types cannot say: hours, time zones, references between sections."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketflow.calendar import (
    BusinessCalendar,
    CalendarError,
    check_no_overlap,
    parse_interval,
    supported_holiday_countries,
)
from ticketflow.deskconfig.locate import Path
from ticketflow.deskconfig.model import PRIORITIES, CalendarConfig, Desk

Finding = tuple[Path, str]
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_STAFF_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # ids of the notifications staff directory ("lead-boris")


def validate_desk(desk: Desk) -> list[Finding]:
    findings: list[Finding] = []
    if not _zone_exists(desk.timezone):
        findings.append((("timezone",), f"unknown time zone {desk.timezone!r}"))
    if desk.default_locale not in desk.languages:
        findings.append((("default_locale",), f"{desk.default_locale!r} is not one of languages"))
    for section, items in (
        ("calendars", desk.calendars),
        ("tracks", desk.tracks),
        ("queues", desk.queues),
        ("routing.rules", desk.routing.rules),
        ("preflight.scope", desk.preflight.scope),
        ("referrals", desk.referrals),
    ):
        findings += _unique_ids(tuple(section.split(".")), [item.id for item in items])
    for index, calendar in enumerate(desk.calendars):
        findings += _check_calendar(("calendars", index), calendar, desk.timezone)
    findings += _check_tenants(desk)
    findings += _check_tracks(desk)
    findings += _check_sla(desk)
    findings += _check_queues_and_routing(desk)
    for index, locale in enumerate(desk.notifications.locales):
        if locale not in desk.languages:
            findings.append((("notifications", "locales", index), f"locale {locale!r} is not one of languages"))
    if desk.preflight.timeout_seconds <= 0:
        findings.append((("preflight", "timeout_seconds"), "must be positive"))
    findings += _check_referrals(desk)
    return findings


def _check_referrals(desk: Desk) -> list[Finding]:
    """An out-of-scope category names a declared referral and says what it is in both languages."""
    referrals = {r.id for r in desk.referrals}
    findings: list[Finding] = []
    for index, category in enumerate(desk.preflight.scope):
        path = ("preflight", "scope", index)
        if category.in_scope:
            continue
        if category.refer_to is None:
            findings.append(((*path, "in_scope"), "an out-of-scope category needs refer_to"))
        elif category.refer_to not in referrals:
            findings.append(((*path, "refer_to"), f"{category.refer_to!r} is not one of [[referrals]]"))
        if not (category.title_ru and category.title_en):
            findings.append(((*path, "in_scope"), "an out-of-scope category needs title_ru and title_en"))
    for index, referral in enumerate(desk.referrals):
        if referral.url is not None and not referral.url.startswith(("https://", "http://")):
            findings.append((("referrals", index, "url"), f"{referral.url!r} is not an http(s) address"))
    return findings


def _unique_ids(path: Path, ids: Sequence[str]) -> list[Finding]:
    counts = Counter(ids)
    return [((*path, index), f"id {item!r} repeats") for index, item in enumerate(ids) if counts[item] > 1]


def _check_calendar(path: Path, calendar: CalendarConfig, desk_timezone: str) -> list[Finding]:
    findings: list[Finding] = []
    if calendar.timezone is not None and not _zone_exists(calendar.timezone):
        findings.append(((*path, "timezone"), f"unknown time zone {calendar.timezone!r}"))
    day_lists: list[tuple[Path, tuple[str, ...]]] = [
        ((*path, "weekly", day), hours) for day, hours in calendar.weekly.as_mapping().items()
    ]
    day_lists.append(((*path, "holiday_hours"), calendar.holiday_hours))
    if calendar.working_day_hours is not None:
        day_lists.append(((*path, "working_day_hours"), calendar.working_day_hours))
    day_lists += [((*path, "overrides", i, "hours"), o.hours) for i, o in enumerate(calendar.overrides)]
    for list_path, hours in day_lists:
        findings += _check_hours(list_path, hours)
    dates = Counter(override.date for override in calendar.overrides)
    for index, override in enumerate(calendar.overrides):
        if dates[override.date] > 1:
            findings.append(((*path, "overrides", index, "date"), f"{override.date} has several overrides"))
    if calendar.holiday_country is not None:
        subdivisions = supported_holiday_countries().get(calendar.holiday_country)
        if subdivisions is None:
            findings.append(((*path, "holiday_country"), f"unknown holiday country {calendar.holiday_country!r}"))
        elif calendar.holiday_subdivision is not None and calendar.holiday_subdivision not in subdivisions:
            problem = f"unknown subdivision {calendar.holiday_subdivision!r} of {calendar.holiday_country}"
            findings.append(((*path, "holiday_subdivision"), problem))
    if not findings:
        try:
            BusinessCalendar(calendar.to_spec(desk_timezone))
        except CalendarError as error:
            findings.append((path, str(error)))
    return findings


def _check_hours(path: Path, hours: Iterable[str]) -> list[Finding]:
    findings: list[Finding] = []
    parsed = []
    for index, text in enumerate(hours):
        try:
            parsed.append(parse_interval(text))
        except CalendarError as error:
            findings.append(((*path, index), str(error)))
    if not findings:
        try:
            check_no_overlap(tuple(parsed))
        except CalendarError as error:
            findings.append((path, str(error)))
    return findings


def _check_tenants(desk: Desk) -> list[Finding]:
    findings: list[Finding] = []
    tracks = {track.id for track in desk.tracks}
    platforms = desk.platforms
    entries: list[tuple[Path, str, list[tuple[str, str]]]] = []
    for i, bot in enumerate(platforms.express):
        entries.append((("platforms", "express", i), bot.default_track, [("secret_env", bot.secret_env)]))
    for i, portal in enumerate(platforms.bitrix24):
        entries.append(
            (
                ("platforms", "bitrix24", i),
                portal.default_track,
                [("client_secret_env", portal.client_secret_env)],
            )
        )
        if not portal.member_ids and not portal.portal_domains:
            findings.append((("platforms", "bitrix24", i), "list member_ids or portal_domains (or both)"))
    for i, tenant in enumerate(platforms.generic):
        entries.append((("platforms", "generic", i), tenant.default_track, [("api_key_env", tenant.api_key_env)]))
    for path, track, env_fields in entries:
        if track not in tracks:
            findings.append(((*path, "default_track"), f"unknown track {track!r}"))
        for name, value in env_fields:
            if not _ENV_NAME.match(value):
                problem = f"{value[:4]!r}... is not an environment variable name (keep secrets out of files)"
                findings.append(((*path, name), problem))
    return findings


def _check_tracks(desk: Desk) -> list[Finding]:
    findings: list[Finding] = []
    calendars = {calendar.id for calendar in desk.calendars}
    for index, track in enumerate(desk.tracks):
        if track.calendar not in calendars:
            findings.append((("tracks", index, "calendar"), f"unknown calendar {track.calendar!r}"))
        if not track.eligibility:
            findings.append((("tracks", index, "eligibility"), "nobody may open tickets on this track"))
    return findings


def _check_sla(desk: Desk) -> list[Finding]:
    findings: list[Finding] = []
    tracks = {track.id: track for track in desk.tracks}
    queues = {queue.id for queue in desk.queues}
    seen: Counter[tuple[str, str]] = Counter((p.track, p.priority) for p in desk.sla_policies)
    for index, policy in enumerate(desk.sla_policies):
        path: Path = ("sla_policies", index)
        track = tracks.get(policy.track)
        if track is None:
            findings.append(((*path, "track"), f"unknown track {policy.track!r}"))
        elif not track.sla:
            findings.append(((*path, "track"), f"track {policy.track!r} has sla = false and takes no SLA policy"))
        if seen[(policy.track, policy.priority)] > 1:
            findings.append(((*path, "priority"), f"several policies for {policy.track}/{policy.priority}"))
        targets = ("first_response_minutes", "next_response_minutes", "resolution_minutes")
        if all(getattr(policy, name) is None for name in targets):
            findings.append(
                (path, "no target: set first_response_minutes, next_response_minutes or resolution_minutes")
            )
        for name in targets:
            value = getattr(policy, name)
            if value is not None and value <= 0:
                findings.append(((*path, name), "must be a positive number of business minutes"))
        ladder = policy.warnings
        if any(not 0 < w < 1 for w in ladder) or list(ladder) != sorted(set(ladder)):
            findings.append(
                ((*path, "warnings"), "fractions strictly between 0 and 1, ascending, e.g. [0.5, 0.75, 0.9]")
            )
        if policy.escalation_queue is not None and policy.escalation_queue not in queues:
            findings.append(((*path, "escalation_queue"), f"unknown queue {policy.escalation_queue!r}"))
    for index, track in enumerate(desk.tracks):
        missing = [p for p in PRIORITIES if track.sla and (track.id, p) not in seen]
        if missing:
            findings.append((("tracks", index, "sla"), f"no SLA policy for priority {', '.join(missing)}"))
    return findings


def _check_queues_and_routing(desk: Desk) -> list[Finding]:
    findings: list[Finding] = []
    tracks = {track.id for track in desk.tracks}
    queues = {queue.id for queue in desk.queues}
    for index, queue in enumerate(desk.queues):
        if queue.track not in tracks:
            findings.append((("queues", index, "track"), f"unknown track {queue.track!r}"))
        if queue.fallback is not None and (queue.fallback not in queues or queue.fallback == queue.id):
            findings.append((("queues", index, "fallback"), f"unknown (or own) queue {queue.fallback!r}"))
        if queue.reassign_after_minutes is not None and queue.reassign_after_minutes <= 0:
            findings.append((("queues", index, "reassign_after_minutes"), "must be positive"))
        if queue.lead is not None and not _STAFF_ID.match(queue.lead):
            problem = f"{queue.lead!r} is not a staff id (lower-case letters, digits, '.', '_', '-'; e.g. 'lead-boris')"
            findings.append((("queues", index, "lead"), problem))
        if queue.reassign_after_minutes is not None and queue.lead is None:
            problem = "a no-answer reassignment tells the queue's lead: set `lead` (a staff id, e.g. 'lead-boris')"
            findings.append((("queues", index, "reassign_after_minutes"), problem))
        if queue.lead is not None and queue.strategy == "none":
            findings.append((("queues", index, "lead"), "nobody works a queue with strategy = 'none': it has no lead"))
    if desk.routing.fallback_queue not in queues:
        findings.append((("routing", "fallback_queue"), f"unknown queue {desk.routing.fallback_queue!r}"))
    for index, rule in enumerate(desk.routing.rules):
        path: Path = ("routing", "rules", index)
        if rule.queue not in queues:
            findings.append(((*path, "queue"), f"unknown queue {rule.queue!r}"))
        for position, track in enumerate(rule.track):
            if track not in tracks:
                findings.append(((*path, "track", position), f"unknown track {track!r}"))
    return findings


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
