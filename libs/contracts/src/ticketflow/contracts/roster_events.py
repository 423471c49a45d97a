"""Agent roster events (stream `agent-<id>`): routing rebuilds its roster from these."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

AgentStatus = Literal["online", "away", "offline"]


class _AgentEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    schema_version: ClassVar[int] = 1
    agent_id: str


class AgentJoinedQueue(_AgentEvent, tag="AgentJoinedQueue", frozen=True):
    queue_id: str
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("ru",)
    capacity: int = 5


class AgentLeftQueue(_AgentEvent, tag="AgentLeftQueue", frozen=True):
    queue_id: str


class AgentStatusChanged(_AgentEvent, tag="AgentStatusChanged", frozen=True):
    status: AgentStatus


class AgentProfileUpdated(_AgentEvent, tag="AgentProfileUpdated", frozen=True):
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    capacity: int


class AgentShiftSet(_AgentEvent, tag="AgentShiftSet", frozen=True):
    """The agent's working hours: 'HH:MM-HH:MM' per weekday ('mon'..'sun'), in `timezone`.
    Empty `weekly` means no shift limit (the status alone decides)."""

    timezone: str = "Europe/Moscow"
    weekly: dict[str, tuple[str, ...]] = {}
    holiday_country: str | None = None


AgentEvent = AgentJoinedQueue | AgentLeftQueue | AgentStatusChanged | AgentProfileUpdated | AgentShiftSet
