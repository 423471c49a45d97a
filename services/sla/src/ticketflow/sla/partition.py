"""What the engine keeps per partition: ticket states, timer handles, checkpoint bookkeeping."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ticketflow.sla.domain import TicketSla


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one partition from one poll, in offset order."""

    partition: int
    offsets: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes]


@dataclass
class Partition:
    number: int
    tickets: dict[uuid.UUID, TicketSla]
    next_offset: int
    catch_up_to: int
    live: bool = False
    configuration: str = ""  # the `Rules.fingerprint` every kept state is consistent with ('': unknown)
    dirty: bool = False  # offset or states moved since the last checkpoint
    changed: set[uuid.UUID] = field(default_factory=set)  # tickets whose state the next checkpoint writes
    removed: set[uuid.UUID] = field(default_factory=set)  # tickets pruned since the last checkpoint
    ids: list[uuid.UUID | None] = field(default_factory=list)
    slots: dict[uuid.UUID, int] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)  # slots of pruned tickets, reused
    armed: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)  # -> handle, level, due

    def slot(self, ticket: uuid.UUID) -> int:
        slot = self.slots.get(ticket)
        if slot is None:
            if self.free:
                slot = self.free.pop()
                self.ids[slot] = ticket
            else:
                slot = len(self.ids)
                self.ids.append(ticket)
            self.slots[ticket] = slot
        return slot

    def release(self, ticket: uuid.UUID) -> None:
        """Give a pruned ticket's slot back (its timers are cancelled by the caller)."""
        slot = self.slots.pop(ticket, None)
        if slot is not None:
            self.ids[slot] = None
            self.free.append(slot)


@dataclass
class Stats:
    events: int = 0
    emitted: int = 0
    fired: int = 0
    dead_letters: int = 0
    armed_latency_ms: list[float] = field(default_factory=list)  # per batch: fetched -> timers armed
