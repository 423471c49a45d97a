"""What the chaos run counts after each fault, with the load drained: the outage tests' census per
conversation (tests/outage/outage_load.py: lost, duplicates, dead letters, the ledger) and around it the
broker's and the store's counts: records published on each topic and consumed by each service
(tests/support/system_offsets.py), SLA timers fired (fired twice, or due
and not fired), every ticket's stream folded by the lifecycle decider.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from outage_load import Census, Conversation, _census
from support.system import ChatPlatforms
from support.system_offsets import CONSUMERS, Offsets

from ticketflow.eventstore import EventStore
from ticketflow.lifecycle.decider import fold

TIMER_EVENTS = ("SlaWarning", "SlaBreached")
TIMER_SLACK = timedelta(seconds=15)  # a timer due this long ago must have fired


@dataclass
class Timers:
    fired: int = 0  # SlaWarning + SlaBreached stored
    twice: list[str] = field(default_factory=list)  # a (clock, level) fired more than once
    missed: list[str] = field(default_factory=list)  # deadline passed, neither met (paused, cancelled) nor breached


async def timers(conn: Any, tickets: list[str], now: datetime) -> Timers:
    streams = [f"sla-{t.removeprefix('ticket-')}" for t in tickets]
    rows = await conn.fetch(
        "SELECT stream_id, event_type, data->>'target' AS target, data->>'level' AS level,"
        " (data->>'deadline')::timestamptz AS deadline FROM events WHERE stream_id = ANY($1::text[])",
        streams,
    )
    found = Timers()
    fired = Counter((r["stream_id"], r["event_type"], r["target"], r["level"]) for r in rows
                    if r["event_type"] in TIMER_EVENTS)  # fmt: skip
    found.fired = sum(fired.values())
    found.twice = [f"{key}: {n} times" for key, n in fired.items() if n > 1]
    deadline: dict[tuple[str, str], datetime] = {}
    ended: set[tuple[str, str]] = set()
    for r in rows:
        clock = (r["stream_id"], r["target"])
        if r["event_type"] in ("SlaClockStarted", "SlaClockResumed", "SlaRecalculated") and r["deadline"]:
            deadline[clock] = r["deadline"]
        elif r["event_type"] in ("SlaMet", "SlaClockCancelled", "SlaClockPaused", "SlaBreached"):
            ended.add(clock)
    found.missed = [f"{clock} due {due:%H:%M:%S}" for clock, due in deadline.items()
                    if clock not in ended and due < now - TIMER_SLACK]  # fmt: skip
    return found


@dataclass
class PhaseCount:
    """One fault's row: what the load put in, and what the system made of it."""

    fault: str
    accepted: int  # conversations whose first message was accepted (webhook 202 or chat.inbound acked)
    messages: int  # accepted messages (first ones and follow-ups)
    refused: int  # webhook posts not answered 202 (each sent again until it was)
    census: Census
    offsets: Offsets
    published_delta: dict[str, int]
    consumed_delta: dict[str, int]
    timers: Timers
    folded: int
    fold_errors: list[str]
    seconds: float

    @property
    def stored(self) -> int:
        return self.accepted - len([x for x in self.census.lost if "tickets opened" in x])

    def row(self) -> dict[str, Any]:
        ledger = self.census.ledger
        return {
            "fault": self.fault, "accepted": self.messages, "refused": self.refused,
            "conversations": self.accepted, "stored": self.stored,
            "published ticket.events": self.published_delta.get("ticket.events", 0),
            **{f"consumed {s}": self.consumed_delta.get(s, 0) for s in CONSUMERS},
            "timers fired": self.timers.fired, "delivered": ledger.get("delivered", 0),
            "unknown outcome": ledger.get("unknown", 0), "duplicates": len(self.census.duplicates) +
            len(self.timers.twice), "lost": len(self.census.lost) + len(self.timers.missed),
            "dead letters": len(self.census.dead_letters), "fold errors": len(self.fold_errors),
        }  # fmt: skip


async def fold_streams(store: EventStore, tickets: list[str]) -> tuple[int, list[str]]:
    """Every ticket's stream through the lifecycle decider's fold; the streams that would not fold."""
    errors: list[str] = []
    for stream in tickets:
        try:
            fold([envelope.event for envelope in await store.read_stream(stream)])  # type: ignore[misc]
        except Exception as error:  # any failure to fold is the finding
            errors.append(f"{stream}: {error!r}")
    return len(tickets), errors


async def count_phase(
    fault: str, load: Any, everything: list[Conversation], platforms: ChatPlatforms, store: EventStore,
    before: Offsets, after: Offsets, fired_before: int, started: float,
) -> PhaseCount:  # fmt: skip
    """This fault's conversations (`load.accepted`) counted; the timers of every ticket so far
    (`everything`): a timer of an earlier fault's ticket may have fallen due during this one."""
    conversations = load.accepted
    async with store.pool.acquire() as conn:
        census = await _census(load, platforms, conversations, conn)
        tickets = await tickets_of(conn, conversations)
        fired = await timers(conn, await tickets_of(conn, everything), datetime.now(UTC))
    fired.fired -= fired_before
    folded, errors = await fold_streams(store, tickets)
    published = {_generic(t): after.published.get(t, 0) - before.published.get(t, 0) for t in after.published}
    consumed = {s: after.consumed[s] - before.consumed.get(s, 0) for s in after.consumed}
    messages = len(conversations) + sum(c.followed_up for c in conversations)
    return PhaseCount(fault, len(conversations), messages, len(load.refused), census, after, published, consumed,
                      fired, folded, errors, time.monotonic() - started)  # fmt: skip


async def tickets_of(conn: Any, conversations: list[Conversation]) -> list[str]:
    rows = await conn.fetch(
        "SELECT stream_id FROM events WHERE event_type = 'TicketOpened'"
        " AND data->'chat'->>'conversation_id' = ANY($1::text[])",
        [str(c.chat) for c in conversations],
    )
    return [r["stream_id"] for r in rows]


def _generic(topic: str) -> str:
    """`ticket.events.chaos-1a2b3c4d` -> `ticket.events`."""
    return topic.rsplit(".", 1)[0]


def markdown(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)
