"""Which tenants intake serves, their secrets, and the desk/track each one's messages go to.

`load_tenants()` reads the desk configuration (`ticketflow.deskconfig.load_desks()`: the packaged desks or
$TICKETFLOW_DESK_CONFIG_DIR). For tests and small setups, a small TOML file may be named instead
(`TICKETFLOW_INTAKE_TENANTS`, `IntakeSettings.tenants`; format below). Secrets are never in either file,
only the names of the environment variables that hold them; a tenant whose secret is unset is disabled
and logged.

    [[express]]                       # one eXpress (BotX) bot
    bot_id = "8dada2c8-67a6-4434-9dec-570d244e78ee"
    host = "cts.example.com"          # the CTS host BotX names in the JWT audience
    secret_env = "EXPRESS_BOT_SECRET"
    desk = "express"
    track = "client"
    self_help_hints = true

    [[bitrix24]]                      # one Bitrix24 portal, by member_id
    member_id = "bac1cd5c8940947a75e0d71b1a84e348"
    client_id = "local.ticketflow-box-support"     # the application it installs
    client_secret_env = "B24_CLIENT_SECRET"
    portal_domains = ["portal.example.ru"]         # the domains an install may name
    bot_ids = ["567"]                 # besides the bot registered at install; empty: that one only
    desk = "bitrix24-box"
    track = "box"

    [[generic]]                       # a platform posting to POST /v1/messages
    tenant_id = "acme-helpdesk"
    api_key_env = "ACME_INTAKE_KEY"
    desk = "generic"
    track = "default"
"""

from __future__ import annotations

import logging
import os
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ticketflow.bitrix24 import App, Apps, normalise_domain
from ticketflow.contracts.values import Role
from ticketflow.deskconfig import DeskConfigError, DeskRegistry, load_desks
from ticketflow.intake.domain.messages import DeskRoute

log = logging.getLogger("ticketflow.intake")


class ExpressBot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bot_id: uuid.UUID
    host: str
    secret_env: str
    desk: str = "express"
    track: str = "client"
    self_help_hints: bool = True
    contract_tier: str | None = None  # set: a technical-support contract bot (implies system_admin)


class Bitrix24Portal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    member_id: str
    client_id: str
    client_secret_env: str
    portal_domains: tuple[str, ...] = ()
    desk: str = "bitrix24-box"
    track: str = "box"
    bot_ids: tuple[str, ...] = ()


class GenericTenant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tenant_id: str
    api_key_env: str
    desk: str = "generic"
    track: str = "default"
    self_help_hints: bool = False


class TenantFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    express: tuple[ExpressBot, ...] = ()
    bitrix24: tuple[Bitrix24Portal, ...] = ()
    generic: tuple[GenericTenant, ...] = ()


class ConfigError(RuntimeError):
    """A tenant file or desk file intake cannot serve from: the service refuses to start (exit 2)."""


@dataclass(frozen=True)
class Tenants:
    """Lookups by (platform, tenant): the desk route, and the secret each platform authenticates with."""

    express: dict[str, ExpressBot] = field(default_factory=dict)
    bitrix24: dict[str, Bitrix24Portal] = field(default_factory=dict)
    generic: dict[str, GenericTenant] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # env var name -> value
    disabled: tuple[str, ...] = ()  # configured, but their secret is not set
    b24_apps: Apps = field(default_factory=Apps)  # the Bitrix24 applications, by portal and client id

    def route(self, platform: str, tenant_id: str) -> DeskRoute | None:
        if platform == "express" and (bot := self.express.get(tenant_id)):
            implied: tuple[Role, ...] = ("system_admin",) if bot.contract_tier else ()
            return DeskRoute(bot.desk, bot.track, bot.self_help_hints, implied)
        if platform == "bitrix24" and (portal := self.bitrix24.get(tenant_id)):
            return DeskRoute(portal.desk, portal.track, False)
        if platform == "generic" and (tenant := self.generic.get(tenant_id)):
            return DeskRoute(tenant.desk, tenant.track, tenant.self_help_hints)
        return None

    def secret(self, env_name: str) -> str:
        return self.secrets[env_name]


