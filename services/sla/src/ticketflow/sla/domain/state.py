"""What the SLA keeps of one ticket (`TicketSla`), what a decision emits (`Emitted`), and the decision
itself (`Decision`); plus the two helpers every part of the decider uses: deterministic event ids and
epoch seconds as datetimes. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from ticketflow.contracts import sla_events as sla
from ticketflow.contracts.ids import deterministic_event_id
from ticketflow.contracts.values import SlaTarget
from ticketflow.sla.domain.clocks import Clock


class TicketSla(msgspec.Struct, frozen=True, gc=False):
    # gc=False (also on Clock and Policy): a million resident tickets stay out of the cyclic GC's
    # passes; these structs hold only scalars, strings, UUIDs and tuples of clocks, never a cycle.
    ticket_id: uuid.UUID
    desk_id: str
    track_id: str
    priority: str
    status: str = "opened"  # opened, active, waiting, resolved, closed, excluded (no SLA)
    clocks: tuple[Clock, ...] = ()
    version: int = 0  # last ticket-stream version applied (duplicates and gaps are found with it)
    sla_version: int = 0  # head of the ticket's SLA stream as this service knows it
    calendar: str = ""  # `Rules.calendar_version` the clocks count in ("": not recorded yet)
    # Added later, with defaults, so checkpoints written before still decode. Status may also be
    # "referred" (out of scope for good, unlike "excluded": no policy now, clocks on a move into SLA).
    held: str = "active"  # while excluded: the lifecycle status followed (active, waiting, resolved)
    replied: bool = False  # an agent replied: clocks started later (excluded -> SLA) start no first response
    # An undone automatic merge: when preflight had merged it (epoch s; 0: unknown). Its clocks count
    # from then, as if it had never been merged (`MergeUndone`).
    clocks_from: int = 0
    # Desk configuration changes applied to this ticket's clocks, counted: a change's events take the count
    # in their ids, so a change back and forth (A -> B -> A -> B) records every step (issue 16).
    config_changes: int = 0

    def clock(self, target: SlaTarget) -> Clock | None:
        for c in self.clocks:
            if c.target == target:
                return c
        return None

    @property
    def policy_key(self) -> tuple[str, str, str]:
        """What selects the policy and the calendar besides the desk: a change re-arms the timers."""
        return (self.track_id, self.priority, self.calendar)


class Emitted(msgspec.Struct, frozen=True, gc=False):  # gc=False: see TicketSla
    event_id: uuid.UUID
    event: sla.SlaEvent
    at: int  # epoch seconds, becomes the envelope's occurred_at


@dataclass
class Decision:
    state: TicketSla | None
    emitted: list[Emitted] = field(default_factory=list)
    rejected: str | None = None  # wrong input: log and dead-letter it
    notes: list[str] = field(default_factory=list)  # worth a log line, not a dead letter
    timers: dict[SlaTarget, tuple[int, int]] | None = None  # `firings(state)` when already known (timer path)


# The decider's event ids: deterministic, so a replay or a crash after publishing appends nothing twice.
event_id_of = deterministic_event_id


@lru_cache(maxsize=1 << 16)
def utc(ts: int) -> datetime:
    """Epoch seconds as an aware datetime (cached: deadlines and event times repeat a lot)."""
    return datetime.fromtimestamp(ts, UTC)


def timerless(state: TicketSla) -> bool:
    """No timer runs for it: before preflight, excluded, finished, or without clocks."""
    return state.status in ("excluded", "closed", "opened") or not state.clocks
