"""The shape of one support desk's configuration file: small frozen Structs, unknown fields refused.

Each service reads its own section; cross-references (a track's calendar, a queue's track, ...) are
checked in `validate.py`, and every problem is reported with file, line and field.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Literal

import msgspec

from ticketflow.calendar import CalendarSpec

# The same values as ticketflow.contracts.values (kept here so configuration needs no contracts import;
# a test checks they stay equal).
Platform = Literal["express", "bitrix24", "generic"]
Priority = Literal["urgent", "high", "normal", "low"]
Role = Literal["portal_admin", "end_user", "system_admin", "partner"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")

Strategy = Literal["round_robin", "least_loaded", "skill_based", "none"]
Recalculation = Literal["keep_elapsed", "restart"]
CheckName = Literal[
    "public_address",
    "https_reachable",
    "tls_certificate",
    "pub_readable",
    "json_answer",
    "license",
    "updates",
]
NotifyWho = Literal["assignee", "lead", "requester"]


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base: immutable, and a misspelt key is an error rather than a silently ignored setting.

    Subclasses inherit `forbid_unknown_fields`; they repeat `frozen`/`kw_only` for mypy's sake."""


# --- platforms and tenants: which chats belong to this desk ----------------------------------------


class ExpressBot(Model, frozen=True, kw_only=True):
    """One eXpress (BotX) bot; the secret is read from the environment variable named here."""

    bot_id: uuid.UUID
    host: str  # the CTS host BotX names in the JWT audience
    secret_env: str
    default_track: str
    contract_tier: str | None = None
    self_help_hints: bool = True
    # True when everyone writing to this bot belongs to one customer organisation (a bot under a
    # contract): colleagues' tickets may then be merged as duplicates. False (a public bot): only the
    # same requester's; another requester's look-alike is a suggestion for the agent.
    one_organisation: bool = False


class Bitrix24Portal(Model, frozen=True, kw_only=True):
    """One Bitrix24 application and the portals (member_id / domain) it is installed on."""

    client_id: str
    client_secret_env: str
    member_ids: tuple[str, ...] = ()
    portal_domains: tuple[str, ...] = ()
    bot_ids: tuple[str, ...] = ()  # empty: any bot of this app
    default_track: str
    contract_tier: str | None = None


class GenericTenant(Model, frozen=True, kw_only=True):
    """A platform posting JSON to the generic intake endpoint."""

    tenant_id: str
    api_key_env: str
    default_track: str
    contract_tier: str | None = None
    self_help_hints: bool = False
    one_organisation: bool = False  # as ExpressBot.one_organisation


class Platforms(Model, frozen=True, kw_only=True):
    express: tuple[ExpressBot, ...] = ()
    bitrix24: tuple[Bitrix24Portal, ...] = ()
    generic: tuple[GenericTenant, ...] = ()


# --- calendars --------------------------------------------------------------------------------------


class WeeklyHours(Model, frozen=True, kw_only=True):
    """'HH:MM-HH:MM' intervals per weekday; an end before the start runs past midnight."""

    mon: tuple[str, ...] = ()
    tue: tuple[str, ...] = ()
    wed: tuple[str, ...] = ()
    thu: tuple[str, ...] = ()
    fri: tuple[str, ...] = ()
    sat: tuple[str, ...] = ()
    sun: tuple[str, ...] = ()

    def as_mapping(self) -> dict[str, tuple[str, ...]]:
        return {day: getattr(self, day) for day in self.__struct_fields__}


class DatedHours(Model, frozen=True, kw_only=True):
    """Hours for one date, replacing every other rule (empty: closed all day)."""

    date: datetime.date
    hours: tuple[str, ...] = ()
    note: str = ""


class CalendarConfig(Model, frozen=True, kw_only=True):
    id: str
    timezone: str | None = None  # default: the desk's time zone
    weekly: WeeklyHours
    holiday_country: str | None = None  # ISO code for the `holidays` library, e.g. "RU"
    holiday_subdivision: str | None = None
    holiday_hours: tuple[str, ...] = ()  # hours on public holidays; empty: closed
    moved_working_days: bool = True  # observe weekend days the country declares working days
    working_day_hours: tuple[str, ...] | None = None  # hours on moved working days; default Monday's
    extra_holidays: tuple[datetime.date, ...] = ()
    extra_working_days: tuple[datetime.date, ...] = ()
    overrides: tuple[DatedHours, ...] = ()

    def to_spec(self, desk_timezone: str) -> CalendarSpec:
        return CalendarSpec.from_text(
            self.timezone or desk_timezone,
            self.weekly.as_mapping(),
            holiday_country=self.holiday_country,
            holiday_subdivision=self.holiday_subdivision,
            holiday_hours=self.holiday_hours,
            working_day_hours=self.working_day_hours,
            observe_moved_working_days=self.moved_working_days,
            extra_holidays=self.extra_holidays,
            extra_working_days=self.extra_working_days,
            overrides={override.date: override.hours for override in self.overrides},
        )


