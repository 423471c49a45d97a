"""Routing configuration: queues, tiers, rules, calendars and the fallback queue.

`ticketflow.deskconfig` is the source of desk configuration; until it carries these shapes, routing
keeps its own small Structs here (`ticketflow.routing.desks` flattens the desk files into them).
Validation that needs the whole picture (a rule naming an unknown queue) happens in `validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ticketflow.calendar import BusinessCalendar, CalendarSpec
from ticketflow.contracts.values import Priority

Strategy = Literal["round_robin", "least_loaded", "skill_based", "none"]
FallbackLevel = Literal["skills_and_language", "skills", "language", "anyone"]
ALL_LEVELS: tuple[FallbackLevel, ...] = ("skills_and_language", "skills", "language", "anyone")


class CalendarConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timezone: str
    weekly: dict[str, tuple[str, ...]]
    holiday_country: str | None = None
    holiday_hours: tuple[str, ...] = ()  # hours on public holidays (empty: closed)

    def build(self) -> BusinessCalendar:
        spec = CalendarSpec.from_text(
            self.timezone,
            self.weekly,
            holiday_country=self.holiday_country,
            holiday_hours=self.holiday_hours,
        )
        return BusinessCalendar(spec)


class QueueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A queue agents join. `strategy = "none"` is a queue nobody works (partner referral)."""

    id: str
    desk: str
    tier: str = "standard"
    strategy: Strategy = "round_robin"
    calendar: str | None = None  # name in RoutingConfig.calendars; business time for reassignment
    reassign_after_minutes: int | None = None  # business minutes without an AgentReplied
    lead_id: str | None = None
    skills: tuple[str, ...] = ()  # what skill_based looks for when the matched rule names none
    overflow: str | None = None  # a queue to route to when nobody here may take a new ticket now
    skill_fallbacks: tuple[FallbackLevel, ...] = ALL_LEVELS


class RuleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Each condition is a set of accepted values; an empty set accepts anything."""

    id: str
    queue: str
    desk: tuple[str, ...] = ()
    track: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    contract_tier: tuple[str, ...] = ()
    priority: tuple[Priority, ...] = ()
    tier: str | None = None  # overrides the queue's tier; "contract" takes the ticket's contract tier
    set_priority: Priority | None = None
    skills: tuple[str, ...] = ()  # what skill_based queues look for


class RoutingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queues: tuple[QueueConfig, ...]
    rules: tuple[RuleConfig, ...]
    fallback_queue: str  # for tickets of a desk without its own fallback
    desk_fallbacks: dict[str, str] = {}  # desk id -> that desk's fallback queue
    contract_tiers: dict[str, str] = {}  # chat tenant id -> contract tier ("gold", "silver", ...)
    track_contract_tiers: dict[str, str] = {}  # "desk/track" -> tier, when the tenant has none
    default_contract_tier: str = "standard"
    calendars: dict[str, CalendarConfig] = {}


class ConfigError(ValueError):
    """A configuration that cannot be used, with where and what."""


class Desks:
    """A validated configuration with its lookups built once: queues by id, calendars compiled."""

    def __init__(
        self,
        config: RoutingConfig,
        source: str = "<routing config>",
        calendars: Mapping[str, BusinessCalendar] | None = None,
    ) -> None:
        validate(config, source, set(calendars or ()))
        self.config = config
        self.rules = config.rules
        self.rules_by_id: dict[str, RuleConfig] = {r.id: r for r in config.rules}
        self.queues: dict[str, QueueConfig] = {q.id: q for q in config.queues}
        self.fallback = self.queues[config.fallback_queue]
        self.calendars: dict[str, BusinessCalendar] = {n: c.build() for n, c in config.calendars.items()}
        self.calendars.update(calendars or {})
        self.route_cache: dict[Any, Any] = {}  # rules.route: TicketFacts -> RouteDecision

    def skills_for(self, rule_id: str, queue_id: str) -> tuple[str, ...]:
        """What a routed ticket needs: its rule's skills, else its queue's."""
        rule, queue = self.rules_by_id.get(rule_id), self.queues.get(queue_id)
        return (rule.skills if rule is not None else ()) or (queue.skills if queue is not None else ())

    def fallback_for(self, desk: str) -> QueueConfig:
        return self.queues[self.config.desk_fallbacks.get(desk, self.config.fallback_queue)]

    def contract_tier(self, desk: str, track: str, tenant: str) -> str:
        c = self.config
        tier = c.contract_tiers.get(tenant) or c.contract_tiers.get(tenant.lower())
        return tier or c.track_contract_tiers.get(f"{desk}/{track}") or c.default_contract_tier

    def calendar_of(self, queue: QueueConfig) -> BusinessCalendar | None:
        return None if queue.calendar is None else self.calendars[queue.calendar]


def validate(config: RoutingConfig, source: str = "<routing config>", calendars: set[str] | None = None) -> None:
    queues = {q.id for q in config.queues}
    known_calendars = set(config.calendars) | (calendars or set())
    problems: list[str] = []
    if len(queues) != len(config.queues):
        problems.append("queue ids repeat")
    for desk, fallback in {"*": config.fallback_queue, **config.desk_fallbacks}.items():
        if fallback not in queues:
            problems.append(f"fallback queue {fallback!r} of desk {desk} is not a queue")
    seen: set[str] = set()
    for index, rule in enumerate(config.rules):
        if rule.id in seen:
            problems.append(f"rules[{index}]: rule id {rule.id!r} repeats")
        seen.add(rule.id)
        if rule.queue not in queues:
            problems.append(f"rules[{index}] ({rule.id}): unknown queue {rule.queue!r}")
    for q in config.queues:
        if q.overflow is not None and q.overflow not in queues:
            problems.append(f"queue {q.id}: unknown overflow queue {q.overflow!r}")
        if q.calendar is not None and q.calendar not in known_calendars:
            problems.append(f"queue {q.id}: unknown calendar {q.calendar!r}")
        if q.reassign_after_minutes is not None and q.reassign_after_minutes <= 0:
            problems.append(f"queue {q.id}: reassign_after_minutes must be positive")
    for name, cal in config.calendars.items():
        try:
            cal.build()
        except ValueError as error:
            problems.append(f"calendar {name}: {error}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
