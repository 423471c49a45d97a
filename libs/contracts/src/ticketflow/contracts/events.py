"""The one tagged union of every stored event, and the registry of types by name."""

from __future__ import annotations

from typing import Any

import msgspec

from ticketflow.contracts.notification_events import NotificationEvent
from ticketflow.contracts.roster_events import AgentEvent
from ticketflow.contracts.sla_events import SlaEvent
from ticketflow.contracts.ticket_events import TicketEvent

Event = TicketEvent | SlaEvent | AgentEvent | NotificationEvent


def _members(union: Any) -> tuple[type[msgspec.Struct], ...]:
    return tuple(union.__args__)


EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in _members(Event)
}


def event_type_name(event: msgspec.Struct) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def schema_version_of(event_type: str) -> int:
    return int(getattr(EVENT_TYPES[event_type], "schema_version", 1))
