"""Builders for SLA tests: lifecycle events, test rules (always-open calendar, second-sized targets)
and a driver that folds events through the decider like the service does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ticketflow.calendar import BusinessCalendar, CalendarSpec
from ticketflow.contracts import ticket_events as te
from ticketflow.contracts.values import ChatRef, Requester
from ticketflow.deskconfig import load_desks
from ticketflow.sla.adapters.desk_rules import DeskRules
from ticketflow.sla.domain import Decision, Emitted, TicketSla, advance, decide, evolve
from ticketflow.sla.domain.clocks import Clock
from ticketflow.sla.domain.policies import Calendar, Policy, RulesError

BOX = "bitrix24-box"
DESKS = DeskRules(load_desks())
# Monday 2025-03-03 11:00 Moscow (08:00 UTC): the Bitrix24 box desk is open 10:00-19:00 MSK.
MONDAY_11_MSK = int(datetime(2025, 3, 3, 8, 0, tzinfo=UTC).timestamp())
ALWAYS_OPEN = BusinessCalendar(
    CalendarSpec.from_text("UTC", {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
)


def ts(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a Moscow wall-clock time (UTC+3 all year)."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) - 3 * 3600


@dataclass
class FakeRules:
    """Second-sized targets on an always-open calendar (e2e tests run in seconds)."""

    first_response: int | None = 10
    next_response: int | None = 10
    resolution: int | None = 40
    warnings: tuple[float, ...] = (0.5, 0.75, 0.9)
    recalculation: str = "keep_elapsed"
    calendar_broken: bool = False
    by_priority: dict[str, int] = field(default_factory=dict)  # resolution seconds per priority
    queue_tracks: dict[str, str] = field(default_factory=dict)  # queue id -> the track it serves
    calendar_tag: str = "always-open"  # what calendar_version answers (change it: a config change)
    forgotten: tuple[str, ...] = ()  # calendar versions calendar_of_version does not know

    def has_sla(self, desk_id: str, track_id: str) -> bool:
        if desk_id == "nowhere":
            raise RulesError(f"unknown desk {desk_id!r}")
        return track_id != "client"

    def policy(self, desk_id: str, track_id: str, priority: str) -> Policy | None:
        if not self.has_sla(desk_id, track_id):
            return None
        return Policy(
            f"{desk_id}/{track_id}/{priority}",
            self.first_response,
            self.next_response,
            self.by_priority.get(priority, self.resolution) if self.resolution is not None else None,
            self.warnings,
            self.recalculation,  # type: ignore[arg-type]
            ("assignee",),
            ("queue:l2",),
        )

    def calendar(self, desk_id: str, track_id: str) -> Calendar:
        if self.calendar_broken:
            raise RulesError("calendar has no working time at all")
        return ALWAYS_OPEN

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        return self.queue_tracks.get(queue_id)

    def calendar_version(self, desk_id: str, track_id: str) -> str:
        return self.calendar_tag

    def fingerprint(self) -> str:
        targets = (self.first_response, self.next_response, self.resolution, self.warnings, self.recalculation)
        return repr((targets, sorted(self.by_priority.items()), sorted(self.queue_tracks.items()), self.calendar_tag))

    def calendar_of_version(self, version: str) -> Calendar | None:
        # Every version is the always-open calendar; a forgotten one (never stored) is unknown.
        return None if version in self.forgotten else ALWAYS_OPEN


def opened(ticket: uuid.UUID, desk: str = BOX, track: str = "box", priority: str = "normal") -> te.TicketOpened:
    return te.TicketOpened(
        ticket,
        desk,
        track,
        ChatRef("bitrix24", "member-1", "chat1"),
        Requester("u1", roles=("portal_admin",)),
        "help",
        "m1",
        datetime(2025, 1, 1, tzinfo=UTC),
        priority,  # type: ignore[arg-type]
    )


def passed(ticket: uuid.UUID) -> te.PreflightPassed:
    return te.PreflightPassed(ticket, "installation")


def replied(ticket: uuid.UUID, n: int = 1) -> te.AgentReplied:
    return te.AgentReplied(ticket, "agent-1", f"r{n}", "answer")


def customer(ticket: uuid.UUID, n: int = 1) -> te.CustomerMessageAdded:
    return te.CustomerMessageAdded(ticket, f"c{n}", "more", datetime(2025, 1, 1, tzinfo=UTC))


def waiting(ticket: uuid.UUID) -> te.WaitingOnCustomer:
    return te.WaitingOnCustomer(ticket, "need logs", "agent-1")


def resolved(ticket: uuid.UUID) -> te.TicketResolved:
    return te.TicketResolved(ticket, "fixed", "agent-1")


def reopened(ticket: uuid.UUID) -> te.TicketReopened:
    return te.TicketReopened(ticket, "still broken", "customer")


def priority(ticket: uuid.UUID, old: str, new: str) -> te.PriorityChanged:
    return te.PriorityChanged(ticket, old, new, "lead")  # type: ignore[arg-type]


def scripted(kind: str, ticket: uuid.UUID, n: int, current_priority: str, new_priority: str) -> te.TicketEvent:
    """The lifecycle event a property test's script step names (priority, customer, replied, waiting,
    resolved, reopened); `n` numbers the step's messages."""
    if kind == "priority":
        return priority(ticket, current_priority, new_priority)
    if kind == "customer":
        return customer(ticket, n)
    if kind == "replied":
        return replied(ticket, n)
    if kind == "waiting":
        return waiting(ticket)
    if kind == "resolved":
        return resolved(ticket)
    if kind == "reopened":
        return reopened(ticket)
    raise ValueError(f"unknown script step {kind!r}")


@dataclass
class Driver:
    """Folds (time, event) pairs like the service: decide each, keep what was emitted."""

    rules: object = DESKS
    state: TicketSla | None = None
    emitted: list[Emitted] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def given(self, events: Iterable[tuple[int, te.TicketEvent]]) -> Driver:
        for at, event in events:
            self.when(at, event)
        return self

    def when(self, at: int, event: te.TicketEvent) -> list[Emitted]:
        cause = uuid.uuid5(uuid.NAMESPACE_OID, f"{event!r}{at}{len(self.decisions)}")
        decision = decide(event, self.state, at, cause, self.rules)  # type: ignore[arg-type]
        return self._keep(decision)

    def tick(self, now: int) -> list[Emitted]:
        assert self.state is not None
        return self._keep(advance(self.state, now, self.rules))  # type: ignore[arg-type]

    def _keep(self, decision: Decision) -> list[Emitted]:
        self.decisions.append(decision)
        self.state = decision.state
        self.emitted.extend(decision.emitted)
        return decision.emitted

    def types(self) -> list[str]:
        return [type(e.event).__name__ for e in self.emitted]

    def replayed(self) -> tuple[Clock, ...]:
        """The clocks rebuilt from the SLA events alone (`evolve`): a replay must give the kept ones."""
        clocks: tuple[Clock, ...] = ()
        for emitted in self.emitted:
            clocks = evolve(clocks, emitted.event, emitted.at)
        return clocks
