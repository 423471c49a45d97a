"""The desks' Bitrix24 applications (deskconfig `[[platforms.bitrix24]]`): client id, client secret (read
from the environment variable the desk names), the portals (member_id) and domains each may be installed
on, and the bots the desk lists. An application whose secret is not set is kept but disabled: its installs
are refused and its tokens are not renewed, and the start-up log says so."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ticketflow.deskconfig import DeskRegistry

log = logging.getLogger("ticketflow.bitrix24")


def normalise_domain(value: str) -> str:
    """`portal.example.ru`, `https://Portal.example.ru/` -> `portal.example.ru` (host[:port], lower case)."""
    text = value.strip()
    if "://" not in text:
        text = f"https://{text}"
    return urlsplit(text).netloc.lower().rstrip(".")


@dataclass(frozen=True)
class App:
    client_id: str
    client_secret: str = field(repr=False)  # "": the desk's variable is not set (disabled)
    member_ids: frozenset[str]
    domains: frozenset[str]
    desk_id: str = ""
    default_track: str = ""
    bot_ids: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.client_secret)


@dataclass(frozen=True)
class Apps:
    """Look-ups by portal (`member_id`, lower case) and by application (`client_id`)."""

    by_member: Mapping[str, App] = field(default_factory=dict)
    by_client: Mapping[str, App] = field(default_factory=dict)

    @classmethod
    def of(cls, apps: Iterable[App]) -> Apps:
        listed = list(apps)
        for app in listed:
            if not app.enabled:
                log.warning("Bitrix24 application %s is disabled: its client secret is not set", app.client_id)
        return cls({m: a for a in listed for m in a.member_ids}, {a.client_id: a for a in listed})

    def for_member(self, member_id: str) -> App | None:
        return self.by_member.get(member_id.lower())


def apps_from_desks(registry: DeskRegistry, env: Mapping[str, str] | None = None) -> Apps:
    environ = os.environ if env is None else env
    return Apps.of(
        App(
            client_id=app.client_id,
            client_secret=environ.get(app.client_secret_env, ""),
            member_ids=frozenset(m.lower() for m in app.member_ids),
            domains=frozenset(normalise_domain(d) for d in app.portal_domains),
            desk_id=desk.id,
            default_track=app.default_track,
            bot_ids=app.bot_ids,
        )
        for desk in registry.desks.values()
        for app in desk.platforms.bitrix24
    )