# --- tracks, SLA, queues, routing ------------------------------------------------------------------


class Track(Model, frozen=True, kw_only=True):
    """A line of support with its own audience, hours and (maybe) SLA."""

    id: str
    name: str
    calendar: str
    eligibility: tuple[Role, ...]  # who may open tickets here; others get a refusal, not a ticket
    sla: bool = True
    contract_tier: str | None = None
    default_priority: Priority = "normal"


class SlaPolicy(Model, frozen=True, kw_only=True):
    """Targets in business minutes of the track's calendar; `None` means no such target."""

    track: str
    priority: Priority
    first_response_minutes: int | None = None
    next_response_minutes: int | None = None
    resolution_minutes: int | None = None
    warnings: tuple[float, ...] = (0.5, 0.75, 0.9)  # fractions of the target, ascending
    recalculation: Recalculation = "keep_elapsed"  # on priority/track change: keep used time, or restart
    escalation_queue: str | None = None
    notify: tuple[NotifyWho, ...] = ("assignee", "lead")


class Queue(Model, frozen=True, kw_only=True):
    id: str
    track: str
    tier: str = "l1"
    strategy: Strategy = "round_robin"  # "none": nobody works it (referral to partners)
    reassign_after_minutes: int | None = None  # business minutes without an agent reply
    fallback: str | None = None  # queue to overflow into
    skills: tuple[str, ...] = ()
    # The queue's lead: a staff id of the notifications directory (e.g. "lead-boris"). Told when
    # routing takes a ticket away from an agent who did not answer (TicketUnassigned.lead_id).
    lead: str | None = None


class RoutingRule(Model, frozen=True, kw_only=True):
    """Each condition lists accepted values; an empty list accepts anything. First match wins."""

    id: str
    queue: str
    track: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    contract_tier: tuple[str, ...] = ()
    priority: tuple[Priority, ...] = ()
    set_priority: Priority | None = None

    def matches(self, ticket: TicketFacts) -> bool:
        return all(
            not accepted or value in accepted
            for accepted, value in (
                (self.track, ticket.track),
                (self.category, ticket.category),
                (self.language, ticket.language),
                (self.contract_tier, ticket.contract_tier),
                (self.priority, ticket.priority),
            )
        )


class TicketFacts(Model, frozen=True, kw_only=True):
    """What routing rules look at."""

    track: str
    priority: Priority
    category: str | None = None
    language: str | None = None
    contract_tier: str | None = None


class Routing(Model, frozen=True, kw_only=True):
    fallback_queue: str
    rules: tuple[RoutingRule, ...] = ()

    def first_match(self, ticket: TicketFacts) -> RoutingRule | None:
        """The first rule accepting the ticket; None means `fallback_queue`."""
        return next((rule for rule in self.rules if rule.matches(ticket)), None)

    def queue_for(self, ticket: TicketFacts) -> str:
        rule = self.first_match(ticket)
        return self.fallback_queue if rule is None else rule.queue


# --- preflight and notifications -------------------------------------------------------------------


class ScopeCategory(Model, frozen=True, kw_only=True):
    """A kind of request; out-of-scope ones are referred (`refer_to`, a `[[referrals]]` id) and never
    count against SLA. `title_ru`/`title_en` name it to the customer ("custom development")."""

    id: str
    in_scope: bool
    keywords_ru: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()
    refer_to: str | None = None
    title_ru: str = ""
    title_en: str = ""


class Referral(Model, frozen=True, kw_only=True):
    """Who helps with what support does not do, in the words a customer reads: "партнёры Битрикс24"
    with their address, or "the support team of your organisation" (no address)."""

    id: str
    name_ru: str
    name_en: str
    url: str | None = None


class Preflight(Model, frozen=True, kw_only=True):
    checks: tuple[CheckName, ...] = ()  # prerequisite checks run before a ticket is accepted
    timeout_seconds: float = 5.0
    cache_ttl_passed_seconds: int = 600
    cache_ttl_failed_seconds: int = 60
    stable_versions_feed: str | None = None  # URL or file path of the latest stable versions
    allowed_ports: tuple[int, ...] = (443, 80)  # the only ports portal checks (and redirects) may go to
    self_help_steps: tuple[str, ...] = ()  # template keys offered before filing
    duplicate_check: bool = False
    scope: tuple[ScopeCategory, ...] = ()


class Notifications(Model, frozen=True, kw_only=True):
    template_set: str
    locales: tuple[str, ...]
    email: bool = False


class Desk(Model, frozen=True, kw_only=True):
    id: str
    name: str
    timezone: str
    default_locale: str
    languages: tuple[str, ...]
    platforms: Platforms
    calendars: tuple[CalendarConfig, ...]
    tracks: tuple[Track, ...]
    sla_policies: tuple[SlaPolicy, ...] = ()
    queues: tuple[Queue, ...]
    routing: Routing
    preflight: Preflight = Preflight()
    referrals: tuple[Referral, ...] = ()
    notifications: Notifications
