"""The desk's chat bot on a portal: registered at install when it is missing (`imbot.bot.list`, then
`imbot.register`), so a portal needs no hand configuration beyond the desk file. The bot is found by its
`CODE` (unique per portal), so a reinstall or a second intake process finds the bot registered before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ticketflow.bitrix24.errors import BadAnswer
from ticketflow.bitrix24.rest import PortalRest


@dataclass(frozen=True)
class BotProfile:
    handler_url: str  # where the portal posts the bot's events: intake's POST /bitrix24/events
    code: str = "ticketflow_support"
    name: str = "Техподдержка"
    work_position: str = "Support desk bot"


def _bots(result: Any) -> list[dict[str, Any]]:
    """imbot.bot.list answers `{"<id>": {"ID": .., "CODE": .., ...}}` (an empty list when there are none)."""
    items = result.values() if isinstance(result, dict) else result if isinstance(result, list) else None
    if items is None:
        raise BadAnswer("bad_answer", f"imbot.bot.list: {str(result)[:120]}")
    return [bot for bot in items if isinstance(bot, dict)]


async def ensure_bot(rest: PortalRest, member_id: str, profile: BotProfile) -> tuple[int, bool]:
    """The bot's id on the portal, and whether it was registered now."""
    for bot in _bots(await rest.call(member_id, "imbot.bot.list")):
        if str(bot.get("CODE")) == profile.code:
            return int(bot["ID"]), False
    registered = await rest.call(
        member_id,
        "imbot.register",
        {
            "CODE": profile.code,
            "TYPE": "B",
            "OPENLINE": "N",
            "EVENT_MESSAGE_ADD": profile.handler_url,
            "EVENT_WELCOME_MESSAGE": profile.handler_url,
            "EVENT_BOT_DELETE": profile.handler_url,
            "PROPERTIES": {"NAME": profile.name, "WORK_POSITION": profile.work_position},
        },
    )
    if isinstance(registered, bool) or not isinstance(registered, int | str) or not str(registered).isdigit():
        raise BadAnswer("bad_answer", f"imbot.register: {str(registered)[:120]}")
    return int(registered), True
