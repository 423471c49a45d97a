"""Channel accounts and the staff directory: a TOML file of this service's own, msgspec-validated.

Desk configuration (ticketflow.deskconfig) names tenants but not how to reach them from here (BotX
`cts_url`, the SMTP relay, webhook endpoints) nor who the agents, leads and on-call people are and when
they work. Until deskconfig absorbs that, it lives here. Bitrix24 portals are not configured here at all:
their address, tokens and bot come from their verified install (`ticketflow.bitrix24`); `[bitrix24]` only
sets how fast one portal is called.

The file is `TICKETFLOW_NOTIFICATIONS_CONFIG` (`settings.config`); without it the packaged `local.toml`
(everything on 127.0.0.1, for local runs) is used. Secrets are never in the file: it names environment variables,
and an account whose secret is not set is disabled and logged (its deliveries become dead letters
"not configured", which a redrive sends once the secret is there).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ticketflow.bitrix24 import PortalRest
from ticketflow.notifications.adapters.channels import (
    Bitrix24Channel,
    ChannelClient,
    EmailChannel,
    ExpressBot,
    ExpressChannel,
    SmtpRelay,
    WebhookChannel,
    WebhookEndpoint,
)
from ticketflow.notifications.domain.model import Channel
from ticketflow.notifications.domain.policy import Address, Person, Role, Schedule, Window

log = logging.getLogger("ticketflow.notifications")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(ValueError):
    """The configuration file is missing, malformed or inconsistent; the message says where."""


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ExpressBotAccount(_Strict, frozen=True, kw_only=True):
    bot_id: uuid.UUID
    cts_url: str  # scheme, host and port of the CTS: "https://cts.example.ru"
    secret_env: str


class Bitrix24Limits(_Strict, frozen=True, kw_only=True):
    """Requests per second to one portal, and the burst (Bitrix24 allows about 2/s, burst 50, in the cloud)."""

    rate: float = 2.0
    burst: int = 10


class SmtpRelayAccount(_Strict, frozen=True, kw_only=True):
    name: str
    hostname: str
    port: int = 25
    sender: str
    username_env: str | None = None
    password_env: str | None = None
    start_tls: bool | None = None
    use_tls: bool = False


class WebhookAccount(_Strict, frozen=True, kw_only=True):
    name: str  # generic tenants: the tenant id (ChatRef.tenant_id)
    url: str
    secret_env: str


class ShiftWindow(_Strict, frozen=True, kw_only=True):
    days: tuple[Day, ...]
    start: str  # "10:00"
    end: str  # "19:00"; at or before start: runs past midnight


class AddressConfig(_Strict, frozen=True, kw_only=True):
    destination: str  # the account: bot id, portal id, relay name, webhook name
    address: str  # chat id, DIALOG_ID, e-mail address, user id at the receiver


class PersonConfig(_Strict, frozen=True, kw_only=True):
    id: str  # the id routing uses (TicketAssigned.agent_id, TicketUnassigned.lead_id)
    name: str
    role: Literal["agent", "lead", "oncall"]
    locale: str = "ru"
    timezone: str = "Europe/Moscow"
    channels: tuple[Channel, ...]  # preference order
    addresses: dict[Channel, AddressConfig] = {}
    shift: tuple[ShiftWindow, ...] = ()  # agents/leads: empty = always on; on-call: its day duty
    queues: tuple[str, ...] = ()  # leads: queues they lead; on-call: queues they cover
    desks: tuple[str, ...] = ()  # on-call: desks they cover (every queue of the desk)
    muted_templates: tuple[str, ...] = ()
    fan_out: bool = False


class DeskSettings(_Strict, frozen=True, kw_only=True):
    desk_id: str
    email_relay: str | None = None  # ticket-register e-mails to requesters go through this relay


class NotificationsConfig(_Strict, frozen=True, kw_only=True):
    express_bots: tuple[ExpressBotAccount, ...] = ()
    bitrix24: Bitrix24Limits = Bitrix24Limits()
    smtp_relays: tuple[SmtpRelayAccount, ...] = ()
    webhooks: tuple[WebhookAccount, ...] = ()
    desks: tuple[DeskSettings, ...] = ()
    people: tuple[PersonConfig, ...] = ()


def default_config_path() -> Path:
    return Path(str(resources.files("ticketflow.notifications") / "config" / "local.toml"))


def load_config(path: Path | None = None) -> NotificationsConfig:
    """The file at `path`, else the packaged `config/local.toml`; `ConfigError` says what is wrong where."""
    path = path or default_config_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_config(raw, str(path))


def parse_config(raw: bytes | str, source: str = "<config>") -> NotificationsConfig:
    try:
        config = msgspec.toml.decode(raw, type=NotificationsConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    problems = _problems(config)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return config


def _problems(config: NotificationsConfig) -> list[str]:
    problems: list[str] = []
    ids = [p.id for p in config.people]
    problems += [f"person {i!r} is listed twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    accounts = {
        Channel.EXPRESS: {str(b.bot_id) for b in config.express_bots},
        Channel.EMAIL: {r.name for r in config.smtp_relays},
        Channel.WEBHOOK: {w.name for w in config.webhooks},
    }
    for person in config.people:
        where = f"people[{person.id}]"
        try:
            ZoneInfo(person.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{where}.timezone: unknown time zone {person.timezone!r}")
        for channel, target in person.addresses.items():
            if channel in accounts and target.destination not in accounts[channel]:  # Bitrix24: any portal
                problems.append(f"{where}.addresses.{channel}: no {channel} account {target.destination!r}")
        for window in person.shift:
            for value in (window.start, window.end):
                try:
                    time.fromisoformat(value)
                except ValueError:
                    problems.append(f"{where}.shift: {value!r} is not HH:MM")
    relays = accounts[Channel.EMAIL]
    for desk in config.desks:
        if desk.email_relay is not None and desk.email_relay not in relays:
            problems.append(f"desks[{desk.desk_id}].email_relay: no smtp relay {desk.email_relay!r}")
    return problems


def _schedule(person: PersonConfig) -> Schedule | None:
    if not person.shift:
        return None
    windows = tuple(
        Window(frozenset(DAYS.index(d) for d in w.days), time.fromisoformat(w.start), time.fromisoformat(w.end))
        for w in person.shift
    )
    return Schedule(person.timezone, windows)


@dataclass(frozen=True)
class Directory:
    """Who the staff are and how to reach them (implements `domain.Staff`)."""

    people: Mapping[str, Person]
    names: Mapping[str, str]
    timezones: Mapping[str, str]
    leads_by_queue: Mapping[str, tuple[Person, ...]]
    oncall_by_queue: Mapping[str, tuple[Person, ...]]
    oncall_by_desk: Mapping[str, tuple[Person, ...]]
    desks: Mapping[str, DeskSettings]
    default_relay: str | None

    @classmethod
    def from_config(cls, config: NotificationsConfig) -> Directory:
        people: dict[str, Person] = {}
        leads: dict[str, list[Person]] = {}
        oncall_queue: dict[str, list[Person]] = {}
        oncall_desk: dict[str, list[Person]] = {}
        for p in config.people:
            person = Person(
                id=p.id,
                role=Role(p.role),
                locale=p.locale,
                channels=p.channels,
                addresses={c: Address(a.destination, a.address) for c, a in p.addresses.items()},
                shift=_schedule(p),
                muted_templates=frozenset(p.muted_templates),
                fan_out=p.fan_out,
            )
            people[p.id] = person
            by_queue = leads if p.role == "lead" else oncall_queue if p.role == "oncall" else {}
            for queue in p.queues:
                by_queue.setdefault(queue, []).append(person)
            if p.role == "oncall":
                for desk in p.desks:
                    oncall_desk.setdefault(desk, []).append(person)
        return cls(
            people=people,
            names={p.id: p.name for p in config.people},
            timezones={p.id: p.timezone for p in config.people},
            leads_by_queue={q: tuple(v) for q, v in leads.items()},
            oncall_by_queue={q: tuple(v) for q, v in oncall_queue.items()},
            oncall_by_desk={d: tuple(v) for d, v in oncall_desk.items()},
            desks={d.desk_id: d for d in config.desks},
            default_relay=config.smtp_relays[0].name if config.smtp_relays else None,
        )

    def person(self, person_id: str) -> Person | None:
        return self.people.get(person_id)

    def name(self, person_id: str) -> str:
        return self.names.get(person_id, person_id)

    def timezone(self, person_id: str) -> str | None:
        return self.timezones.get(person_id)

    def leads(self, queue_id: str) -> tuple[Person, ...]:
        return self.leads_by_queue.get(queue_id, ())

    def oncall(self, desk_id: str, queue_id: str | None) -> tuple[Person, ...]:
        by_queue = self.oncall_by_queue.get(queue_id, ()) if queue_id else ()
        return (*by_queue, *(p for p in self.oncall_by_desk.get(desk_id, ()) if p not in by_queue))

    def email_relay(self, desk_id: str) -> str | None:
        settings = self.desks.get(desk_id)
        return settings.email_relay if settings and settings.email_relay else self.default_relay


def _secret(name: str | None, env: Mapping[str, str], what: str) -> str | None:
    if name is None:
        return None
    value = env.get(name)
    if not value:
        log.warning("notifications: %s is disabled: environment variable %s is not set", what, name)
    return value or None


def build_channels(
    config: NotificationsConfig, env: Mapping[str, str] | None = None, bitrix24: PortalRest | None = None
) -> list[ChannelClient]:
    """Channel clients for every account whose secret is set; Bitrix24 through `bitrix24` (the installs)."""
    env = os.environ if env is None else env
    bots = [
        ExpressBot(b.bot_id, b.cts_url, secret)
        for b in config.express_bots
        if (secret := _secret(b.secret_env, env, f"eXpress bot {b.bot_id}"))
    ]
    relays = [
        SmtpRelay(
            r.name,
            r.hostname,
            r.port,
            r.sender,
            _secret(r.username_env, env, f"SMTP user of {r.name}"),
            _secret(r.password_env, env, f"SMTP password of {r.name}"),
            r.start_tls,
            r.use_tls,
        )
        for r in config.smtp_relays
    ]
    hooks = [
        WebhookEndpoint(w.name, w.url, secret)
        for w in config.webhooks
        if (secret := _secret(w.secret_env, env, f"webhook {w.name}"))
    ]
    portals = Bitrix24Channel(bitrix24, rate=config.bitrix24.rate, burst=config.bitrix24.burst)
    return [ExpressChannel(bots), portals, EmailChannel(relays), WebhookChannel(hooks)]
