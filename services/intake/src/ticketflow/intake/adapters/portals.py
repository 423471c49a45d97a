"""Bitrix24 portals' application lifecycle as intake sees it: install (verified, stored, bot registered),
every later event checked against the install's application token, uninstall.

The installs live in `ticketflow.bitrix24`'s table, shared with notifications and preflight. Each intake
process keeps a copy of an install for `TICKETFLOW_B24_INSTALL_TTL` seconds (5), so an ONAPPUNINSTALL
handled by another process, or an operator deleting the row, stops this one accepting the portal's events
within that time. An event the copy would refuse (no install, another token) is checked against the table
at once: the portal may have been (re)installed through another process."""

from __future__ import annotations

import logging
from typing import Any

from ticketflow.bitrix24 import (
    Bitrix24Error,
    BotProfile,
    Install,
    InstallClaim,
    InstallRefused,
    PortalRest,
    Unavailable,
    ensure_bot,
    verify_install,
)
from ticketflow.intake.platforms.bitrix24 import Bitrix24Event, check_bot, tokens_match
from ticketflow.intake.platforms.web import Problem

log = logging.getLogger("ticketflow.intake")


class Portals:
    """`bot`: the chat bot registered at install (None: `TICKETFLOW_INTAKE_B24_EVENTS_URL` is not set,
    so the bot cannot be told where to post its events; installs are stored without one)."""

    def __init__(self, rest: PortalRest, bot: BotProfile | None = None) -> None:
        self.rest = rest
        self.bot = bot

    async def verify(self, event: Bitrix24Event) -> Install:
        """The portal's install, if the event carries its application token (else 403) and is for one of
        the desk's bots or the bot registered at install (else 403 unknown_bot)."""
        install = await self.rest.installs.get(event.member_id)
        if install is None or not tokens_match(install.application_token, event.application_token):
            install = await self.rest.installs.get(event.member_id, fresh=True)  # installed since?
        if install is None:
            raise Problem(403, "portal_not_installed", f"portal {event.member_id!r} has not installed the app")
        if not tokens_match(install.application_token, event.application_token):
            raise Problem(403, "wrong_application_token", "auth[application_token] does not match the install")
        app = self.rest.apps.for_member(event.member_id)
        allowed = set(app.bot_ids if app else ()) | ({str(install.bot_id)} if install.bot_id is not None else set())
        check_bot(event, allowed)
        return install

    async def install(self, event: Bitrix24Event) -> dict[str, Any]:
        """Verify the install with the OAuth server, store it (replacing the portal's previous install),
        then register the chat bot if the portal does not have it. The answer names the bot's state."""
        claim = InstallClaim(event.member_id, event.domain, event.application_token, event.access_token,
                             event.refresh_token)  # fmt: skip
        try:
            install = await verify_install(claim, self.rest.apps.for_member(event.member_id), self.rest.oauth)
        except InstallRefused as refused:
            log.warning("Bitrix24 %s from portal %s (%s) refused: %s", event.name, event.member_id,
                        event.domain, refused)  # fmt: skip
            raise Problem(403, refused.reason, refused.detail) from refused
        except Unavailable as exc:  # ours to retry: nothing was stored, the portal may send it again
            log.warning("Bitrix24 %s from portal %s: the OAuth server cannot be asked: %s", event.name,
                        event.member_id, exc)  # fmt: skip
            raise Problem(503, "oauth_unavailable", str(exc)) from exc
        await self.rest.installs.save(install)
        log.info("Bitrix24 portal %s installed application %s at %s", install.member_id, install.client_id,
                 install.domain)  # fmt: skip
        return {"result": "installed", **await self._bot(install)}

    async def _bot(self, install: Install) -> dict[str, Any]:
        if self.bot is None:
            return {"bot": "not registered: TICKETFLOW_INTAKE_B24_EVENTS_URL is not set"}
        try:
            bot_id, registered = await ensure_bot(self.rest, install.member_id, self.bot)
        except Bitrix24Error as exc:  # the install stands; the next install or update tries again
            log.warning("Bitrix24 portal %s: the chat bot could not be registered: %s", install.member_id, exc)
            return {"bot": f"not registered: {exc}"}
        await self.rest.installs.set_bot(install.member_id, bot_id)
        return {"bot": "registered" if registered else "present", "bot_id": bot_id}

    async def uninstall(self, event: Bitrix24Event) -> None:
        """ONAPPUNINSTALL (already verified against the install): the install and its tokens are deleted."""
        await self.rest.installs.delete(event.member_id)
        log.info("Bitrix24 portal %s uninstalled the application: its install is deleted", event.member_id)

    async def bot_deleted(self, event: Bitrix24Event) -> None:
        """ONIMBOTDELETE: the portal has no bot now; the next install or update registers it again."""
        await self.rest.installs.set_bot(event.member_id, None)
