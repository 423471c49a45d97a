"""Two or more routing instances, one deciding: a leader lock with hot stand-bys, and terms of leadership.

Round-robin turns and loads are global, so decisions must be serial: partitioning tickets between
instances would break the strategies' promises (two instances would each think an agent has room).
So one instance leads and the others stand by:

- the leader holds `ticketflow.eventstore.leadership` (a PostgreSQL advisory lock on a connection it
  keeps) and is the only one that joins the Kafka consumer group and stores decisions;
- a stand-by does not consume Kafka; it follows the event store's global log (`LogFollower`), so its
  state is warm, and polls the lock. When the leader dies its connection closes, the lock is free,
  the stand-by takes it and a term begins: it reads the rest of the log up to the head, builds the
  application service on that state, routes what was left undecided, and only then creates and starts
  its Kafka subscribers (records from the last committed offsets come again and are skipped: their
  events are already in the state, their decisions already stored). Nothing is consumed before the
  state is complete, so there is no "not ready yet" handshake;
- every flush stores inside a transaction that checks the leader's epoch (`adapters.fenced_store`): a
  leader that lost the lock without knowing cannot store a decision after a new leader took over. A
  leader whose store is fenced, or whose lock session is gone, ends its term (its subscribers commit
  what is stored and leave the group) and stands by again.

This module is routing's own (no other service elects a leader): the runtime's background tasks run
`Leader.run` (the terms) and `Leader.clock` (reassignments, shifts beginning).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY

from ticketflow.eventstore import Checkpoint, EventStore, Store
from ticketflow.eventstore.leadership import Leadership, LeadershipLost
from ticketflow.messaging.outages import OUTAGES
from ticketflow.messaging.subscriptions import sleep_or_stop
from ticketflow.routing.adapters.fenced_store import FencedStore
from ticketflow.routing.app import Routing
from ticketflow.routing.consumer import Subscriptions
from ticketflow.routing.domain.config import Desks
from ticketflow.routing.domain.state import RoutingState, apply_envelope
from ticketflow.routing.metrics import RoutingMetrics
from ticketflow.routing.settings import RoutingSettings
from ticketflow.runtime.gc_tuning import tune_gc as runtime_tune_gc

log = logging.getLogger("ticketflow.routing")
WAITS_FOR_NEXT_TICK: tuple[type[BaseException], ...] = (*OUTAGES, LeadershipLost)


class LogFollower:
    """Routing state folded from the global log, read on from where it stopped."""

    def __init__(self, store: Store, desks: Desks) -> None:
        self.store = store
        self.state = RoutingState(desks)
        self.checkpoint = Checkpoint()

    async def read_available(self, page: int = 5000) -> int:
        """Fold what the log shows now (a stand-by's step); returns how many events were read."""
        count = 0
        while True:
            batch = await self.store.read_all(self.checkpoint, page)
            for stored in batch:
                apply_envelope(self.state, stored.envelope)
            if batch:
                self.checkpoint = batch[-1].checkpoint
            count += len(batch)
            if len(batch) < page:
                return count

    async def catch_up(self, page: int = 5000, patience: float = 60.0) -> None:
        """Fold every event committed before this call. The log hides transactions newer than the
        oldest one still open on the server, so an empty page is not the end: wait for the head."""
        target = await self.store.head()
        deadline = asyncio.get_running_loop().time() + patience
        while self.checkpoint < target:
            if not await self.read_available(page):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"routing rebuild: the event log is still held back after {patience}s")
                await asyncio.sleep(0.05)


async def stand_by(leadership: Leadership, follower: LogFollower, stop: asyncio.Event, poll: float = 1.0) -> bool:
    """Follow the log until this process leads (True) or is stopped (False)."""
    reported = False
    while not await leadership.try_acquire():
        if not reported:
            log.info("routing stands by: another instance leads; following the event log")
            reported = True
        await follower.read_available()
        try:
            await asyncio.wait_for(stop.wait(), poll)
        except TimeoutError:
            continue
        return False
    return True


