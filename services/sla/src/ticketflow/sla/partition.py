"""What the engine (`app.SlaEngine`) keeps per owned partition: ticket states, the timer slot of each
ticket (timer keys are partition << 32 | slot, ints that hash in C) with a free list, the armed timer
handles, what the next checkpoint writes, and until it goes live the timers its checkpoint stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ticketflow.sla.adapters.checkpoints import TimerArray
from ticketflow.sla.domain.state import TicketSla


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
    # From the checkpoint until the partition goes live: the restored states and their stored timer rows,
    # and the tickets decided meanwhile (their stored timers no longer apply).
    restored: tuple[list[TicketSla], TimerArray] | None = None
    replayed: set[uuid.UUID] = field(default_factory=set)

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
