"""Text a person wrote stays text on every channel: a platform's markup in it is neutralised before it
goes into a template (only the variables are escaped; the templates are ours).

Bitrix24 chat reads BBCode (`[b]`, `[url=...]`, `[user=1]`, ...) in a message: a customer's title or an
agent's reply containing "[url=https://evil]" would become a link. A WORD JOINER (U+2060, zero width,
invisible) after every "[" keeps the parser from seeing a tag, while the reader sees the same text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ticketflow.notifications.domain.model import Channel

WORD_JOINER = "\u2060"


def escape_bbcode(text: str) -> str:
    return text.replace("[", "[" + WORD_JOINER)


# The channels whose messages are read as markup, and how to keep text from being read as such.
ESCAPES: dict[Channel, Callable[[str], str]] = {Channel.BITRIX24: escape_bbcode}


def escaped(variables: Any, escape: Callable[[str], str]) -> Any:
    """Every string in `variables` (dicts and lists included) passed through `escape`."""
    if isinstance(variables, str):
        return escape(variables)
    if isinstance(variables, dict):
        return {key: escaped(value, escape) for key, value in variables.items()}
    if isinstance(variables, list | tuple):
        return [escaped(value, escape) for value in variables]
    return variables