def tune_gc(thresholds: tuple[int, ...]) -> None:
    """The rebuilt state is long-lived: keep full collections from rescanning it (freeze). Routing
    allocates a few objects per record and keeps one record per open ticket; with the default
    threshold (700) young collections ran every few records and cost 3-4x a record's decoding.
    Cycles are rare here (the state is trees of dicts and structs), so collect less often
    (TICKETFLOW_ROUTING_GC_THRESHOLDS; tests/load/routing/bench_routing.py, docs/benchmarks.md)."""
    runtime_tune_gc(thresholds, freeze=True)


async def first_of(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Return when any of the events is set (or after `seconds`)."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


@dataclass
class Term:
    """What exists while this instance leads: the application service and its subscriptions."""

    app: Routing
    subscriptions: Subscriptions


class Leader:
    def __init__(
        self,
        store: EventStore,
        desks: Desks,
        settings: RoutingSettings,
        *,
        elect: Callable[[], Leadership],
        subscribe: Callable[[Routing], Subscriptions],
    ) -> None:
        self.store = store
        self.desks = desks
        self.settings = settings
        self.elect = elect  # a fresh Leadership per term (its own lock session)
        self.subscribe = subscribe
        self.term: Term | None = None
        self._lost = asyncio.Event()

    def reconfigure(self, desks: Desks) -> None:
        """A desk configuration reload: the current term ends (its subscriptions commit what is stored) and
        the next one folds the event log again under `desks`; a stand-by folds it again when it leads."""
        self.desks = desks
        if self.term is not None:
            log.warning("routing: desk configuration reloaded; ending the term to rebuild the state under it")
            self._lost.set()

    def step_down(self, why: object) -> None:
        """Leadership lost (another instance leads, or our lock's session is gone): end the term and go
        back to standing by. Nothing is lost: what was not stored is decided again by the leader."""
        if not self._lost.is_set():
            log.critical("routing is no longer the leader (%s): stepping down to stand-by", why)
        self._lost.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by until this instance leads, lead until it may not, and again (supervised by the
        runtime: an error ends the term and the task starts over as a stand-by)."""
        while not stop.is_set():
            leadership = self.elect()
            follower = LogFollower(self.store, self.desks)
            self._lost.clear()
            try:
                if await stand_by(leadership, follower, stop, self.settings.leader_poll_seconds):
                    await self._lead(leadership, follower, stop)
            finally:
                await self._end_term(leadership)

    async def _lead(self, leadership: Leadership, follower: LogFollower, stop: asyncio.Event) -> None:
        if follower.state.desks is not self.desks:  # reconfigured while standing by
            follower = LogFollower(self.store, self.desks)
        await follower.catch_up()
        tune_gc(self.settings.gc_thresholds)
        state = follower.state
        fenced = FencedStore(self.store, leadership, self.step_down)
        app = Routing(state, fenced, metrics=RoutingMetrics(REGISTRY), store_parallel=self.settings.store_parallel)
        await app.tick()  # route what was left undecided while nobody led
        log.info(
            "routing leads (epoch %s): %d tickets, %d agents; subscribing", leadership.epoch, len(state.tickets),
            len(state.roster.agents),
        )  # fmt: skip
        self.term = Term(app, self.subscribe(app))
        await self.term.subscriptions.start()
        while not stop.is_set() and not self._lost.is_set():
            await first_of(stop, self._lost, seconds=self.settings.leader_poll_seconds)
            if not stop.is_set() and not await leadership.still_leading():
                self.step_down(LeadershipLost("the lock's session is gone"))

    async def _end_term(self, leadership: Leadership) -> None:
        term, self.term = self.term, None
        if term is not None:
            await term.subscriptions.stop()
        await leadership.release()

    async def clock(self, stop: asyncio.Event) -> None:
        """While leading: reassign unanswered assignments, route what is undecided, fill queues whose
        agents' shifts began. A store outage or a lost lead waits for the next tick."""
        while not stop.is_set():
            await sleep_or_stop(stop, self.settings.tick_seconds)
            term = self.term
            if term is None or stop.is_set() or self._lost.is_set():
                continue
            try:
                await term.app.tick()
            except WAITS_FOR_NEXT_TICK as error:
                log.warning("routing clock: tick not stored, again at the next one: %r", error)

    async def readiness(self) -> str:
        """Readiness: "ok" while standing by or consuming; what a subscription waits for during an outage."""
        term = self.term
        return "ok" if term is None else term.subscriptions.describe()