def load_tenants(path: str | Path | None = None) -> Tenants:
    """The tenant file if one is named, else the desk configuration; every named secret must be set
    (a tenant without its secret is disabled, loudly)."""
    source = path
    if not source:
        try:
            return tenants_from_desks(load_desks())
        except DeskConfigError as exc:
            raise ConfigError(f"desk configuration: {exc}") from exc
    try:
        raw = tomllib.loads(Path(source).read_text())
        parsed = msgspec.convert(raw, TenantFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return _with_secrets(parsed, str(source))


def tenants_from_desks(registry: DeskRegistry) -> Tenants:
    """Intake's view of the desk files. Bitrix24 portals are keyed by member_id (what every event
    carries); a portal listed only by domain is not served until its member_id is added."""
    express, bitrix24, generic = [], [], []
    for desk in registry.desks.values():
        for bot in desk.platforms.express:
            express.append(
                ExpressBot(
                    bot.bot_id,
                    bot.host,
                    bot.secret_env,
                    desk.id,
                    bot.default_track,
                    bot.self_help_hints,
                    bot.contract_tier,
                )
            )
        for app in desk.platforms.bitrix24:
            for member_id in app.member_ids:
                bitrix24.append(
                    Bitrix24Portal(
                        member_id.lower(),
                        app.client_id,
                        app.client_secret_env,
                        app.portal_domains,
                        desk.id,
                        app.default_track,
                        app.bot_ids,
                    )
                )
        for tenant in desk.platforms.generic:
            generic.append(
                GenericTenant(
                    tenant.tenant_id, tenant.api_key_env, desk.id, tenant.default_track, tenant.self_help_hints
                )
            )
    return _with_secrets(TenantFile(tuple(express), tuple(bitrix24), tuple(generic)), "desk configuration")


def _with_secrets(parsed: TenantFile, source: str) -> Tenants:
    """A bot or tenant whose secret variable is unset is disabled (its requests get 403 unknown_bot /
    unknown_tenant), and named in `disabled` and in the start-up log, so one missing secret does not
    take every desk down."""
    present = {n: v for n in _secret_names(parsed) if (v := os.environ.get(n))}
    b24_secrets = {p.client_secret_env: os.environ.get(p.client_secret_env, "") for p in parsed.bitrix24}
    bots = [b for b in parsed.express if b.secret_env in present]
    tenants = [g for g in parsed.generic if g.api_key_env in present]
    disabled = [f"express bot {b.bot_id} (${b.secret_env})" for b in parsed.express if b not in bots]
    disabled += [f"generic tenant {g.tenant_id} (${g.api_key_env})" for g in parsed.generic if g not in tenants]
    if disabled:
        log.warning("%s: disabled for want of a secret: %s", source, "; ".join(disabled))
    return Tenants(
        express={str(b.bot_id): b for b in bots},
        bitrix24={p.member_id: p for p in parsed.bitrix24},
        generic={g.tenant_id: g for g in tenants},
        secrets=present,
        disabled=tuple(disabled),
        b24_apps=_b24_apps(parsed.bitrix24, b24_secrets),
    )


def _b24_apps(portals: tuple[Bitrix24Portal, ...], secrets: dict[str, str]) -> Apps:
    """One `App` per client id: the portals and domains of every entry naming it (a disabled one, whose
    secret is not set, refuses installs: logged by `Apps.of`)."""
    by_client: dict[str, list[Bitrix24Portal]] = {}
    for portal in portals:
        by_client.setdefault(portal.client_id, []).append(portal)
    return Apps.of(
        App(
            client_id=client_id,
            client_secret=secrets.get(entries[0].client_secret_env, ""),
            member_ids=frozenset(p.member_id.lower() for p in entries),
            domains=frozenset(normalise_domain(d) for p in entries for d in p.portal_domains),
            desk_id=entries[0].desk,
            default_track=entries[0].track,
            bot_ids=tuple(b for p in entries for b in p.bot_ids),
        )
        for client_id, entries in by_client.items()
    )


def _secret_names(parsed: TenantFile) -> list[str]:
    return [b.secret_env for b in parsed.express] + [g.api_key_env for g in parsed.generic]
