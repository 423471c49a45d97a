"""The faults of the chaos run, one at a time under load, and the run that counts after each.

A phase: the load starts (BotX webhooks to intake, records on `chat.inbound`, agents replying); `lead_s`
later the fault begins; `hold_s` later it ends (the service started again, the server or broker started
on the same port and data, the destination answering again); the load runs out; the run waits until
nothing is lost any more, every consumer has caught up and the chats are quiet (at most `settle_s`), then
counts (chaos_census.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chaos_census import TIMER_SLACK, PhaseCount, Timers, count_phase, tickets_of, timers
from chaos_load import ChaosLoad
from chaos_system import SEND_DEADLINE_S, ChaosSystem
from fakes.asgi import Fault, Faults
from outage_load import Conversation, _census
from support.system_offsets import Offsets, offsets

from ticketflow.eventstore import EventStore

Step = Callable[[ChaosSystem], Awaitable[None]]


@dataclass(frozen=True)
class Chaos:
    name: str
    begin: Step
    end: Step
    hold_s: float  # from the fault's beginning to its end


def kill(service: str, down_s: float = 3.0) -> Chaos:
    async def begin(cs: ChaosSystem) -> None:
        await asyncio.to_thread(cs.system[service].kill)  # SIGKILL

    async def end(cs: ChaosSystem) -> None:
        await cs.system[service].restart()

    return Chaos(f"SIGKILL {service}", begin, end, down_s)


def postgres_down(down_s: float) -> Chaos:
    async def begin(cs: ChaosSystem) -> None:
        await asyncio.to_thread(cs.cluster.stop)  # fast: every session ends

    async def end(cs: ChaosSystem) -> None:
        await asyncio.to_thread(cs.cluster.start)

    return Chaos(f"PostgreSQL stopped {down_s:.0f} s", begin, end, down_s)


def broker_down(down_s: float) -> Chaos:
    async def begin(cs: ChaosSystem) -> None:
        await asyncio.to_thread(cs.kafka.stop)

    async def end(cs: ChaosSystem) -> None:
        await asyncio.to_thread(cs.kafka.start)

    return Chaos(f"Kafka broker stopped {down_s:.0f} s", begin, end, down_s)


def destination_slow_then_dead(slow_s: float, dead_s: float) -> Chaos:
    """BotX answers after the send deadline for `slow_s` (the message is shown; the answer comes too late),
    then answers every request 503 for `dead_s`."""

    async def begin(cs: ChaosSystem) -> None:
        cs.platforms.botx.answer_delay = SEND_DEADLINE_S + 2
        await asyncio.sleep(slow_s)
        cs.platforms.botx.answer_delay = 0.0
        cs.platforms.botx.faults.add(Fault(503, {"status": "error", "reason": "server_error"}), 10**7)

    async def end(cs: ChaosSystem) -> None:
        cs.platforms.botx.faults = Faults()

    return Chaos(f"BotX slow {slow_s:.0f} s, then dead {dead_s:.0f} s", begin, end, slow_s + dead_s)


@dataclass(frozen=True)
class Plan:
    faults: tuple[Chaos, ...]
    webhooks_per_s: float
    inbound_per_s: float
    lead_s: float = 5.0  # load before the fault
    tail_s: float = 8.0  # load after it
    settle_s: float = 300.0


def full_plan() -> Plan:
    kills = tuple(kill(s) for s in ("intake", "preflight", "routing", "sla", "notifications", "projector"))
    return Plan((*kills, postgres_down(35), broker_down(30), destination_slow_then_dead(20, 60)), 5.0, 1.0)


def short_plan() -> Plan:
    """What `make test` runs: fewer faults, shorter, real."""
    return Plan((kill("intake"), kill("notifications"), postgres_down(10), broker_down(10),
                 destination_slow_then_dead(6, 15)), 4.0, 1.0, lead_s=4, tail_s=5)  # fmt: skip


@dataclass
class ChaosRun:
    cs: ChaosSystem
    store: EventStore
    plan: Plan
    everything: list[Conversation] = field(default_factory=list)
    fired: int = 0
    reported: set[str] = field(default_factory=set)  # timer findings already counted in a row
    counts: list[PhaseCount] = field(default_factory=list)

    async def phase(self, chaos: Chaos) -> PhaseCount:
        cs, plan = self.cs, self.plan
        started = time.monotonic()
        before = await offsets(cs.bootstrap, cs.topics, self.store.pool)
        load = ChaosLoad(cs.system["intake"].url, cs.topics, cs.bootstrap, cs.cluster.dsn)
        seconds = plan.lead_s + chaos.hold_s + plan.tail_s
        stop_agents = asyncio.Event()
        agents = asyncio.create_task(load.agents(stop_agents))
        posting = asyncio.gather(load.conversations_at(plan.webhooks_per_s, seconds),
                                 load.inbound_at(plan.inbound_per_s, seconds))  # fmt: skip
        await asyncio.sleep(plan.lead_s)
        begun = time.monotonic()
        await chaos.begin(cs)
        await asyncio.sleep(max(0.0, begun + chaos.hold_s - time.monotonic()))
        await chaos.end(cs)
        await posting
        settle_by = time.monotonic() + plan.settle_s  # both waits together: a fault that loses something costs one
        after = await self.settled(load, settle_by)  # the agents answer every ticket routed meanwhile
        stop_agents.set()
        await agents
        after = await self.settled(load, settle_by)
        self.everything += load.accepted
        count = await count_phase(chaos.name, load, self.everything, cs.platforms, self.store, before, after,
                                  self.fired, started)  # fmt: skip
        self.fired += count.timers.fired
        # The timers are checked over every ticket so far: each finding is reported with the fault it showed in.
        count.timers.twice = [x for x in count.timers.twice if x not in self.reported]
        count.timers.missed = [x for x in count.timers.missed if x not in self.reported]
        self.reported.update(count.timers.twice + count.timers.missed)
        self.counts.append(count)
        return count

    async def settled(self, load: ChaosLoad, deadline: float) -> Offsets:
        """Once nothing of this load is lost, every consumer caught up and the chats stopped changing (or
        at `deadline`, monotonic)."""
        last, quiet = -1, 0
        while True:
            now = await offsets(self.cs.bootstrap, self.cs.topics, self.store.pool)
            result = None
            if not any(now.lag.values()):
                async with self.store.pool.acquire() as conn:
                    result = await _census(load, self.cs.platforms, load.accepted, conn)
            received = len(self.cs.platforms.botx.received)
            quiet, last = (quiet + 1, last) if received == last else (0, received)
            if (result is not None and not result.lost and quiet >= 3) or time.monotonic() > deadline:
                return now
            await asyncio.sleep(2)

    async def last_timers(self, first_response_s: float) -> Timers:
        """Once the last ticket's first-response timer is due (and the slack), every ticket's timers."""
        await asyncio.sleep(first_response_s + TIMER_SLACK.total_seconds() + 5)
        async with self.store.pool.acquire() as conn:
            return await timers(conn, await tickets_of(conn, self.everything), datetime.now(UTC))
