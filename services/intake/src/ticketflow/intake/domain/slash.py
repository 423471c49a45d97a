"""Requester slash commands in a chat message. Pure.

`/ticket [text]` opens a new ticket even if one is open, `/status` answers with the current ticket's
status, `/close` closes (or resolves) the current ticket on the requester's behalf, `/recheck` is
recorded as a message on the current ticket (preflight reacts to it). Any other `/word` is text."""

from __future__ import annotations

from enum import StrEnum


class Slash(StrEnum):
    TICKET = "/ticket"
    STATUS = "/status"
    CLOSE = "/close"
    RECHECK = "/recheck"


def parse_slash(text: str) -> tuple[Slash | None, str]:
    """(command, rest). `/Ticket@supportbot printer broken` -> (TICKET, "printer broken")."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None, text
    head, _, rest = stripped.partition(" ")
    name = head.split("@", 1)[0].lower()
    try:
        return Slash(name), rest.strip()
    except ValueError:
        return None, text  # an unknown "/word" is ordinary text
