"""Bitrix24 application installs shared by intake (which verifies and stores them), notifications and
preflight (which call portals with their tokens). See docs/bitrix24.md."""

from ticketflow.bitrix24.apps import App, Apps, apps_from_desks, normalise_domain
from ticketflow.bitrix24.bots import BotProfile, ensure_bot
from ticketflow.bitrix24.errors import (
    BadAnswer,
    Bitrix24Error,
    ForbiddenAddress,
    InstallRefused,
    NotInstalled,
    RestError,
    TokenRefreshRefused,
    Unavailable,
)
from ticketflow.bitrix24.http import GuardedHttp
from ticketflow.bitrix24.installs import Install, Installs
from ticketflow.bitrix24.oauth import AppInfo, Grant, OAuthServer
from ticketflow.bitrix24.rest import PortalRest
from ticketflow.bitrix24.verify import InstallClaim, verify_install

__all__ = [
    "App",
    "AppInfo",
    "Apps",
    "BadAnswer",
    "Bitrix24Error",
    "BotProfile",
    "ForbiddenAddress",
    "Grant",
    "GuardedHttp",
    "Install",
    "InstallClaim",
    "InstallRefused",
    "Installs",
    "NotInstalled",
    "OAuthServer",
    "PortalRest",
    "RestError",
    "TokenRefreshRefused",
    "Unavailable",
    "apps_from_desks",
    "ensure_bot",
    "normalise_domain",
    "verify_install",
]
